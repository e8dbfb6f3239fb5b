#include "fstree/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace lifeboat::fstree {
namespace {

Error OpenError(int err, std::string_view rel) {
  if (err == ELOOP) return PermissionDenied("'" + Printable(rel) + "' escapes through a symlink");
  if (err == ENOTDIR) return FailedPrecondition("a component of '" + Printable(rel) + "' is not a directory");
  return ErrnoError(err, "open '" + Printable(rel) + "'");
}

// The entry `name` of directory `dirfd`, named `rel`, hashed when asked;
// nothing for a temporary name or one deleted meanwhile.
Result<std::optional<Entry>> ReadEntry(int dirfd, const std::string& name, std::string rel, bool hashes) {
  if (IsTempName(name)) return std::optional<Entry>();
  auto e = StatEntry(dirfd, name.c_str(), std::move(rel));
  if (!e) {
    if (e.error().code() == Code::kNotFound) return std::optional<Entry>();  // deleted meanwhile
    return e.error();
  }
  if (hashes && e->type == EntryType::kFile) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<Entry>();
      return ErrnoError(errno, "open '" + Printable(e->path) + "'");
    }
    UniqueFd f(fd);
    LB_ASSIGN_OR_RETURN(e->hash, HashFile(fd, e->size));
    e->has_hash = true;
  }
  return std::optional<Entry>(std::move(*e));
}

// The subdirectory `name` of `dirfd`, named `rel`, opened without following
// a symlink; an invalid fd when it was replaced meanwhile.
Result<UniqueFd> OpenSubdir(int dirfd, const std::string& name, const std::string& rel) {
  UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid() && errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
    return ErrnoError(errno, "open '" + Printable(rel) + "'");
  }
  return sub;
}

Status WalkDir(int dirfd, const std::string& rel, bool hashes, const EntryFn& fn) {
  LB_ASSIGN_OR_RETURN(auto names, ListNames(dirfd));
  for (const auto& name : names) {
    LB_ASSIGN_OR_RETURN(auto e, ReadEntry(dirfd, name, JoinPath(rel, name), hashes));
    if (!e) continue;
    EntryType type = e->type;
    std::string path = e->path;
    LB_RETURN_IF_ERROR(fn(*e));
    if (type == EntryType::kDir) {
      LB_ASSIGN_OR_RETURN(auto sub, OpenSubdir(dirfd, name, path));
      if (sub.valid()) LB_RETURN_IF_ERROR(WalkDir(sub.get(), path, hashes, fn));
    }
  }
  return Ok();
}

// WalkParallel below a directory: threads take directories from a stack,
// list and stat them, and hand their entries to fn under one lock. A
// directory waiting on the stack keeps its parent open, not itself: open
// descriptors stay near the tree's depth times the threads, however wide.
class ParallelWalk {
 public:
  ParallelWalk(bool hashes, const EntryFn& fn) : hashes_(hashes), fn_(fn) {}

