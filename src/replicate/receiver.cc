#include "replicate/receiver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "chunk/fastcdc.h"
#include "replicate/blocks.h"
#include <spdlog/spdlog.h>

namespace lifeboat::replicate {
namespace {

constexpr size_t kEntriesPerFrame = 2000;
constexpr size_t kChunksPerFrame = 16384;
// COPY_BASE copies the base in reads of this size (whole blocks).
constexpr size_t kCopyBaseRead = 4 << 20;
// Up to this many files or directories are fsynced one by one; above it one
// syncfs() flushes them all at once.
constexpr size_t kFsyncEach = 4;
// A new file of at least this size, sent whole (not by delta), is written past
// the page cache (DirectWriter).
constexpr uint64_t kDirectMin = 8 << 20;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::pair<int64_t, int64_t> Stamp(const struct stat& st) {
  return {st.st_size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
}

Status MkdirParents(Env& env, int root_fd, const std::string& dir) {
  if (dir.empty()) return Ok();
  auto fd = OpenDirBeneath(root_fd, dir);
  if (fd) return Ok();
  if (fd.error().code() != Code::kNotFound) return fd.error();
  LB_RETURN_IF_ERROR(MkdirParents(env, root_fd, ParentOf(dir)));
  LB_ASSIGN_OR_RETURN(auto parent, OpenParent(root_fd, dir));
  if (env.MkdirAt(parent.dir.get(), parent.base.c_str(), 0755) != 0 && errno != EEXIST) {
    return IoError(errno, "mkdir '" + Printable(dir) + "'");
  }
  return Ok();
}

}  // namespace

std::string TempName(const std::string& path, const char* suffix) {
  auto d = chunk::Sha256({reinterpret_cast<const uint8_t*>(path.data()), path.size()});
  return std::string(kTempPrefix) + chunk::Hex(std::span(d).first(12)) + suffix;
}

size_t Session::IdHash::operator()(const ChunkId& id) const {
  size_t h;
  std::memcpy(&h, id.data(), sizeof(h));
  return h;
}

Session::Session(UniqueFd root, ReplyFn reply, ReceiverStats* stats, bool read_only, Env& env, LandingBatch batch)
    : root_(std::move(root)),
      reply_(std::move(reply)),
      stats_(stats),
      read_only_(read_only),
      env_(env),
      batch_(batch) {}

Session::~Session() {
  if (landing_.valid()) landing_.wait();  // it uses landing_files_ and landing_dirs_, destroyed before it
}

Result<std::unique_ptr<Session>> Session::Open(const std::string& root, ReplyFn reply, ReceiverStats* stats,
                                               bool read_only, Env& env, LandingBatch batch) {
  UniqueFd r(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!r.valid()) return ErrnoError(errno, "open volume " + root);
  return std::unique_ptr<Session>(new Session(std::move(r), std::move(reply), stats, read_only, env, batch));
}

Status Session::Handle(const Frame& f) {
  Reader r(f.payload);
  auto type = static_cast<Type>(f.type);
  if (read_only_ && type != Type::kList) {
    return PermissionDenied(std::string("a read-only session may not send ") + TypeName(f.type));
  }
  bool in_file = file_ != nullptr;
  if (in_file != (type == Type::kData || type == Type::kCopy || type == Type::kCopyBase || type == Type::kRepeat ||
                  type == Type::kFileEnd)) {
    return InvalidArgument(std::string(TypeName(f.type)) + (in_file ? " inside a file" : " outside a file"));
  }
  Status s;
  switch (type) {
    case Type::kList: s = HandleList(r); break;
    case Type::kDeltaReq:
    case Type::kDeltaReqBasis: s = HandleDeltaReq(r, type); break;
    case Type::kFileBegin: s = HandleFileBegin(r); break;
    case Type::kPatchBegin: s = HandlePatchBegin(r); break;
    case Type::kBaseBegin: s = HandleBaseBegin(r); break;
    case Type::kData: s = HandleData(r); break;
    case Type::kCopy: s = HandleCopy(r); break;
    case Type::kCopyBase: s = HandleCopyBase(r); break;
    case Type::kRepeat: s = HandleRepeat(r); break;
    case Type::kFileEnd: return HandleFileEnd();
    case Type::kSymlink: s = HandleSymlink(r); break;
    case Type::kMkdir: s = HandleMkdir(r); break;
    case Type::kHardlink: s = HandleHardlink(r); break;
    case Type::kDelete: s = HandleDelete(r); break;
    case Type::kRename: s = HandleRename(r); break;
    case Type::kSetMeta: s = HandleSetMeta(r); break;
    case Type::kCommit: {
      uint64_t seq = r.U64();
      LB_RETURN_IF_ERROR(r.Finish(f.type));
      LB_RETURN_IF_ERROR(Commit());
      return reply_(Writer(Type::kCommitted).U64(seq).Finish());
    }
    default:
      return InvalidArgument(std::string("unexpected frame ") + TypeName(f.type) + " (" + std::to_string(f.type) + ")");
  }
  return s;
}

Status Session::HandleList(Reader& r) {
  uint32_t id = r.U32();
  std::string path = r.Path();
  uint8_t flags = r.U8();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kList)));
  LB_RETURN_IF_ERROR(ValidatePath(path, true));
  LB_RETURN_IF_ERROR(AwaitLanding());  // lists each file at its old or its new version, not mid-rename
  std::vector<Entry> batch;
  auto flush = [&]() -> Status {
    Writer w(Type::kEntries);
    w.U32(id).U32(static_cast<uint32_t>(batch.size()));
    for (const auto& e : batch) w.Put(e);
    batch.clear();
    return reply_(w.Finish());
  };
  auto add = [&](Entry& e) -> Status {
    batch.push_back(std::move(e));
    return batch.size() >= kEntriesPerFrame ? flush() : Ok();
  };
  auto st = WalkParallel(root_.get(), path, flags & kListRecursive, flags & kListHashes, kScanThreads, add);
  // A path through a symlink or a file in place of a directory lists as
  // absent here: the sender's state is what the target must become.
  if (!st.ok() && st.error().code() != Code::kPermissionDenied && st.error().code() != Code::kFailedPrecondition) {
    return st;
  }
  if (!batch.empty()) LB_RETURN_IF_ERROR(flush());
  return reply_(Writer(Type::kListEnd).U32(id).Finish());
}

