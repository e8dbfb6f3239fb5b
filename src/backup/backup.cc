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

chunk::ChunkParams DefaultChunker() { return chunk::ChunkParams::ForAverage(64 << 10); }

}  // namespace lifeboat::backup