  Status Run(int dirfd, const std::string& rel, int threads) {
    UniqueFd top(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
    if (!top.valid()) return ErrnoError(errno, "open '" + Printable(rel) + "'");
    // The first directory alone: one without subdirectories (most roots of
    // a continuous pass) starts no thread.
    LB_RETURN_IF_ERROR(List({std::make_shared<UniqueFd>(std::move(top)), "", rel}));
    if (stack_.empty()) return Ok();
    std::vector<std::thread> helpers;
    for (int i = 1; i < threads; ++i) {
      try {
        helpers.emplace_back([this] { Work(); });
      } catch (const std::system_error&) {
        break;  // no thread to spare: fewer walk
      }
    }
    Work();
    for (auto& t : helpers) t.join();
    return failed_ ? Status(*failed_) : Ok();
  }

 private:
  struct Dir {
    std::shared_ptr<const UniqueFd> parent;  // or the directory itself, with name ""
    std::string name;
    std::string rel;
  };
  // Entries handed to fn at a time from a directory, so that a huge one is
  // not held whole.
  static constexpr size_t kHandOver = 1024;

  void Work() {
    while (true) {
      Dir d;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return failed_ || !stack_.empty() || busy_ == 0; });
        if (failed_ || stack_.empty()) return;
        d = std::move(stack_.back());
        stack_.pop_back();
        ++busy_;
      }
      Status s = List(d);
      {
        std::lock_guard lock(mu_);
        --busy_;
        if (!s.ok() && !failed_) failed_ = s.error();
      }
      cv_.notify_all();
    }
  }

  Status List(const Dir& d) {
    UniqueFd opened;
    int dirfd = d.parent->get();
    if (!d.name.empty()) {
      LB_ASSIGN_OR_RETURN(opened, OpenSubdir(d.parent->get(), d.name, d.rel));
      if (!opened.valid()) return Ok();  // replaced meanwhile
      dirfd = opened.get();
    }
    LB_ASSIGN_OR_RETURN(auto names, ListNames(dirfd));
    // Subdirectories wait with this directory open, shared among them.
    std::shared_ptr<const UniqueFd> self =
        d.name.empty() ? d.parent : std::make_shared<const UniqueFd>(std::move(opened));
    std::vector<Entry> entries;
    std::vector<Dir> subdirs;
    for (size_t i = 0; i < names.size(); ++i) {
      LB_ASSIGN_OR_RETURN(auto e, ReadEntry(dirfd, names[i], JoinPath(d.rel, names[i]), hashes_));
      if (e) {
        if (e->type == EntryType::kDir) subdirs.push_back({self, names[i], e->path});
        entries.push_back(std::move(*e));
      }
      if (entries.size() >= kHandOver || i + 1 == names.size()) LB_RETURN_IF_ERROR(HandOver(entries, subdirs));
    }
    return Ok();
  }

  // Gives fn the entries and stacks the subdirectories among them (a parent
  // reaches fn before anything below it).
  Status HandOver(std::vector<Entry>& entries, std::vector<Dir>& subdirs) {
    {
      std::lock_guard lock(mu_);
      if (failed_) return *failed_;  // stop reading this directory too
      for (auto& e : entries) LB_RETURN_IF_ERROR(fn_(e));
      // Pushed in reverse: the stack hands them out in name order.
      for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) stack_.push_back(std::move(*it));
    }
    cv_.notify_all();
    entries.clear();
    subdirs.clear();
    return Ok();
  }

  const bool hashes_;
  const EntryFn& fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Dir> stack_;
  int busy_ = 0;  // threads listing a directory
  std::optional<Error> failed_;
};

Status WalkDirsBelow(int dirfd, const std::string& rel, const DirFn& fn) {
  LB_ASSIGN_OR_RETURN(auto names, ListNames(dirfd, true));
  for (const auto& name : names) {
    if (IsTempName(name)) continue;
    // Beneath this directory's descriptor, O_NOFOLLOW: a name replaced by a
    // symlink meanwhile is refused, never followed.
    UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) continue;  // gone or replaced meanwhile
    std::string path = JoinPath(rel, name);
    LB_RETURN_IF_ERROR(fn(path));
    LB_RETURN_IF_ERROR(WalkDirsBelow(sub.get(), path, fn));
  }
  return Ok();
}

}  // namespace