// Opens the regular file at `path` beneath the volume for reading, or an
// invalid fd (absent, not a regular file, through a symlink).
static UniqueFd OpenRegular(int dir, const std::string& base) {
  UniqueFd fd(::openat(dir, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  struct stat st;
  if (fd.valid() && (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))) fd.Reset(-1);
  return fd;
}

Status Session::HandleDeltaReq(Reader& r, Type type) {
  uint32_t id = r.U32();
  std::string path = r.Path();
  uint32_t avg = r.U32();
  std::string basis = type == Type::kDeltaReqBasis ? r.Path() : std::string();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(type)));
  LB_RETURN_IF_ERROR(ValidatePath(path));
  if (type == Type::kDeltaReqBasis) LB_RETURN_IF_ERROR(ValidatePath(basis));
  auto params = chunk::ChunkParams::ForAverage(avg);
  auto src = std::make_unique<DeltaSource>();
  LB_RETURN_IF_ERROR(CommitIfPending(path));
  if (!basis.empty()) LB_RETURN_IF_ERROR(CommitIfPending(basis));
  // Sources of chunks: the file at `path` now, a partial one a crash left,
  // and the basis the sender named (the old version a new file is likely
  // to replace: `f` for `f.tmp`).
  if (auto parent = OpenParent(root_.get(), path); parent) {
    int dir = parent->dir.get();
    if (UniqueFd fd = OpenRegular(dir, parent->base); fd.valid()) src->fds.push_back(std::move(fd));
    std::string part = TempName(path, ".part");
    std::string prev = TempName(path, ".prev");
    env_.RenameAt(dir, part.c_str(), dir, prev.c_str());
    if (UniqueFd p(::openat(dir, prev.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)); p.valid()) {
      src->prev = prev;
      src->fds.push_back(std::move(p));
    }
  }
  if (!basis.empty() && basis != path) {
    if (auto parent = OpenParent(root_.get(), basis); parent) {
      if (UniqueFd fd = OpenRegular(parent->dir.get(), parent->base); fd.valid()) src->fds.push_back(std::move(fd));
    }
  }
  std::vector<std::tuple<uint64_t, uint32_t, ChunkId>> batch;
  auto flush = [&]() -> Status {
    Writer out(Type::kDeltaChunks);
    out.U32(id).U32(static_cast<uint32_t>(batch.size()));
    for (auto& [off, size, cid] : batch) out.U64(off).U32(size).Raw(cid);
    batch.clear();
    return reply_(out.Finish());
  };
  for (size_t i = 0; i < src->fds.size(); ++i) {
    int fd = src->fds[i].get();
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat '" + Printable(path) + "'");
    src->stamps.push_back(Stamp(st));
    auto extents = DataExtents(fd, static_cast<uint64_t>(st.st_size));
    if (!extents) return extents.error();
    for (auto [off, len] : *extents) {
      LB_RETURN_IF_ERROR(chunk::ChunkRange(fd, off, len, params, [&](uint64_t o, std::span<const uint8_t> b) -> Status {
        ChunkId cid = IdOf(b);
        auto [it, fresh] = src->chunks.emplace(cid, ChunkSource{static_cast<int>(i), o, static_cast<uint32_t>(b.size())});
        if (!fresh) return Ok();
        batch.emplace_back(o, static_cast<uint32_t>(b.size()), cid);
        return batch.size() >= kChunksPerFrame ? flush() : Ok();
      }));
    }
  }
  if (!batch.empty()) LB_RETURN_IF_ERROR(flush());
  deltas_[path] = std::move(src);
  return reply_(Writer(Type::kDeltaEnd).U32(id).Finish());
}

Status Session::HandleFileBegin(Reader& r) {
  auto f = std::make_unique<OpenFile>();
  f->path = r.Path();
  f->meta = r.GetMeta();
  f->size = r.U64();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kFileBegin)));
  LB_RETURN_IF_ERROR(ValidatePath(f->path));
  if (f->size > (uint64_t{1} << 50)) return InvalidArgument("file size out of range");
  LB_RETURN_IF_ERROR(CommitIfPending(f->path));
  if (auto it = deltas_.find(f->path); it != deltas_.end()) {
    f->delta = std::move(it->second);
    deltas_.erase(it);
  }
  // Sent whole: no chunk of the target's to reuse at odd offsets.
  bool direct = (!f->delta || f->delta->chunks.empty()) && f->size >= kDirectMin;
  LB_RETURN_IF_ERROR(BeginNewFile(std::move(f)));
  // At its full size first: a direct write past the end of a file is
  // synchronous in ext4 and a journal transaction of its own, one inside it
  // is not. Holes stay holes.
  if (direct && env_.Ftruncate(file_->fd.get(), static_cast<off_t>(file_->size)) == 0) {
    file_->direct = DirectWriter::Open(env_, file_->dir.get(), file_->temp, file_->fd.get(), file_->path);
  }
  return Ok();
}

Status Session::BeginNewFile(std::unique_ptr<OpenFile> f) {
  LB_ASSIGN_OR_RETURN(auto parent, Parent(f->path));
  f->dir = std::move(parent.dir);
  f->temp = TempName(f->path, ".part");
  // Created with its final permission bits (never setuid, setgid or sticky
  // before FILE_END), so that FILE_END seldom has to change them; readable,
  // for REPEAT.
  f->fd.Reset(env_.OpenAt(f->dir.get(), f->temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                          f->meta.mode & 0777));
  if (!f->fd.valid()) return IoError(errno, "create a temporary file for '" + Printable(f->path) + "'");
  file_ = std::move(f);
  return Ok();
}

