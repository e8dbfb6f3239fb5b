#include "backup/backup.h"

#include <fcntl.h>
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

// A backup in named stages, run in this order by Run(): Begin (lock, index,
// the previous backup of this source), Scan (the tree into items), Compare
// (files unchanged since the previous backup keep its chunks), ReadAndStore
// (readers chunk the other files; sealers compress, encrypt and pack the new
// chunks), WriteTrees (directories, children first) and SaveSnapshot.
class BackupRun {
 public:
  BackupRun(repo::Repository& repo, const BackupOptions& o, Progress& progress)
      : repo_(repo), o_(o), pr_(progress), start_(std::chrono::steady_clock::now()), start_ns_(NowUnixNs()) {}

  Result<BackupResult> Run() {
    if (repo_.read_only()) {
      return PermissionDenied("the location is ReadOnly: backups are written to a ReadWrite location");
    }
    root_.Reset(::open(o_.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_.valid()) return ErrnoError(errno, "open " + o_.path);
    LB_ASSIGN_OR_RETURN(auto lock, repo_.AcquireLock(false, "backup " + o_.source));
    LB_RETURN_IF_ERROR(Begin());
    LB_RETURN_IF_ERROR(Scan());
    Compare();
    LB_RETURN_IF_ERROR(ReadAndStore());
    LB_RETURN_IF_ERROR(WriteTrees());
    return SaveSnapshot();
  }

 private:
  Status Begin() {
    LB_RETURN_IF_ERROR(repo_.LoadIndex());
    LB_ASSIGN_OR_RETURN(size_t adopted, repo_.AdoptUnindexedPacks());
    if (adopted > 0) spdlog::info("backup: reusing {} packs an interrupted backup uploaded", adopted);
    LB_ASSIGN_OR_RETURN(snapshots_, repo_.ListSnapshots());
    for (const auto& s : snapshots_) {
      if (s.source == o_.source) parent_ = &s;
    }
    return Ok();
  }

  // The whole tree into items_, parents first; devices, FIFOs and sockets skipped.
  Status Scan() {
    std::unordered_map<std::string, int> dirs;
    uint64_t skipped_special = 0;
    Status walked = fstree::Walk(root_.get(), "", true, false, [&](fstree::Entry& e) -> Status {
      if (e.type == EntryType::kOther) {
        ++skipped_special;
        return Ok();
      }
      Item it;
      it.parent = e.path.empty() ? -1 : dirs.at(fstree::ParentOf(e.path));
      it.e = std::move(e);
      int idx = static_cast<int>(items_.size());
      if (it.parent >= 0) items_[static_cast<size_t>(it.parent)].children.push_back(idx);
      if (it.e.type == EntryType::kDir) dirs[it.e.path] = idx;
      if (it.e.type == EntryType::kFile) {
        pr_.files_total++;
        pr_.bytes_total += it.e.size;
      }
      items_.push_back(std::move(it));
      return Ok();
    });
    if (!walked.ok()) return walked.error().Wrap("scan " + o_.path);
    if (skipped_special > 0) spdlog::info("backup: skipped {} devices, FIFOs and sockets", skipped_special);
    if (items_.empty() || items_[0].e.type != EntryType::kDir) return FailedPrecondition(o_.path + " is not a directory");
    return Ok();
  }

  // A file whose size, mtime, ctime and inode match the previous backup's,
  // and whose chunks are all still stored, keeps them unread; the others go
  // to to_read_.
  void Compare() {
    ParentTrees previous(repo_, parent_ != nullptr ? std::optional<Id>(parent_->TreeId()) : std::nullopt);
    for (size_t i = 0; i < items_.size(); ++i) {
      Item& it = items_[i];
      if (it.e.type == EntryType::kDir) {
        ++st_.dirs;
        continue;
      }
      if (it.e.type != EntryType::kFile) continue;
      ++st_.files;
      const Node* prev = previous.Find(it.e.path);
      bool same = prev != nullptr && prev->type == NodeType::kFile && prev->size == it.e.size &&
                  prev->mtime_sec == it.e.meta.mtime_sec && prev->mtime_nsec == it.e.meta.mtime_nsec &&
                  prev->ctime_sec == it.e.ctime_sec && prev->ctime_nsec == it.e.ctime_nsec &&
                  prev->inode == it.e.ino &&
                  std::all_of(prev->content.begin(), prev->content.end(), [&](const Id& c) { return repo_.Has(c); });
      if (same) {
        it.content = prev->content;
        ++st_.files_unchanged;
        st_.bytes += it.e.size;
        pr_.files_done++;
        pr_.bytes_done += it.e.size;
      } else {
        (prev != nullptr ? st_.files_changed : st_.files_new)++;
        to_read_.push_back(static_cast<int>(i));
      }
    }
    pr_.scanning = false;
  }

  // o.readers threads read, chunk and name the files of to_read_; the chunks
  // the repository does not hold yet go through a bounded queue to
  // o.sealers threads that compress, seal and pack them. A file that cannot
  // be read is recorded in errors_; a repository that cannot be written
  // stops everything.
  Status ReadAndStore() {
    ChunkQueue queue(16 << 20);
    std::vector<std::thread> sealers;
    for (int s = 0; s < std::max(1, o_.sealers); ++s) sealers.emplace_back([&] { Seal(queue); });
    std::vector<std::thread> readers;
    for (int r = 0; r < std::max(1, o_.readers); ++r) readers.emplace_back([&] { Read(queue); });
    for (auto& t : readers) t.join();
    queue.Close();
    for (auto& t : sealers) t.join();
    if (fatal_) return *fatal_;
    return Ok();
  }

  void Seal(ChunkQueue& queue) {
    repo::Packer packer;
    SealJob job;
    while (queue.Pop(job)) {
      if (abort_) continue;
      Status added = repo_.AddBlob(packer, repo::BlobType::kData, job.id, job.data, o_.compression_level);
      if (!added.ok()) Fail(added.error());
    }
    if (!abort_) {
      Status flushed = repo_.FlushPacker(packer);
      if (!flushed.ok()) Fail(flushed.error());
    }
  }

  void Read(ChunkQueue& queue) {
    for (size_t k; !abort_ && (k = next_++) < to_read_.size();) {
      Item& it = items_[static_cast<size_t>(to_read_[k])];
      Status s = ChunkFile(it, queue);
      if (!s.ok() && !abort_) {
        std::lock_guard l(mu_);
        errors_.push_back({it.e.path, s.error().message()});
        it.failed = true;
      }
    }
  }

  // Chunks one file (opened beneath the root, never through a symlink) and
  // queues its new chunks. The metadata is taken from the open file.
  Status ChunkFile(Item& it, ChunkQueue& queue) {
    LB_ASSIGN_OR_RETURN(auto parent_dir, fstree::OpenParent(root_.get(), it.e.path));
    UniqueFd fd(::openat(parent_dir.dir.get(), parent_dir.base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Error(Code::kNotFound, errno == ENOENT ? "deleted during the backup" : std::strerror(errno));
    struct stat sb;
    if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode)) return FailedPrecondition("no longer a regular file");
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    it.e.meta = fstree::MetaOf(sb);
    it.e.ctime_sec = sb.st_ctim.tv_sec;
    it.e.ctime_nsec = static_cast<uint32_t>(sb.st_ctim.tv_nsec);
    uint64_t got = 0;
    LB_RETURN_IF_ERROR(chunk::ChunkRange(
        fd.get(), 0, static_cast<uint64_t>(sb.st_size), repo_.config().chunker,
        [&](uint64_t, std::span<const uint8_t> bytes) -> Status {
          if (abort_) return Aborted("backup stopped");
          Id id = repo::BlobId(repo_.keys(), bytes);
          it.content.push_back(id);
          got += bytes.size();
          pr_.bytes_done += bytes.size();
          if (repo_.Claim(id)) {
            new_blobs_++;
            new_bytes_ += bytes.size();
            queue.Push({id, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())});
          }
          return Ok();
        }));
    it.e.size = got;
    read_bytes_ += got;
    pr_.files_done++;
    return Ok();
  }