Result<std::vector<std::string>> ListNames(int dirfd, bool dirs_only) {
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return ErrnoError(errno, "open directory");
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    int err = errno;
    ::close(dup);
    return ErrnoError(err, "read directory");
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    if (dirs_only && de->d_type != DT_DIR) {
      struct stat st;
      bool unknown = de->d_type == DT_UNKNOWN;
      if (!unknown || ::fstatat(dup, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    }
    names.emplace_back(n);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoError(err, "read directory");
  std::sort(names.begin(), names.end());
  return names;
}

int TryOpenBeneath(int root_fd, std::string_view rel, int flags) {
  if (rel.empty() || rel.size() >= PATH_MAX) return -1;
  std::string path(rel);
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how)));
}

Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view rel) {
  if (int fd = TryOpenBeneath(root_fd, rel, O_RDONLY | O_DIRECTORY); fd >= 0) return UniqueFd(fd);
  UniqueFd cur(::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return ErrnoError(errno, "open volume root");
  size_t start = 0;
  while (start < rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) slash = rel.size();
    std::string comp(rel.substr(start, slash - start));
    int fd = ::openat(cur.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return NotFound("'" + Printable(rel.substr(0, slash)) + "' does not exist");
      struct stat st;
      if (err == ENOTDIR && ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
      return OpenError(err, rel.substr(0, slash));
    }
    cur.Reset(fd);
    start = slash + 1;
  }
  return cur;
}

Result<ParentRef> OpenParent(int root_fd, std::string_view rel) {
  size_t slash = rel.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? std::string_view{} : rel.substr(0, slash);
  std::string base(slash == std::string_view::npos ? rel : rel.substr(slash + 1));
  LB_ASSIGN_OR_RETURN(auto fd, OpenDirBeneath(root_fd, dir));
  return ParentRef{std::move(fd), std::move(base)};
}

Meta MetaOf(const struct stat& st) {
  return Meta{static_cast<uint32_t>(st.st_mode & 07777), st.st_uid, st.st_gid, st.st_mtim.tv_sec,
              static_cast<uint32_t>(st.st_mtim.tv_nsec)};
}

EntryType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return EntryType::kFile;
  if (S_ISDIR(mode)) return EntryType::kDir;
  if (S_ISLNK(mode)) return EntryType::kSymlink;
  return EntryType::kOther;
}

Result<Entry> StatEntry(int dirfd, const char* base, std::string rel) {
  struct stat st;
  if (::fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW | (*base == '\0' ? AT_EMPTY_PATH : 0)) != 0) {
    if (errno == ENOENT) return NotFound("'" + Printable(rel) + "' does not exist");
    return ErrnoError(errno, "stat '" + Printable(rel) + "'");
  }
  Entry e;
  e.path = std::move(rel);
  e.type = TypeOf(st.st_mode);
  e.meta = MetaOf(st);
  e.ino = st.st_ino;
  e.nlink = static_cast<uint32_t>(st.st_nlink);
  e.ctime_sec = st.st_ctim.tv_sec;
  e.ctime_nsec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  if (e.type == EntryType::kFile) e.size = static_cast<uint64_t>(st.st_size);
  if (e.type == EntryType::kSymlink) {
    std::string buf(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
    ssize_t n = ::readlinkat(dirfd, base, buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, "readlink '" + Printable(e.path) + "'");
    buf.resize(static_cast<size_t>(n));
    e.link = std::move(buf);
  }
  return e;
}

Status WalkDirs(int root_fd, const std::string& rel, const DirFn& fn) {
  auto dir = OpenDirBeneath(root_fd, rel);
  if (!dir) {
    bool none = dir.error().code() == Code::kNotFound || dir.error().code() == Code::kFailedPrecondition;
    return none ? Ok() : dir.error();
  }
  LB_RETURN_IF_ERROR(fn(rel));
  return WalkDirsBelow(dir->get(), rel, fn);
}