Result<Session::OnBase> Session::BeginOnBase(Reader& r, Type type) {
  auto f = std::make_unique<OpenFile>();
  f->path = r.Path();
  uint64_t base_size = r.U64();
  uint64_t base_sec = r.U64();
  uint32_t base_nsec = r.U32();
  f->meta = r.GetMeta();
  f->size = r.U64();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(type)));
  LB_RETURN_IF_ERROR(ValidatePath(f->path));
  if (f->size > (uint64_t{1} << 50)) return InvalidArgument("file size out of range");
  LB_RETURN_IF_ERROR(CommitIfPending(f->path));
  LB_ASSIGN_OR_RETURN(auto parent, OpenParent(root_.get(), f->path));
  struct stat st;
  if (::fstatat(parent.dir.get(), parent.base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
      st.st_nlink != 1 || static_cast<uint64_t>(st.st_size) != base_size ||
      st.st_mtim.tv_sec != static_cast<int64_t>(base_sec) || static_cast<uint32_t>(st.st_mtim.tv_nsec) != base_nsec) {
    // The source's idea of this file is wrong: the next pass lists it again
    // and sends it by delta.
    return FailedPrecondition("'" + Printable(f->path) +
                              "' is not the version the source recorded (it changed at the target)");
  }
  f->base_size = base_size;
  return OnBase{std::move(f), std::move(parent)};
}

// A new version of a large file made of blocks of the version the target
// holds (the one the source recorded: docs/format/replication.md, "Moved
// blocks") and DATA, written under a temporary name like FILE_BEGIN's.
Status Session::HandleBaseBegin(Reader& r) {
  LB_ASSIGN_OR_RETURN(auto b, BeginOnBase(r, Type::kBaseBegin));
  b.file->base = OpenRegular(b.parent.dir.get(), b.parent.base);
  if (!b.file->base.valid()) return IoError(errno, "open '" + Printable(b.file->path) + "'");
  return BeginNewFile(std::move(b.file));
}

// An in-place update of a large file the target holds at the version the
// source last sent (docs/format/replication.md, "In-place updates"): the
// changed ranges go to a journal, which is sealed and made durable at
// FILE_END before the file is touched.
Status Session::HandlePatchBegin(Reader& r) {
  LB_ASSIGN_OR_RETURN(auto b, BeginOnBase(r, Type::kPatchBegin));
  auto& f = b.file;
  f->dir = std::move(b.parent.dir);
  LB_ASSIGN_OR_RETURN(f->journal, JournalWriter::Create(env_, f->dir.get(), TempName(f->path, ".journal"),
                                                        b.parent.base, f->size, f->meta));
  file_ = std::move(f);
  return Ok();
}

Status Session::FinishPatch(std::unique_ptr<OpenFile> f) {
  LB_RETURN_IF_ERROR(f->journal->Seal());
  if (Status s = ApplyJournal(env_, f->dir.get(), f->journal->name()); !s.ok()) {
    unapplied_.push_back(f->path);  // sealed: applied before the next session, or at the next start
    return s;
  }
  if (stats_) {
    stats_->patches.fetch_add(1, std::memory_order_relaxed);
    stats_->files.fetch_add(1, std::memory_order_relaxed);
  }
  return Ok();
}

Status Session::WriteAt(const uint8_t* p, size_t n, uint64_t offset) {
  if (offset > file_->size || n > file_->size - offset) {
    return InvalidArgument("write beyond the announced size of '" + Printable(file_->path) + "'");
  }
  if (file_->journal) return file_->journal->Add(offset, {p, n});
  file_->end = std::max(file_->end, offset + n);
  if (file_->direct) return file_->direct->Write(p, n, offset);
  return WriteAll(env_, file_->fd.get(), p, n, offset, file_->path);
}

Status Session::HandleData(Reader& r) {
  uint64_t offset = r.U64();
  std::string_view bytes = r.View();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kData)));
  LB_RETURN_IF_ERROR(WriteAt(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), offset));
  if (stats_) stats_->bytes_written.fetch_add(bytes.size(), std::memory_order_relaxed);
  if (!file_->journal) pending_bytes_ += bytes.size();
  return Ok();
}

Status Session::HandleCopy(Reader& r) {
  uint64_t offset = r.U64();
  ChunkId id;
  r.Raw(id);
  uint32_t size = r.U32();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kCopy)));
  if (!file_->delta) return InvalidArgument("COPY without a DELTA_REQ for '" + Printable(file_->path) + "'");
  auto it = file_->delta->chunks.find(id);
  if (it == file_->delta->chunks.end() || it->second.size != size) {
    return InvalidArgument("COPY of a chunk the receiver did not offer");
  }
  std::vector<uint8_t> buf(size);
  const auto& src = it->second;
  int fd = file_->delta->fds[static_cast<size_t>(src.src)].get();
  ssize_t n = ::pread(fd, buf.data(), size, static_cast<off_t>(src.offset));
  // The chunk was hashed when indexed; hash it again only if the file may
  // have changed since (its size or mtime moved).
  struct stat st;
  bool unchanged = ::fstat(fd, &st) == 0 && Stamp(st) == file_->delta->stamps[static_cast<size_t>(src.src)];
  if (n != static_cast<ssize_t>(size) || (!unchanged && IdOf(buf) != id)) {
    return Aborted("a local chunk of '" + Printable(file_->path) + "' changed while it was being reused");
  }
  LB_RETURN_IF_ERROR(WriteAt(buf.data(), size, offset));
  if (stats_) stats_->bytes_copied.fetch_add(size, std::memory_order_relaxed);
  return Ok();
}