  void Fail(Error e) {
    std::lock_guard l(mu_);
    if (!fatal_) fatal_ = std::move(e);
    abort_ = true;
  }

  // Directory trees, children before parents (the scan put parents first);
  // a file that failed is left out of its directory.
  Status WriteTrees() {
    repo::Packer packer;
    for (size_t i = items_.size(); i-- > 0;) {
      Item& it = items_[i];
      if (it.e.type != EntryType::kDir) continue;
      Tree tree;
      for (int c : it.children) {
        const Item& child = items_[static_cast<size_t>(c)];
        if (!child.failed) tree.nodes.push_back(ToNode(child));
      }
      std::sort(tree.nodes.begin(), tree.nodes.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
      LB_ASSIGN_OR_RETURN(it.subtree, repo_.SaveTree(packer, tree));
    }
    LB_RETURN_IF_ERROR(repo_.FlushPacker(packer));
    return repo_.FlushIndex();
  }

  Result<BackupResult> SaveSnapshot() {
    st_.bytes += read_bytes_;
    st_.new_blobs = new_blobs_;
    st_.new_bytes = new_bytes_;
    st_.stored_bytes = repo_.stored_bytes();
    st_.errors = errors_.size();
    st_.files -= std::count_if(items_.begin(), items_.end(), [](const Item& i) { return i.failed; });
    st_.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    BackupResult res;
    auto& snap = res.snapshot;
    const Item& root = items_[0];
    snap.time_ns = start_ns_;
    snap.host = Hostname();
    snap.source = o_.source;
    snap.path = o_.path;
    snap.tags = o_.tags;
    snap.schedule = o_.schedule;
    snap.tree = repo::HexOf(root.subtree);
    snap.parent = parent_ != nullptr ? parent_->id : "";
    snap.root_mode = root.e.meta.mode;
    snap.root_uid = root.e.meta.uid;
    snap.root_gid = root.e.meta.gid;
    snap.root_mtime_sec = root.e.meta.mtime_sec;
    snap.root_mtime_nsec = root.e.meta.mtime_nsec;
    snap.stats = st_;
    LB_ASSIGN_OR_RETURN(snap.id, repo_.SaveSnapshot(snap));
    res.errors = std::move(errors_);
    return res;
  }

  repo::Repository& repo_;
  const BackupOptions& o_;
  Progress& pr_;
  const std::chrono::steady_clock::time_point start_;
  const int64_t start_ns_;
  UniqueFd root_;
  std::vector<repo::Snapshot> snapshots_;
  const repo::Snapshot* parent_ = nullptr;  // the previous backup of this source, in snapshots_
  std::vector<Item> items_;
  std::vector<int> to_read_;  // indexes into items_ of the files to read
  repo::SnapshotStats st_;
  // While ReadAndStore runs:
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> new_blobs_{0}, new_bytes_{0}, read_bytes_{0};
  std::atomic<bool> abort_{false};
  std::mutex mu_;  // guards errors_, fatal_ and the failed flags
  std::vector<FileError> errors_;
  std::optional<Error> fatal_;
};

}  // namespace

Result<BackupResult> CreateBackup(repo::Repository& repo, const BackupOptions& o, Progress* progress) {
  Progress local;
  return BackupRun(repo, o, progress != nullptr ? *progress : local).Run();
}

chunk::ChunkParams DefaultChunker() { return chunk::ChunkParams::ForAverage(64 << 10); }

}  // namespace lifeboat::backup