namespace {

// The entry at `rel` to fn, then, when it is a directory and `recursive`,
// `below` with it open.
Status WalkFrom(int root_fd, const std::string& rel, bool recursive, bool hashes, const EntryFn& fn,
                const std::function<Status(int dirfd)>& below) {
  if (rel.empty()) {
    auto e = StatEntry(root_fd, "", "");
    if (!e) return e.error();
    LB_RETURN_IF_ERROR(fn(*e));
    return recursive ? below(root_fd) : Ok();
  }
  auto parent = OpenParent(root_fd, rel);
  if (!parent) return parent.error().code() == Code::kNotFound ? Ok() : parent.error();
  auto e = StatEntry(parent->dir.get(), parent->base.c_str(), rel);
  if (!e) return e.error().code() == Code::kNotFound ? Ok() : e.error();
  if (hashes && e->type == EntryType::kFile) {
    UniqueFd f(::openat(parent->dir.get(), parent->base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f.valid()) return errno == ENOENT ? Ok() : ErrnoError(errno, "open '" + Printable(rel) + "'");
    LB_ASSIGN_OR_RETURN(e->hash, HashFile(f.get(), e->size));
    e->has_hash = true;
  }
  bool dir = e->type == EntryType::kDir;
  LB_RETURN_IF_ERROR(fn(*e));
  if (!dir || !recursive) return Ok();
  UniqueFd sub(::openat(parent->dir.get(), parent->base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return Ok();  // replaced meanwhile
  return below(sub.get());
}

}  // namespace

Status Walk(int root_fd, const std::string& rel, bool recursive, bool hashes, const EntryFn& fn) {
  return WalkFrom(root_fd, rel, recursive, hashes, fn, [&](int dirfd) { return WalkDir(dirfd, rel, hashes, fn); });
}

Status WalkParallel(int root_fd, const std::string& rel, bool recursive, bool hashes, int threads,
                    const EntryFn& fn) {
  if (threads <= 1) return Walk(root_fd, rel, recursive, hashes, fn);
  return WalkFrom(root_fd, rel, recursive, hashes, fn,
                  [&](int dirfd) { return ParallelWalk(hashes, fn).Run(dirfd, rel, threads); });
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> DataExtents(int fd, uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  off_t pos = 0;
  const off_t end = static_cast<off_t>(size);
  while (pos < end) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno == EINVAL || errno == EOPNOTSUPP) return std::vector<std::pair<uint64_t, uint64_t>>{{0, size}};
      return ErrnoError(errno, "seek data");
    }
    if (data >= end) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError(errno, "seek hole");
    hole = std::min(hole, end);
    out.emplace_back(static_cast<uint64_t>(data), static_cast<uint64_t>(hole - data));
    pos = hole;
  }
  return out;
}

Result<chunk::Digest> HashFile(int fd, uint64_t size) {
  // Blocks of 1 MiB at fixed offsets; a run of all-zero bytes (holes, or
  // zeros written out) is hashed as its length, so the digest depends only
  // on the bytes, and a huge sparse file costs only its data.
  constexpr uint64_t kBlock = 1 << 20;
  LB_ASSIGN_OR_RETURN(auto extents, DataExtents(fd, size));
  chunk::Hasher outer;
  auto put_u64 = [&](char tag, uint64_t v) {
    uint8_t b[9] = {static_cast<uint8_t>(tag)};
    for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<uint8_t>(v >> (56 - 8 * i));
    outer.Update(b);
  };
  put_u64('S', size);
  uint64_t zeros = 0;
  auto flush_zeros = [&] {
    if (zeros > 0) put_u64('Z', zeros);
    zeros = 0;
  };
  std::vector<uint8_t> buf(kBlock);
  size_t i = 0;
  uint64_t pos = 0;  // always a multiple of kBlock, or size
  while (pos < size) {
    while (i < extents.size() && extents[i].first + extents[i].second <= pos) ++i;
    if (i == extents.size()) {  // only a hole remains
      zeros += size - pos;
      break;
    }
    uint64_t data_block = extents[i].first / kBlock * kBlock;
    if (data_block > pos) {  // whole blocks of hole before the next data
      zeros += data_block - pos;
      pos = data_block;
      continue;
    }
    size_t len = static_cast<size_t>(std::min(kBlock, size - pos));
    size_t got = 0;
    while (got < len) {  // holes inside the block read as zeros
      ssize_t n = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(pos + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read");
      }
      if (n == 0) break;  // shrank meanwhile: the digest will differ, which is right
      got += static_cast<size_t>(n);
    }
    std::span<const uint8_t> block(buf.data(), got);
    bool all_zero = got == 0 || (block[0] == 0 && std::memcmp(block.data(), block.data() + 1, got - 1) == 0);
    if (all_zero) {
      zeros += got;
    } else {
      flush_zeros();
      auto d = chunk::Sha256(block);
      outer.Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("D"), 1));
      outer.Update(d);
    }
    if (got < len) break;
    pos += len;
  }
  flush_zeros();
  return outer.Finish();
}