// Blocks of the base, hashed as they are copied: the run's digest must be
// the one the source computed from its record, or the base is not what the
// source believes (changed without its size or mtime moving).
Status Session::HandleCopyBase(Reader& r) {
  uint64_t offset = r.U64();
  uint64_t from = r.U64();
  uint64_t size = r.U64();
  uint64_t digest = r.U64();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kCopyBase)));
  if (!file_->base.valid()) return InvalidArgument("COPY_BASE outside BASE_BEGIN");
  uint64_t base_size = file_->base_size;
  if (from % kBlockSize != 0 || from > base_size || size > base_size - from ||
      (size % kBlockSize != 0 && from + size != base_size) || size == 0) {
    return InvalidArgument("COPY_BASE of a range that is not whole blocks of the base");
  }
  std::vector<uint64_t> hashes;
  hashes.reserve(static_cast<size_t>((size + kBlockSize - 1) / kBlockSize));
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(size, kCopyBaseRead)));
  for (uint64_t done = 0; done < size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    ssize_t n;
    do n = ::pread(file_->base.get(), buf.data(), want, static_cast<off_t>(from + done));
    while (n < 0 && errno == EINTR);
    if (n < 0) return IoError(errno, "read the blocks of '" + Printable(file_->path) + "' to reuse");
    if (n != static_cast<ssize_t>(want)) {
      return Aborted("'" + Printable(file_->path) + "' shrank while its blocks were being reused");
    }
    for (size_t at = 0; at < want; at += kBlockSize) {
      hashes.push_back(BlockHash({buf.data() + at, std::min<size_t>(kBlockSize, want - at)}));
    }
    LB_RETURN_IF_ERROR(WriteAt(buf.data(), want, offset + done));
    done += want;
  }
  if (RunDigest(hashes) != digest) {
    return Aborted("blocks of '" + Printable(file_->path) + "' are not the ones the source recorded");
  }
  if (stats_) stats_->bytes_copied.fetch_add(size, std::memory_order_relaxed);
  return Ok();
}

// Bytes the new version already holds, earlier in it (docs/format/replication.md,
// "Repeated blocks"): copied inside the kernel, or through a buffer where the
// file system cannot. The range copied lies wholly before the one written, so
// it holds what the sender sent there (or a hole's zeros).
Status Session::HandleRepeat(Reader& r) {
  uint64_t offset = r.U64();
  uint64_t from = r.U64();
  uint64_t size = r.U64();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kRepeat)));
  if (file_->journal) return InvalidArgument("REPEAT inside PATCH_BEGIN");
  if (size == 0 || from > offset || size > offset - from) {
    return InvalidArgument("REPEAT of a range that does not end before the one it writes");
  }
  if (offset > file_->size || size > file_->size - offset) {
    return InvalidArgument("write beyond the announced size of '" + Printable(file_->path) + "'");
  }
  // A file whose blocks repeat is read back as it is written: from here on
  // it goes through the page cache, where those reads find it.
  LB_RETURN_IF_ERROR(EndDirect(*file_));
  int fd = file_->fd.get();
  auto in = static_cast<off_t>(from), out = static_cast<off_t>(offset);
  uint64_t left = size;
  while (left > 0) {
    ssize_t n = env_.CopyFileRange(fd, &in, fd, &out, static_cast<size_t>(std::min<uint64_t>(left, 1u << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) break;
    if (n < 0) return IoError(errno, "write '" + Printable(file_->path) + "'");
    if (n == 0) break;  // `from` reaches past what was written: the rest goes through the buffer
    left -= static_cast<uint64_t>(n);
  }
  if (left > 0) {
    std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(left, kCopyBaseRead)));
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), left));
      ssize_t n;
      do n = ::pread(fd, buf.data(), want, in);
      while (n < 0 && errno == EINTR);
      if (n < 0) return IoError(errno, "read '" + Printable(file_->path) + "' to repeat its blocks");
      // Past the end of what was written the file reads as zeros, as the
      // announced size will make it.
      std::fill(buf.begin() + n, buf.begin() + static_cast<std::ptrdiff_t>(want), uint8_t{0});
      LB_RETURN_IF_ERROR(WriteAt(buf.data(), want, static_cast<uint64_t>(out)));
      in += static_cast<off_t>(want);
      out += static_cast<off_t>(want);
      left -= want;
    }
  }
  file_->end = std::max(file_->end, offset + size);
  pending_bytes_ += size;
  if (stats_) stats_->bytes_copied.fetch_add(size, std::memory_order_relaxed);
  return Ok();
}

Status Session::EndDirect(OpenFile& f) {
  if (!f.direct) return Ok();
  LB_RETURN_IF_ERROR(f.direct->Drain());
  if (stats_) stats_->bytes_direct.fetch_add(f.direct->direct_bytes(), std::memory_order_relaxed);
  f.direct.reset();
  return Ok();
}

