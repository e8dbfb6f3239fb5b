#include "backup/backup.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>
#include <unordered_map>

#include "chunk/fastcdc.h"
#include "core/clock.h"
#include "core/fd.h"
#include "core/fs.h"
#include "fstree/tree.h"

namespace lifeboat::backup {
namespace {

using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;
using fstree::EntryType;

std::string BaseOf(const std::string& path) {
  size_t s = path.rfind('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

// A queue of chunks on their way to the sealers, bounded in bytes.
struct SealJob {
  Id id;
  std::string data;
};

class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}
  void Push(SealJob job) {
    std::unique_lock l(mu_);
    not_full_.wait(l, [&] { return bytes_ + job.data.size() <= capacity_ || jobs_.empty() || closed_; });
    bytes_ += job.data.size();
    jobs_.push_back(std::move(job));
    not_empty_.notify_one();
  }
  bool Pop(SealJob& out) {
    std::unique_lock l(mu_);
    not_empty_.wait(l, [&] { return !jobs_.empty() || closed_; });
    if (jobs_.empty()) return false;
    out = std::move(jobs_.front());
    jobs_.pop_front();
    bytes_ -= out.data.size();
    not_full_.notify_all();
    return true;
  }
  void Close() {
    std::lock_guard l(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<SealJob> jobs_;
  size_t bytes_ = 0, capacity_;
  bool closed_ = false;
};

// One entry of the tree being backed up.
struct Item {
  fstree::Entry e;
  int parent = -1;
  std::vector<int> children;
  std::vector<Id> content;
  bool failed = false;
  Id subtree{};
};

Node ToNode(const Item& it) {
  Node n;
  n.name = BaseOf(it.e.path);
  n.type = it.e.type == EntryType::kDir ? NodeType::kDir : it.e.type == EntryType::kSymlink ? NodeType::kSymlink : NodeType::kFile;
  n.mode = it.e.meta.mode;
  n.uid = it.e.meta.uid;
  n.gid = it.e.meta.gid;
  n.mtime_sec = it.e.meta.mtime_sec;
  n.mtime_nsec = it.e.meta.mtime_nsec;
  n.ctime_sec = it.e.ctime_sec;
  n.ctime_nsec = it.e.ctime_nsec;
  n.size = it.e.size;
  n.inode = it.e.ino;
  n.nlink = it.e.nlink;
  n.link = it.e.link;
  n.subtree = it.subtree;
  n.content = it.content;
  return n;
}

// The previous backup's directories, loaded as they are asked for.
class ParentTrees {
 public:
  ParentTrees(repo::Repository& repo, std::optional<Id> root) : repo_(repo), root_(root) {}
  const Node* Find(const std::string& path) {
    const Tree* t = TreeOf(fstree::ParentOf(path));
    if (t == nullptr) return nullptr;
    std::string name = BaseOf(path);
    auto it = std::lower_bound(t->nodes.begin(), t->nodes.end(), name,
                               [](const Node& n, const std::string& k) { return n.name < k; });
    return it != t->nodes.end() && it->name == name ? &*it : nullptr;
  }

 private:
  const Tree* TreeOf(const std::string& dir) {
    auto c = cache_.find(dir);
    if (c != cache_.end()) return c->second ? &*c->second : nullptr;
    std::optional<Id> id;
    if (dir.empty()) {
      id = root_;
    } else if (const Node* n = Find(dir); n != nullptr && n->type == NodeType::kDir) {
      id = n->subtree;
    }
    std::optional<Tree> tree;
    if (id) {
      auto t = repo_.LoadTree(*id);
      if (t.ok()) {
        tree = std::move(*t);
      } else {
        spdlog::warn("backup: previous backup's directory '{}' unreadable ({}); its files are read again", dir,
                     t.error().message());
      }
    }
    auto& slot = cache_[dir] = std::move(tree);
    return slot ? &*slot : nullptr;
  }
  repo::Repository& repo_;
  std::optional<Id> root_;
  std::unordered_map<std::string, std::optional<Tree>> cache_;
};

}  // namespace

Result<BackupResult> CreateBackup(repo::Repository& repo, const BackupOptions& o, Progress* progress) {
  Progress local;
  Progress& pr = progress != nullptr ? *progress : local;
  auto start = std::chrono::steady_clock::now();
  int64_t start_ns = NowUnixNs();
  if (repo.read_only()) {
    return PermissionDenied("the location is ReadOnly: backups are written to a ReadWrite location");
  }
  UniqueFd root(::open(o.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoError(errno, "open " + o.path);
  LB_ASSIGN_OR_RETURN(auto lock, repo.AcquireLock(false, "backup " + o.source));
  LB_RETURN_IF_ERROR(repo.LoadIndex());
  LB_ASSIGN_OR_RETURN(size_t adopted, repo.AdoptUnindexedPacks());
  if (adopted > 0) spdlog::info("backup: reusing {} packs an interrupted backup uploaded", adopted);

  // The previous backup of this source, if any.
  LB_ASSIGN_OR_RETURN(auto snaps, repo.ListSnapshots());
  const repo::Snapshot* parent = nullptr;
  for (const auto& s : snaps) {
    if (s.source == o.source) parent = &s;
  }
  ParentTrees previous(repo, parent != nullptr ? std::optional<Id>(parent->TreeId()) : std::nullopt);

  // Scan.
  std::vector<Item> items;
  std::unordered_map<std::string, int> dirs;
  std::vector<FileError> errors;
  uint64_t skipped_special = 0;
  Status walked = fstree::Walk(root.get(), "", true, false, [&](fstree::Entry& e) -> Status {
    if (e.type == EntryType::kOther) {
      ++skipped_special;
      return Ok();
    }
    Item it;
    it.parent = e.path.empty() ? -1 : dirs.at(fstree::ParentOf(e.path));
    it.e = std::move(e);
    int idx = static_cast<int>(items.size());
    if (it.parent >= 0) items[static_cast<size_t>(it.parent)].children.push_back(idx);
    if (it.e.type == EntryType::kDir) dirs[it.e.path] = idx;
    if (it.e.type == EntryType::kFile) {
      pr.files_total++;
      pr.bytes_total += it.e.size;
    }
    items.push_back(std::move(it));
    return Ok();
  });
  if (!walked.ok()) return walked.error().Wrap("scan " + o.path);
  if (skipped_special > 0) spdlog::info("backup: skipped {} devices, FIFOs and sockets", skipped_special);

  repo::SnapshotStats st;
  std::vector<int> to_read;
  for (size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    if (it.e.type == EntryType::kDir) {
      ++st.dirs;
      continue;
    }
    if (it.e.type != EntryType::kFile) continue;
    ++st.files;
    const Node* prev = previous.Find(it.e.path);
    bool same = prev != nullptr && prev->type == NodeType::kFile && prev->size == it.e.size &&
                prev->mtime_sec == it.e.meta.mtime_sec && prev->mtime_nsec == it.e.meta.mtime_nsec &&
                prev->ctime_sec == it.e.ctime_sec && prev->ctime_nsec == it.e.ctime_nsec && prev->inode == it.e.ino &&
                std::all_of(prev->content.begin(), prev->content.end(), [&](const Id& c) { return repo.Has(c); });
    if (same) {
      it.content = prev->content;
      ++st.files_unchanged;
      st.bytes += it.e.size;
      pr.files_done++;
      pr.bytes_done += it.e.size;
    } else {
      (prev != nullptr ? st.files_changed : st.files_new)++;
      to_read.push_back(static_cast<int>(i));
    }
  }
  pr.scanning = false;

  // Read, chunk and name (readers) -> compress, seal and pack (sealers).
  const chunk::ChunkParams params = repo.config().chunker;
  ChunkQueue queue(16 << 20);
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> new_blobs{0}, new_bytes{0}, read_bytes{0};
  std::mutex err_mu;
  std::optional<Error> fatal;
  std::atomic<bool> abort{false};
  auto fail = [&](Error e) {
    std::lock_guard l(err_mu);
    if (!fatal) fatal = std::move(e);
    abort = true;
  };
  std::vector<std::thread> sealers;
  for (int s = 0; s < std::max(1, o.sealers); ++s) {
    sealers.emplace_back([&] {
      repo::Packer packer;
      SealJob job;
      while (queue.Pop(job)) {
        if (abort) continue;
        Status added = repo.AddBlob(packer, repo::BlobType::kData, job.id, job.data, o.compression_level);
        if (!added.ok()) fail(added.error());
      }
      if (!abort) {
        Status flushed = repo.FlushPacker(packer);
        if (!flushed.ok()) fail(flushed.error());
      }
    });
  }
  std::vector<std::thread> readers;
  for (int r = 0; r < std::max(1, o.readers); ++r) {
    readers.emplace_back([&] {
      for (size_t k; !abort && (k = next++) < to_read.size();) {
        Item& it = items[static_cast<size_t>(to_read[k])];
        auto file_error = [&](const std::string& why) {
          std::lock_guard l(err_mu);
          errors.push_back({it.e.path, why});
          it.failed = true;
        };
        auto parent_dir = fstree::OpenParent(root.get(), it.e.path);
        if (!parent_dir.ok()) {
          file_error(parent_dir.error().message());
          continue;
        }
        UniqueFd fd(::openat(parent_dir->dir.get(), parent_dir->base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) {
          file_error(errno == ENOENT ? "deleted during the backup" : std::strerror(errno));
          continue;
        }
        struct stat sb;
        if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
          file_error("no longer a regular file");
          continue;
        }
        ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
        it.e.meta = fstree::MetaOf(sb);
        it.e.ctime_sec = sb.st_ctim.tv_sec;
        it.e.ctime_nsec = static_cast<uint32_t>(sb.st_ctim.tv_nsec);
        uint64_t got = 0;
        Status s = chunk::ChunkRange(fd.get(), 0, static_cast<uint64_t>(sb.st_size), params,
                                     [&](uint64_t, std::span<const uint8_t> bytes) -> Status {
                                       if (abort) return Aborted("backup stopped");
                                       Id id = repo::BlobId(repo.keys(), bytes);
                                       it.content.push_back(id);
                                       got += bytes.size();
                                       pr.bytes_done += bytes.size();
                                       if (repo.Claim(id)) {
                                         new_blobs++;
                                         new_bytes += bytes.size();
                                         queue.Push({id, std::string(reinterpret_cast<const char*>(bytes.data()),
                                                                     bytes.size())});
                                       }
                                       return Ok();
                                     });
        if (!s.ok()) {
          if (!abort) file_error(s.error().message());
          continue;
        }
        it.e.size = got;
        read_bytes += got;
        pr.files_done++;
      }
    });
  }
  for (auto& t : readers) t.join();
  queue.Close();
  for (auto& t : sealers) t.join();
  if (fatal) return *fatal;

  // Trees, children before parents (the walk put parents first).
  repo::Packer packer;
  for (size_t i = items.size(); i-- > 0;) {
    Item& it = items[i];
    if (it.e.type != EntryType::kDir) continue;
    Tree tree;
    for (int c : it.children) {
      const Item& child = items[static_cast<size_t>(c)];
      if (!child.failed) tree.nodes.push_back(ToNode(child));
    }
    std::sort(tree.nodes.begin(), tree.nodes.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
    LB_ASSIGN_OR_RETURN(it.subtree, repo.SaveTree(packer, tree));
  }
  LB_RETURN_IF_ERROR(repo.FlushPacker(packer));
  LB_RETURN_IF_ERROR(repo.FlushIndex());
  if (items.empty() || items[0].e.type != EntryType::kDir) return FailedPrecondition(o.path + " is not a directory");

  st.bytes += read_bytes;
  st.new_blobs = new_blobs;
  st.new_bytes = new_bytes;
  st.stored_bytes = repo.stored_bytes();
  st.errors = errors.size();
  st.files -= std::count_if(items.begin(), items.end(), [](const Item& i) { return i.failed; });
  st.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BackupResult res;
  auto& snap = res.snapshot;
  snap.time_ns = start_ns;
  snap.host = Hostname();
  snap.source = o.source;
  snap.path = o.path;
  snap.tags = o.tags;
  snap.schedule = o.schedule;
  snap.tree = repo::HexOf(items[0].subtree);
  snap.parent = parent != nullptr ? parent->id : "";
  snap.root_mode = items[0].e.meta.mode;
  snap.root_uid = items[0].e.meta.uid;
  snap.root_gid = items[0].e.meta.gid;
  snap.root_mtime_sec = items[0].e.meta.mtime_sec;
  snap.root_mtime_nsec = items[0].e.meta.mtime_nsec;
  snap.stats = st;
  LB_ASSIGN_OR_RETURN(snap.id, repo.SaveSnapshot(snap));
  res.errors = std::move(errors);
  return res;
}

// ---------------------------------------------------------------- restore

bool IncludeMatches(const std::vector<std::string>& globs, const std::string& path) {
  if (globs.empty()) return true;
  for (std::string g : globs) {
    while (g.starts_with("/")) g.erase(0, 1);
    while (g.size() > 1 && g.ends_with("/")) g.pop_back();
    for (std::string p = path; !p.empty(); p = fstree::ParentOf(p)) {
      if (::fnmatch(g.c_str(), p.c_str(), FNM_PATHNAME) == 0) return true;
    }
  }
  return false;
}

namespace {

struct RItem {
  std::string path;
  Node node;
};

bool AllZero(const std::string& s) {
  return s.find_first_not_of('\0') == std::string::npos;
}

fstree::Meta MetaOf(const Node& n) {
  fstree::Meta m;
  m.mode = n.mode;
  m.uid = n.uid;
  m.gid = n.gid;
  m.mtime_sec = n.mtime_sec;
  m.mtime_nsec = n.mtime_nsec;
  return m;
}

std::string TempName(const std::string& base) {
  static std::atomic<uint64_t> counter{0};
  return std::string(fstree::kTempPrefix) + "restore-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
         "-" + base.substr(0, 64);
}

}  // namespace

Result<RestoreResult> Restore(repo::Repository& repo, const repo::Snapshot& snapshot, const RestoreOptions& o,
                              Progress* progress) {
  Progress local;
  Progress& pr = progress != nullptr ? *progress : local;
  RestoreResult res;
  std::mutex mu;
  auto failed = [&](const std::string& path, const std::string& why) {
    std::lock_guard l(mu);
    res.failed.push_back({path, why});
  };
  LB_ASSIGN_OR_RETURN(auto lock, repo.AcquireLock(false, "restore " + snapshot.id.substr(0, 8)));
  LB_RETURN_IF_ERROR(repo.LoadIndex());
  const Id root_id = snapshot.TreeId();

  // The entries to restore, parents first.
  std::vector<RItem> dirs, files, links;
  Node root_node;
  {
    std::deque<std::pair<std::string, Id>> queue{{"", root_id}};
    while (!queue.empty()) {
      auto [path, id] = queue.front();
      queue.pop_front();
      auto tree = repo.LoadTree(id);
      if (!tree.ok()) {
        failed(path.empty() ? "/" : path + "/", "directory listing unreadable: " + tree.error().message());
        continue;
      }
      for (auto& n : tree->nodes) {
        std::string p = fstree::JoinPath(path, n.name);
        if (n.type == NodeType::kDir) {
          queue.push_back({p, n.subtree});
          dirs.push_back({p, std::move(n)});
        } else if (IncludeMatches(o.include, p)) {
          (n.type == NodeType::kFile ? files : links).push_back({p, std::move(n)});
        }
      }
    }
  }
  // Directories: those included, and those holding something included.
  std::set<std::string> needed;
  for (const auto* list : {&files, &links}) {
    for (const auto& f : *list) {
      for (std::string p = fstree::ParentOf(f.path); !p.empty(); p = fstree::ParentOf(p)) {
        if (!needed.insert(p).second) break;
      }
    }
  }
  std::erase_if(dirs, [&](const RItem& d) { return !needed.count(d.path) && !IncludeMatches(o.include, d.path); });
  std::sort(dirs.begin(), dirs.end(), [](const RItem& a, const RItem& b) { return a.path < b.path; });

  std::error_code ec;
  std::filesystem::create_directories(o.to, ec);
  UniqueFd root(::open(o.to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoError(errno, "open the target " + o.to);
  // A restore killed earlier left its temporary files; they are never anyone's data.
  LB_ASSIGN_OR_RETURN(res.leftovers_removed, fstree::RemoveTempNames(root.get()));

  for (const auto& d : dirs) {
    auto parent = fstree::OpenParent(root.get(), d.path);
    if (!parent.ok()) {
      failed(d.path + "/", parent.error().message());
      continue;
    }
    if (::mkdirat(parent->dir.get(), parent->base.c_str(), 0700) != 0) {
      struct stat sb;
      if (errno != EEXIST || ::fstatat(parent->dir.get(), parent->base.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(sb.st_mode)) {
        failed(d.path + "/", errno == EEXIST ? "exists in the target and is not a directory" : std::strerror(errno));
        continue;
      }
    }
    ++res.dirs;
  }

  // Files: the first name of each hard-link group gets the content; the
  // others are linked to it afterwards.
  std::map<uint64_t, std::string> link_source;
  std::vector<RItem> link_followers, content;
  for (auto& f : files) {
    if (f.node.nlink > 1) {
      auto [it, first] = link_source.try_emplace(f.node.inode, f.path);
      if (!first) {
        link_followers.push_back(std::move(f));
        continue;
      }
    }
    pr.files_total++;
    pr.bytes_total += f.node.size;
    content.push_back(std::move(f));
  }
  pr.scanning = false;
  std::set<std::string> failed_sources;
  std::atomic<size_t> next{0};
  auto restore_file = [&](const RItem& f, std::vector<std::tuple<UniqueFd, std::string, std::string, std::string>>& batch) {
    auto parent = fstree::OpenParent(root.get(), f.path);
    if (!parent.ok()) return failed(f.path, parent.error().message());
    std::string tmp = TempName(parent->base);
    UniqueFd fd(::openat(parent->dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return failed(f.path, std::string("create: ") + std::strerror(errno));
    auto abandon = [&](const std::string& why) {
      ::unlinkat(parent->dir.get(), tmp.c_str(), 0);
      std::lock_guard l(mu);
      failed_sources.insert(f.path);
      res.failed.push_back({f.path, why});
    };
    if (::ftruncate(fd.get(), static_cast<off_t>(f.node.size)) != 0) return abandon(std::strerror(errno));
    uint64_t off = 0;
    for (const Id& c : f.node.content) {
      auto data = repo.LoadBlob(c);
      if (!data.ok()) return abandon(data.error().message());
      if (off + data->size() > f.node.size) return abandon("its chunks are longer than its size");
      if (!AllZero(*data)) {
        size_t done = 0;
        while (done < data->size()) {
          ssize_t w = ::pwrite(fd.get(), data->data() + done, data->size() - done, static_cast<off_t>(off + done));
          if (w < 0) {
            if (errno == EINTR) continue;
            return abandon(std::string("write: ") + std::strerror(errno));
          }
          done += static_cast<size_t>(w);
        }
      }
      off += data->size();
      pr.bytes_done += data->size();
    }
    if (off != f.node.size) return abandon("its chunks are shorter than its size");
    Status m = fstree::ApplyMeta(parent->dir.get(), tmp.c_str(), EntryType::kFile, MetaOf(f.node));
    if (!m.ok()) return abandon(m.error().message());
    fd.Reset();
    batch.emplace_back(std::move(parent->dir), tmp, parent->base, f.path);
    pr.files_done++;
    std::lock_guard l(mu);
    ++res.files;
    res.bytes += f.node.size;
  };
  // Written files become visible in batches: flush the file system, then rename.
  auto commit = [&](std::vector<std::tuple<UniqueFd, std::string, std::string, std::string>>& batch) {
    if (batch.empty()) return;
    ::syncfs(root.get());
    for (auto& [dir, tmp, base, path] : batch) {
      if (::renameat(dir.get(), tmp.c_str(), dir.get(), base.c_str()) != 0) {
        int err = errno;
        ::unlinkat(dir.get(), tmp.c_str(), 0);
        std::lock_guard l(mu);
        failed_sources.insert(path);
        res.failed.push_back({path, err == EISDIR ? "exists in the target as a directory" : std::strerror(err)});
        --res.files;
      }
    }
    batch.clear();
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < std::max(1, o.workers); ++w) {
    workers.emplace_back([&] {
      std::vector<std::tuple<UniqueFd, std::string, std::string, std::string>> batch;
      uint64_t batch_bytes = 0;
      for (size_t k; (k = next++) < content.size();) {
        restore_file(content[k], batch);
        batch_bytes += content[k].node.size;
        if (batch.size() >= 128 || batch_bytes >= (256u << 20)) {
          commit(batch);
          batch_bytes = 0;
        }
      }
      commit(batch);
    });
  }
  for (auto& t : workers) t.join();

  auto place = [&](const RItem& item, const std::function<int(int dirfd, const char* tmp)>& make) {
    auto parent = fstree::OpenParent(root.get(), item.path);
    if (!parent.ok()) return failed(item.path, parent.error().message()), false;
    std::string tmp = TempName(parent->base);
    if (make(parent->dir.get(), tmp.c_str()) != 0) return failed(item.path, std::strerror(errno)), false;
    Status m = fstree::ApplyMeta(parent->dir.get(), tmp.c_str(),
                                    item.node.type == NodeType::kSymlink ? EntryType::kSymlink : EntryType::kFile,
                                    MetaOf(item.node));
    if (!m.ok() || ::renameat(parent->dir.get(), tmp.c_str(), parent->dir.get(), parent->base.c_str()) != 0) {
      std::string why = m.ok() ? std::strerror(errno) : m.error().message();
      ::unlinkat(parent->dir.get(), tmp.c_str(), 0);
      return failed(item.path, why), false;
    }
    return true;
  };
  for (const auto& l : links) {
    if (place(l, [&](int dirfd, const char* tmp) { return ::symlinkat(l.node.link.c_str(), dirfd, tmp); })) ++res.symlinks;
  }
  for (const auto& f : link_followers) {
    const std::string& src = link_source[f.node.inode];
    if (failed_sources.count(src)) {
      failed(f.path, "hard link to " + src + ", which could not be restored");
      continue;
    }
    auto sp = fstree::OpenParent(root.get(), src);
    if (!sp.ok()) {
      failed(f.path, sp.error().message());
      continue;
    }
    if (place(f, [&](int dirfd, const char* tmp) { return ::linkat(sp->dir.get(), sp->base.c_str(), dirfd, tmp, 0); })) {
      ++res.hardlinks;
    }
  }
  // Directory metadata last, deepest first (creating entries changed their mtimes).
  // A directory that could not be made (a symlink planted in its place, say)
  // is listed once, and its metadata refused by ApplyMeta, never followed.
  std::set<std::string> already_failed;
  for (const auto& f : res.failed) already_failed.insert(f.path);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    if (already_failed.count(it->path + "/")) continue;
    auto parent = fstree::OpenParent(root.get(), it->path);
    if (!parent.ok()) continue;
    Status m = fstree::ApplyMeta(parent->dir.get(), parent->base.c_str(), EntryType::kDir, MetaOf(it->node));
    if (!m.ok()) failed(it->path + "/", m.error().message());
  }
  if (o.include.empty()) {  // the whole tree: the target takes the backed-up directory's own metadata
    fstree::Meta m{snapshot.root_mode, snapshot.root_uid, snapshot.root_gid, snapshot.root_mtime_sec,
                      snapshot.root_mtime_nsec};
    Status s = fstree::ApplyMeta(root.get(), "", EntryType::kDir, m);
    if (!s.ok()) failed("/", s.error().message());
  }
  ::syncfs(root.get());
  std::sort(res.failed.begin(), res.failed.end(), [](const FileError& a, const FileError& b) { return a.path < b.path; });
  return res;
}

// ---------------------------------------------------------------- retention

std::vector<std::string> SelectForDeletion(const std::vector<repo::Snapshot>& snapshots, Duration ttl,
                                           const plan::Keep& keep, std::chrono::system_clock::time_point now) {
  std::vector<const repo::Snapshot*> newest_first;
  for (const auto& s : snapshots) newest_first.push_back(&s);
  std::sort(newest_first.begin(), newest_first.end(),
            [](const repo::Snapshot* a, const repo::Snapshot* b) { return a->time_ns > b->time_ns; });
  std::set<std::string> kept;
  if (!newest_first.empty()) kept.insert(newest_first[0]->id);
  for (const auto* s : newest_first) {
    if (s->stats.errors == 0) {
      kept.insert(s->id);  // the newest good one
      break;
    }
  }
  std::set<std::string> by_rule;
  auto bucket_rule = [&](int n, const char* fmt) {
    std::string last;
    int count = 0;
    for (const auto* s : newest_first) {
      if (count >= n) break;
      std::time_t t = static_cast<std::time_t>(s->time_ns / 1000000000);
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, fmt, &tm);
      if (buf != last) {
        by_rule.insert(s->id);
        last = buf;
        ++count;
      }
    }
  };
  for (int i = 0; i < keep.last && i < static_cast<int>(newest_first.size()); ++i) by_rule.insert(newest_first[static_cast<size_t>(i)]->id);
  bucket_rule(keep.hourly, "%Y-%m-%d %H");
  bucket_rule(keep.daily, "%Y-%m-%d");
  bucket_rule(keep.weekly, "%G-%V");
  bucket_rule(keep.monthly, "%Y-%m");
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  auto ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
  std::vector<std::string> out;
  for (const auto* s : newest_first) {
    if (kept.count(s->id)) continue;
    bool expired = now_ns - s->time_ns > ttl_ns;
    bool unselected = keep.any() && !by_rule.count(s->id);
    if (expired || unselected) out.push_back(s->id);
  }
  return out;
}

chunk::ChunkParams DefaultChunker() { return chunk::ChunkParams::ForAverage(64 << 10); }

}  // namespace lifeboat::backup