Status RemoveTree(Env& env, int dirfd, const std::string& base) {
  if (env.UnlinkAt(dirfd, base.c_str(), 0) == 0 || errno == ENOENT) return Ok();
  if (errno != EISDIR && errno != EPERM) return ErrnoError(errno, "unlink");
  UniqueFd sub(::openat(dirfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return ErrnoError(errno, "open directory to remove");
  LB_ASSIGN_OR_RETURN(auto names, ListNames(sub.get()));
  for (const auto& n : names) LB_RETURN_IF_ERROR(RemoveTree(env, sub.get(), n));
  if (env.UnlinkAt(dirfd, base.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return ErrnoError(errno, "rmdir");
  return Ok();
}

Result<uint64_t> RemoveTempNames(Env& env, int dirfd, const TempFn& first) {
  UniqueFd own(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!own.valid()) return ErrnoError(errno, "open directory");
  DIR* d = ::fdopendir(own.get());
  if (d == nullptr) return ErrnoError(errno, "list directory");
  own.release();
  std::vector<std::string> temps, subdirs;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    if (IsTempName(n)) {
      temps.emplace_back(n);
    } else if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
      subdirs.emplace_back(n);
    }
  }
  uint64_t removed = 0;
  int fd = ::dirfd(d);
  for (const auto& t : temps) {
    if (first && first(fd, t)) continue;
    Status s = RemoveTree(env, fd, t);
    if (!s.ok()) {
      ::closedir(d);
      return s.error();
    }
    ++removed;
  }
  for (const auto& sub : subdirs) {
    UniqueFd child(::openat(fd, sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child.valid()) continue;  // not a directory, a symlink, or gone
    auto n = RemoveTempNames(env, child.get(), first);
    if (!n.ok()) {
      ::closedir(d);
      return n.error();
    }
    removed += *n;
  }
  ::closedir(d);
  return removed;
}

Status ApplyMeta(Env& env, int dirfd, const char* base, EntryType type, const Meta& m) {
  struct timespec ts[2] = {{0, UTIME_OMIT}, {m.mtime_sec, static_cast<long>(m.mtime_nsec)}};
  if (*base == '\0') {  // dirfd itself (the volume root)
    if (env.Fchown(dirfd, m.uid, m.gid) != 0 && errno != EPERM) return ErrnoError(errno, "chown");
    if (env.Fchmod(dirfd, m.mode) != 0) return ErrnoError(errno, "chmod");
    if (env.Futimens(dirfd, ts) != 0) return ErrnoError(errno, "set times");
    return Ok();
  }
  if (type == EntryType::kSymlink) {  // the link itself; these calls never follow it
    if (env.FchownAt(dirfd, base, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM) {
      return ErrnoError(errno, "chown");
    }
    if (env.UtimensAt(dirfd, base, ts, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(errno, "set times");
    return Ok();
  }
  // chmod has no "do not follow" form, so pin the inode first: an O_PATH
  // descriptor of `base` itself (a symlink planted there is refused, never
  // followed), then act on that inode through /proc/self/fd, which names
  // exactly it whatever happens to `base` meanwhile.
  UniqueFd fd(::openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat");
  if (S_ISLNK(st.st_mode)) return PermissionDenied("is a symlink where a " + std::string(type == EntryType::kDir ? "directory" : "file") + " belongs; not following it");
  if (TypeOf(st.st_mode) != type) return FailedPrecondition("changed type while its metadata was applied");
  if (env.FchownAt(fd.get(), "", m.uid, m.gid, AT_EMPTY_PATH) != 0 && errno != EPERM) return ErrnoError(errno, "chown");
  std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  if (env.FchmodAt(AT_FDCWD, self.c_str(), m.mode, 0) != 0) return ErrnoError(errno, "chmod");
  if (env.UtimensAt(AT_FDCWD, self.c_str(), ts, 0) != 0) return ErrnoError(errno, "set times");
  return Ok();
}

std::string ParentOf(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(rel.substr(0, slash));
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out(dir);
  out.push_back('/');
  out.append(name);
  return out;
}

bool IsWithin(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  return path.starts_with(dir) && (path.size() == dir.size() || path[dir.size()] == '/');
}

const char* Name(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "file";
    case EntryType::kDir: return "directory";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kOther: return "other";
  }
  return "other";
}

std::string Printable(std::string_view path) {
  if (path.empty()) return ".";  // the root (verify printed an empty path for it)
  std::string out;
  for (unsigned char c : path) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace lifeboat::fstree