Status Session::HandleFileEnd() {
  auto f = std::move(file_);
  if (f->journal) return FinishPatch(std::move(f));
  LB_RETURN_IF_ERROR(EndDirect(*f));
  int fd = f->fd.get();
  // Each of these is a metadata change of its own (and a journal entry):
  // skipped when the new file already is as it should be.
  if (f->end != f->size && env_.Ftruncate(fd, static_cast<off_t>(f->size)) != 0) {
    return IoError(errno, "truncate '" + Printable(f->path) + "'");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat '" + Printable(f->path) + "'");
  if ((st.st_uid != f->meta.uid || st.st_gid != f->meta.gid) && env_.Fchown(fd, f->meta.uid, f->meta.gid) != 0 &&
      errno != EPERM) {
    return ErrnoError(errno, "chown");
  }
  // chown clears setuid and setgid: the mode goes after it.
  if ((st.st_mode & 07777) != f->meta.mode || st.st_uid != f->meta.uid || st.st_gid != f->meta.gid) {
    if (env_.Fchmod(fd, f->meta.mode) != 0) return ErrnoError(errno, "chmod");
  }
  struct timespec ts[2] = {{0, UTIME_OMIT}, {f->meta.mtime_sec, static_cast<long>(f->meta.mtime_nsec)}};
  if (env_.Futimens(fd, ts) != 0) return ErrnoError(errno, "set times");
  // Large files start writing back now, so that the group commit's flush
  // finds the work mostly done while more files arrive; small ones are left
  // to the commit's one syncfs.
  if (f->size >= (1u << 20)) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  f->fd.Reset();
  if (f->delta && !f->delta->prev.empty()) env_.UnlinkAt(f->dir.get(), f->delta->prev.c_str(), 0);
  if (f->base.valid() && stats_) stats_->moves.fetch_add(1, std::memory_order_relaxed);
  pending_.push_back({f->temp, f->path, false});
  pending_paths_.insert(f->path);
  if (pending_.size() >= batch_.files || pending_bytes_ >= batch_.bytes) return LandInBackground();
  return Ok();
}

void Session::DropPartials() {
  if (file_ && file_->journal) file_->journal->Abandon();
  if (file_ && file_->direct) file_->direct->Abandon();
  if (file_ && !file_->journal) env_.UnlinkAt(file_->dir.get(), file_->temp.c_str(), 0);
  file_.reset();
  for (const auto& [path, d] : deltas_) {
    if (d->prev.empty()) continue;
    if (auto parent = OpenParent(root_.get(), path); parent) env_.UnlinkAt(parent->dir.get(), d->prev.c_str(), 0);
  }
  deltas_.clear();
}

Status Session::CommitIfPending(const std::string& path) {
  if (landing_paths_.count(path)) LB_RETURN_IF_ERROR(AwaitLanding());
  return pending_paths_.count(path) ? Land() : Ok();
}

Result<ParentRef> Session::Parent(const std::string& path) {
  auto p = OpenParent(root_.get(), path);
  if (p || p.error().code() != Code::kNotFound) return p;
  LB_RETURN_IF_ERROR(MkdirParents(env_, root_.get(), ParentOf(path)));
  return OpenParent(root_.get(), path);
}

Status Session::HandleSymlink(Reader& r) {
  std::string path = r.Path();
  std::string target = r.Str(kMaxPath);
  Meta meta = r.GetMeta();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kSymlink)));
  LB_RETURN_IF_ERROR(ValidatePath(path));
  if (target.empty() || target.find('\0') != std::string::npos) return InvalidArgument("bad symlink target");
  LB_RETURN_IF_ERROR(CommitIfPending(path));
  LB_ASSIGN_OR_RETURN(auto parent, Parent(path));
  std::string name = TempName(path, ".link");
  env_.UnlinkAt(parent.dir.get(), name.c_str(), 0);
  if (env_.SymlinkAt(target.c_str(), parent.dir.get(), name.c_str()) != 0) {
    return IoError(errno, "create symlink '" + Printable(path) + "'");
  }
  LB_RETURN_IF_ERROR(ApplyMeta(env_, parent.dir.get(), name.c_str(), EntryType::kSymlink, meta));
  pending_.push_back({name, path, true});
  pending_paths_.insert(path);
  return Ok();
}

Status Session::HandleMkdir(Reader& r) {
  std::string path = r.Path();
  Meta meta = r.GetMeta();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kMkdir)));
  LB_RETURN_IF_ERROR(ValidatePath(path));
  LB_RETURN_IF_ERROR(CommitIfPending(path));
  LB_ASSIGN_OR_RETURN(auto parent, Parent(path));
  if (env_.MkdirAt(parent.dir.get(), parent.base.c_str(), 0700) != 0) {
    if (errno != EEXIST) return IoError(errno, "mkdir '" + Printable(path) + "'");
    struct stat st;
    if (::fstatat(parent.dir.get(), parent.base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
      LB_RETURN_IF_ERROR(RemoveTree(env_, parent.dir.get(), parent.base));
      if (env_.MkdirAt(parent.dir.get(), parent.base.c_str(), 0700) != 0) return IoError(errno, "mkdir");
    }
  }
  dirty_dirs_.insert(ParentOf(path));
  return ApplyMeta(env_, parent.dir.get(), parent.base.c_str(), EntryType::kDir, meta);
}

Status Session::HandleHardlink(Reader& r) {
  std::string path = r.Path();
  std::string existing = r.Path();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kHardlink)));
  LB_RETURN_IF_ERROR(ValidatePath(path));
  LB_RETURN_IF_ERROR(ValidatePath(existing));
  LB_RETURN_IF_ERROR(Land());
  LB_ASSIGN_OR_RETURN(auto from, OpenParent(root_.get(), existing));
  LB_ASSIGN_OR_RETURN(auto to, Parent(path));
  std::string tmp = TempName(path, ".hl");
  env_.UnlinkAt(to.dir.get(), tmp.c_str(), 0);
  if (env_.LinkAt(from.dir.get(), from.base.c_str(), to.dir.get(), tmp.c_str(), 0) != 0) {
    return IoError(errno, "link '" + Printable(path) + "' to '" + Printable(existing) + "'");
  }
  if (env_.RenameAt(to.dir.get(), tmp.c_str(), to.dir.get(), to.base.c_str()) != 0) {
    int err = errno;
    env_.UnlinkAt(to.dir.get(), tmp.c_str(), 0);
    if (err != EISDIR && err != ENOTEMPTY && err != EEXIST) return IoError(err, "rename '" + Printable(path) + "'");
    LB_RETURN_IF_ERROR(RemoveTree(env_, to.dir.get(), to.base));
    if (env_.LinkAt(from.dir.get(), from.base.c_str(), to.dir.get(), to.base.c_str(), 0) != 0) {
      return IoError(errno, "link '" + Printable(path) + "'");
    }
  }
  // rename() between two links of one inode does nothing: drop the spare.
  env_.UnlinkAt(to.dir.get(), tmp.c_str(), 0);
  dirty_dirs_.insert(ParentOf(path));
  return Ok();
}

Status Session::HandleDelete(Reader& r) {
  std::string path = r.Path();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kDelete)));
  LB_RETURN_IF_ERROR(ValidatePath(path));
  LB_RETURN_IF_ERROR(Land());
  auto parent = OpenParent(root_.get(), path);
  if (!parent) return parent.error().code() == Code::kNotFound ? Ok() : parent.error();
  LB_RETURN_IF_ERROR(RemoveTree(env_, parent->dir.get(), parent->base));
  env_.UnlinkAt(parent->dir.get(), TempName(path, ".part").c_str(), 0);  // a crashed transfer's partial
  dirty_dirs_.insert(ParentOf(path));
  return Ok();
}

Status Session::HandleRename(Reader& r) {
  std::string from = r.Path();
  std::string to = r.Path();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kRename)));
  LB_RETURN_IF_ERROR(ValidatePath(from));
  LB_RETURN_IF_ERROR(ValidatePath(to));
  if (IsWithin(to, from)) return InvalidArgument("cannot move '" + Printable(from) + "' into itself");
  LB_RETURN_IF_ERROR(Land());
  auto a = OpenParent(root_.get(), from);
  if (!a) return a.error().code() == Code::kNotFound ? Ok() : a.error();
  LB_ASSIGN_OR_RETURN(auto b, Parent(to));
  if (env_.RenameAt(a->dir.get(), a->base.c_str(), b.dir.get(), b.base.c_str()) != 0) {
    int err = errno;
    if (err == ENOENT) return Ok();  // already gone: the sync that follows settles it
    if (err != EISDIR && err != ENOTEMPTY && err != EEXIST && err != ENOTDIR) return IoError(err, "rename");
    LB_RETURN_IF_ERROR(RemoveTree(env_, b.dir.get(), b.base));
    if (env_.RenameAt(a->dir.get(), a->base.c_str(), b.dir.get(), b.base.c_str()) != 0) return IoError(errno, "rename");
  }
  dirty_dirs_.insert(ParentOf(from));
  dirty_dirs_.insert(ParentOf(to));
  return Ok();
}

Status Session::HandleSetMeta(Reader& r) {
  std::string path = r.Path();
  Meta meta = r.GetMeta();
  LB_RETURN_IF_ERROR(r.Finish(static_cast<uint8_t>(Type::kSetMeta)));
  LB_RETURN_IF_ERROR(ValidatePath(path, true));
  // Renames into a directory move its mtime: commit them first.
  LB_RETURN_IF_ERROR(Land());
  if (path.empty()) return ApplyMeta(env_, root_.get(), "", EntryType::kDir, meta);
  auto parent = OpenParent(root_.get(), path);
  if (!parent) return parent.error().code() == Code::kNotFound ? Ok() : parent.error();
  auto e = StatEntry(parent->dir.get(), parent->base.c_str(), path);
  if (!e) return e.error().code() == Code::kNotFound ? Ok() : e.error();
  dirty_dirs_.insert(ParentOf(path));
  return ApplyMeta(env_, parent->dir.get(), parent->base.c_str(), e->type, meta);
}

Status Session::Commit() {
  LB_RETURN_IF_ERROR(Land());
  // 3. The directories holding the new names (and whatever else changed in
  // them since the last commit) are durable.
  if (dirty_dirs_.size() <= kFsyncEach) {
    for (const auto& d : dirty_dirs_) {
      auto fd = OpenDirBeneath(root_.get(), d);
      if (fd && env_.Fsync(fd->get()) != 0) return IoError(errno, "fsync directory '" + Printable(d) + "'");
    }
  } else if (!dirty_dirs_.empty() && env_.Syncfs(root_.get()) != 0) {
    return IoError(errno, "syncfs");
  }
  if (stats_ && !dirty_dirs_.empty()) stats_->last_commit_unix_ms.store(NowUnixMs(), std::memory_order_relaxed);
  dirty_dirs_.clear();
  return Ok();
}

Status Session::Land() {
  LB_RETURN_IF_ERROR(AwaitLanding());
  if (pending_.empty()) return Ok();
  LB_RETURN_IF_ERROR(LandBatch(pending_, dirty_dirs_));
  pending_.clear();
  pending_paths_.clear();
  pending_bytes_ = 0;
  return Ok();
}

Status Session::LandInBackground() {
  LB_RETURN_IF_ERROR(AwaitLanding());
  landing_files_ = std::exchange(pending_, {});
  landing_paths_ = std::exchange(pending_paths_, {});
  pending_bytes_ = 0;
  try {
    landing_ = std::async(std::launch::async, [this] { return LandBatch(landing_files_, landing_dirs_); });
  } catch (const std::system_error&) {
    return AwaitLanding();  // no thread to spare: the batch lands on this one
  }
  return Ok();
}

Status Session::AwaitLanding() {
  if (landing_files_.empty()) return Ok();
  Status s = landing_.valid() ? landing_.get() : LandBatch(landing_files_, landing_dirs_);
  landing_files_.clear();
  landing_paths_.clear();
  dirty_dirs_.merge(landing_dirs_);
  landing_dirs_.clear();
  return s;
}

Status Session::LandBatch(const std::vector<Pending>& batch, std::set<std::string>& changed) {
  // Directories opened once per batch (files come in path order).
  std::map<std::string, UniqueFd> dirs;
  auto dir_of = [&](const std::string& path) -> Result<int> {
    std::string d = ParentOf(path);
    auto it = dirs.find(d);
    if (it != dirs.end()) return it->second.get();
    LB_ASSIGN_OR_RETURN(auto parent, Parent(path));
    return dirs.emplace(d, std::move(parent.dir)).first->second.get();
  };
  // 1. The temporary files' contents are durable.
  if (batch.size() <= kFsyncEach) {
    for (const auto& p : batch) {
      if (p.symlink) continue;
      LB_ASSIGN_OR_RETURN(int dir, dir_of(p.path));
      UniqueFd fd(env_.OpenAt(dir, p.temp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid() || env_.Fsync(fd.get()) != 0) return IoError(errno, "fsync '" + Printable(p.path) + "'");
    }
  } else if (env_.Syncfs(root_.get()) != 0) {
    return IoError(errno, "syncfs");
  }
  // 2. They take their final names.
  for (const auto& p : batch) {
    LB_ASSIGN_OR_RETURN(int dir, dir_of(p.path));
    std::string base = p.path.substr(p.path.rfind('/') == std::string::npos ? 0 : p.path.rfind('/') + 1);
    if (env_.RenameAt(dir, p.temp.c_str(), dir, base.c_str()) != 0) {
      int err = errno;
      if (err != EISDIR && err != ENOTEMPTY && err != EEXIST) return IoError(err, "rename '" + Printable(p.path) + "'");
      LB_RETURN_IF_ERROR(RemoveTree(env_, dir, base));
      if (env_.RenameAt(dir, p.temp.c_str(), dir, base.c_str()) != 0) {
        return IoError(errno, "rename '" + Printable(p.path) + "'");
      }
    }
    changed.insert(ParentOf(p.path));
  }
  if (stats_) {
    stats_->files.fetch_add(batch.size(), std::memory_order_relaxed);
    stats_->commits.fetch_add(1, std::memory_order_relaxed);
    stats_->last_commit_unix_ms.store(NowUnixMs(), std::memory_order_relaxed);
  }
  return Ok();
}

Receiver::Receiver(Config config) : config_(std::move(config)) {}

Status Receiver::Recover() {
  // A receiver killed earlier left temporary files: partials of files the
  // source may since have deleted, previous versions, links, and journals
  // of in-place updates. The sealed journals are applied; everything else
  // goes (the source resends whatever is still needed).
  UniqueFd root(::open(config_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return Ok();  // created by the first session
  uint64_t applied = 0;
  std::optional<Error> failed;
  auto n = RemoveTempNames(*config_.env, root.get(), [&](int dir, const std::string& name) {
    if (!IsJournalName(name)) return false;
    Status s = ApplyJournal(*config_.env, dir, name);
    if (s.ok()) {
      ++applied;
      return true;  // applied and removed
    }
    if (s.error().code() == Code::kDataLoss) return false;  // never sealed: its file was never touched
    if (!failed) failed = s.error().Wrap("applying journal " + name);
    return true;  // kept for the next try
  });
  {
    std::lock_guard lock(mu_);
    recover_ = failed.has_value();
  }
  if (applied > 0) {
    stats_.journals_recovered.fetch_add(applied);
    spdlog::info("replication {}: completed {} in-place update(s) an interrupted session left", config_.volume, applied);
  }
  if (!n.ok()) {
    spdlog::warn("replication {}: cannot remove leftover temporary files: {}", config_.volume, n.error().message());
  } else if (*n > 0) {
    stats_.leftovers_removed.fetch_add(*n);
    spdlog::info("replication {}: removed {} temporary file(s) an interrupted session left", config_.volume, *n);
  }
  if (failed) return *failed;
  return Ok();
}

Receiver::~Receiver() {
  Stop();
  std::list<std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& w : workers) w->thread.join();
}

void Receiver::Stop() {
  stopping_.store(true);
  std::lock_guard lock(mu_);
  for (auto& c : conns_) c->Shutdown();
}

std::string Receiver::connected_source() const {
  std::lock_guard lock(mu_);
  return source_;
}

size_t Receiver::active_connections() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& w : workers_) n += w->done.load() ? 0 : 1;
  return n;
}

size_t Receiver::unjoined_threads() const {
  std::lock_guard lock(mu_);
  return workers_.size();
}

void Receiver::JoinFinished() {
  std::list<std::unique_ptr<Worker>> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if ((*it)->done.load()) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : finished) w->thread.join();
}


void Receiver::Run(Listener& listener) {
  if (Status st = Recover(); !st.ok()) {
    spdlog::error("replication {}: {}; no source may write until it is", config_.volume, st.error().message());
  }
  stats_.ready.store(true);
  auto backoff = std::chrono::milliseconds(10);
  int64_t last_warning_ms = 0;
  while (!stopping_.load()) {
    auto fd = listener.Accept();
    if (!fd) {
      // Only Close() ends the loop; any accept error (out of descriptors, of
      // memory, or anything unexpected) is retried with backoff.
      if (stopping_.load() || fd.error().code() == Code::kUnavailable) break;
      stats_.accept_errors.fetch_add(1, std::memory_order_relaxed);
      if (NowUnixMs() - last_warning_ms > 10000) {
        spdlog::warn("replication {}: {}; retrying (the volume cannot receive until this clears)", config_.volume,
                     fd.error().message());
        last_warning_ms = NowUnixMs();
      }
      JoinFinished();  // frees the descriptors and threads of ended sessions
      if (!listener.Pause(backoff)) break;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      continue;
    }
    backoff = std::chrono::milliseconds(10);
    JoinFinished();
    std::string address = PeerOf(fd->get()).host;
    auto refuse = [&](const char* why) {
      stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("replication {}: refused a connection from {}: {}", config_.volume, address, why);
    };
    std::lock_guard lock(mu_);
    if (stopping_.load()) break;
    if (workers_.size() >= config_.max_connections) {
      refuse("too many connections");
      continue;
    }
    size_t& pending = unauthenticated_[address];
    if (pending >= config_.max_unauthenticated_per_address) {
      refuse("too many unauthenticated connections from this address");
      continue;
    }
    ++pending;
    auto w = std::make_unique<Worker>();
    Worker* wp = w.get();
    try {
      w->thread = std::thread([this, wp, address, f = std::move(*fd)]() mutable {
        ServeOne(std::move(f), address);
        wp->done.store(true);
      });
    } catch (const std::system_error& e) {  // out of threads or memory: the connection is closed
      ReleaseSlotLocked(address);
      refuse(e.what());
      continue;
    }
    workers_.push_back(std::move(w));
  }
}

void Receiver::ReleaseSlotLocked(const std::string& address) {
  auto it = unauthenticated_.find(address);
  if (it != unauthenticated_.end() && --it->second == 0) unauthenticated_.erase(it);
}

void Receiver::ServeOne(UniqueFd fd, std::string address) {
  // The connection holds one of its address's unauthenticated slots until it
  // has proved the key (ServeSession calls `authenticated`) or ends.
  struct Slot {
    Receiver* r;
    const std::string& address;
    bool held = true;
    void Release() {
      if (!std::exchange(held, false)) return;
      std::lock_guard lock(r->mu_);
      r->ReleaseSlotLocked(address);
    }
    ~Slot() { Release(); }
  } slot{this, address};
  const std::function<void()> authenticated = [&slot] { slot.Release(); };
  auto conn = Conn::Accept(std::move(fd), config_.key, config_.handshake_timeout);
  if (!conn) {
    // A flood of these must not flood the log: one warning per 10 s, with a count.
    uint64_t n = stats_.handshakes_failed.fetch_add(1, std::memory_order_relaxed) + 1;
    int64_t now = NowUnixMs(), last = last_handshake_warning_ms_.load();
    if (now - last >= 10000 && last_handshake_warning_ms_.compare_exchange_strong(last, now)) {
      spdlog::warn("replication {}: refused a connection from {}: {} ({} failed handshakes so far)", config_.volume,
                   address, conn.error().message(), n);
    }
    return;
  }
  std::shared_ptr<Conn> c(std::move(*conn));
  {
    std::lock_guard lock(mu_);
    if (stopping_.load()) return;
    conns_.push_back(c);
  }
  Status st = ServeSession(*c, authenticated);
  if (!st.ok()) {
    if (st.error().code() == Code::kUnavailable) {
      spdlog::info("replication {}: session with {} ended: {}", config_.volume, c->peer(), st.error().message());
    } else {
      spdlog::warn("replication {}: session with {} ended: {}", config_.volume, c->peer(), st.error().message());
    }
    // Fails quietly when the connection is gone. The source may still be
    // sending: read on briefly so that it reads the ERROR before the end.
    if (c->Send(EncodeError(st.error())).ok()) c->Linger(std::chrono::seconds(2));
  }
  std::lock_guard lock(mu_);
  conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end());
}

Status Receiver::ServeSession(Conn& conn, const std::function<void()>& authenticated) {
  LB_ASSIGN_OR_RETURN(auto first, conn.Recv(config_.handshake_timeout));
  LB_ASSIGN_OR_RETURN(Hello hello, DecodeHello(first));
  authenticated();  // the TLS handshake proved the key and HELLO is well-formed
  if (hello.version != kProtocolVersion) {
    return FailedPrecondition("protocol version " + std::to_string(hello.version) + " is not supported (this end speaks " +
                              std::to_string(kProtocolVersion) + ")");
  }
  if (hello.volume != config_.volume) {
    return InvalidArgument("this port receives volume '" + config_.volume + "', not '" + hello.volume + "'");
  }
  if (config_.admit) LB_RETURN_IF_ERROR(config_.admit(hello));
  bool writer = hello.mode == kModeSync;
  if (writer) {
    std::lock_guard lock(mu_);
    if (writer_busy_) return Unavailable("busy: region '" + source_ + "' is already sending this volume");
    writer_busy_ = true;
    source_ = hello.region;
  }
  struct Release {
    Receiver* r;
    bool writer;
    ~Release() {
      if (!writer) return;
      std::lock_guard lock(r->mu_);
      r->writer_busy_ = false;
      r->source_.clear();
    }
  } release{this, writer};
  if (writer) {
    bool recover;
    {
      std::lock_guard lock(mu_);
      recover = recover_;
    }
    if (recover) LB_RETURN_IF_ERROR(Recover());
  }
  auto reply = [&](std::string f) { return conn.Send(f); };
  auto session = Session::Open(config_.root, reply, &stats_, !writer, *config_.env, config_.batch);
  if (!session) return session.error();
  stats_.sessions.fetch_add(1, std::memory_order_relaxed);
  uint32_t features = kFeaturePatch | kFeatureBasis | kFeatureBase | kFeatureRepeat;
  LB_RETURN_IF_ERROR(conn.Send(Writer(Type::kWelcome).U32(features).Finish()));
  struct Unapplied {  // a journal sealed but not applied: recover before the next writer
    Receiver* r;
    Session* s;
    ~Unapplied() {
      if (s->TakeUnapplied().empty()) return;
      std::lock_guard lock(r->mu_);
      r->recover_ = true;
    }
  } unapplied{this, session->get()};
  spdlog::info("replication {}: {} session from region {} ({})", config_.volume, writer ? "sync" : "read-only", hello.region,
           conn.peer());
  while (true) {
    auto f = conn.Recv();
    if (!f) {
      (void)(*session)->Commit();  // completed files land; a partial one waits for the next session
      return f.error();
    }
    Status st = (*session)->Handle(*f);
    if (!st.ok()) {
      if (st.error().code() == Code::kResourceExhausted) (*session)->DropPartials();
      (void)(*session)->Commit();
      return st;
    }
  }
}

}  // namespace lifeboat::replicate
