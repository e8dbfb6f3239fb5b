// Restore: a backup's tree written into a directory, crash-safe (temporary
// names, then rename) and never through a symlink, metadata last.
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

using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;
using fstree::EntryType;

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

// A restore in named stages, run in this order by Run(): Plan (the entries
// to restore), OpenTarget, MakeDirectories, WriteFiles (on workers; batches
// made durable, then renamed into place), PlaceLinks (symlinks, then hard
// links), ApplyDirectoryMeta. Every change to the target goes through the
// options' Env. An entry that cannot be restored is recorded in the result's
// `failed` and the rest goes on; only what makes the whole restore pointless
// (no lock, no index, no target, a flush that failed) is an error.
class Restorer {
 public:
  Restorer(repo::Repository& repo, const repo::Snapshot& snapshot, const RestoreOptions& o, Progress& progress)
      : repo_(repo), snapshot_(snapshot), o_(o), pr_(progress), env_(*o.env) {}

  Result<RestoreResult> Run() {
    LB_ASSIGN_OR_RETURN(auto lock, repo_.AcquireLock(false, "restore " + snapshot_.id.substr(0, 8)));
    LB_RETURN_IF_ERROR(repo_.LoadIndex());
    Plan();
    LB_RETURN_IF_ERROR(OpenTarget());
    MakeDirectories();
    WriteFiles();
    if (Cancelled()) {
      if (env_.Syncfs(root_.get()) != 0) return ErrnoError(errno, "flush the restored files in " + o_.to + " to disk");
      return lifeboat::Cancelled("the restore into " + o_.to + " was stopped after " +
                                 std::to_string(res_.files) + " files");
    }
    PlaceLinks();
    ApplyDirectoryMeta();
    if (env_.Syncfs(root_.get()) != 0) return ErrnoError(errno, "flush the restored files in " + o_.to + " to disk");
    std::sort(res_.failed.begin(), res_.failed.end(),
              [](const FileError& a, const FileError& b) { return a.path < b.path; });
    return std::move(res_);
  }

 private:
  // A file written under a temporary name, not yet renamed into place.
  struct Written {
    UniqueFd dir;
    std::string tmp, base, path;
    uint64_t size = 0;
  };
  using Batch = std::vector<Written>;

  bool Cancelled() const { return o_.cancel != nullptr && o_.cancel->load(); }

  void Failed(const std::string& path, const std::string& why) {
    std::lock_guard l(mu_);
    res_.failed.push_back({path, why});
  }

  // The entries to restore, parents first: every directory holding something
  // included (or included itself), the included files and symlinks.
  void Plan() {
    std::deque<std::pair<std::string, Id>> queue{{"", snapshot_.TreeId()}};
    while (!queue.empty()) {
      auto [path, id] = queue.front();
      queue.pop_front();
      auto tree = repo_.LoadTree(id);
      if (!tree.ok()) {
        Failed(path.empty() ? "/" : path + "/", "directory listing unreadable: " + tree.error().message());
        continue;
      }
      for (auto& n : tree->nodes) {
        std::string p = fstree::JoinPath(path, n.name);
        if (n.type == NodeType::kDir) {
          queue.push_back({p, n.subtree});
          dirs_.push_back({p, std::move(n)});
        } else if (IncludeMatches(o_.include, p)) {
          (n.type == NodeType::kFile ? files_ : links_).push_back({p, std::move(n)});
        }
      }
    }
    std::set<std::string> needed;
    for (const auto* list : {&files_, &links_}) {
      for (const auto& f : *list) {
        for (std::string p = fstree::ParentOf(f.path); !p.empty(); p = fstree::ParentOf(p)) {
          if (!needed.insert(p).second) break;
        }
      }
    }
    std::erase_if(dirs_, [&](const RItem& d) { return !needed.count(d.path) && !IncludeMatches(o_.include, d.path); });
    std::sort(dirs_.begin(), dirs_.end(), [](const RItem& a, const RItem& b) { return a.path < b.path; });
    // The first name of each hard-link group gets the content; the others
    // are linked to it afterwards.
    for (auto& f : files_) {
      if (f.node.nlink > 1) {
        auto [it, first] = link_source_.try_emplace(f.node.inode, f.path);
        if (!first) {
          link_followers_.push_back(std::move(f));
          continue;
        }
      }
      pr_.files_total++;
      pr_.bytes_total += f.node.size;
      content_.push_back(std::move(f));
    }
    files_.clear();
    pr_.scanning = false;
  }

  // Creates and opens the target; removes what a restore killed earlier left
  // there (temporary files are never anyone's data).
  Status OpenTarget() {
    std::error_code ec;
    std::filesystem::create_directories(o_.to, ec);
    root_.Reset(::open(o_.to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_.valid()) return ErrnoError(errno, "open the target " + o_.to);
    LB_ASSIGN_OR_RETURN(res_.leftovers_removed, fstree::RemoveTempNames(env_, root_.get()));
    return Ok();
  }

  void MakeDirectories() {
    for (const auto& d : dirs_) {
      auto parent = fstree::OpenParent(root_.get(), d.path);
      if (!parent.ok()) {
        Failed(d.path + "/", parent.error().message());
        continue;
      }
      if (env_.MkdirAt(parent->dir.get(), parent->base.c_str(), 0700) != 0) {
        int err = errno;
        struct stat sb;
        if (err != EEXIST || ::fstatat(parent->dir.get(), parent->base.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(sb.st_mode)) {
          Failed(d.path + "/", err == EEXIST ? "exists in the target and is not a directory" : std::strerror(err));
          continue;
        }
      }
      ++res_.dirs;
    }
  }

  // The files with content, on o.workers threads; each thread makes its
  // files visible in batches (CommitBatch).
  void WriteFiles() {
    std::atomic<size_t> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < std::max(1, o_.workers); ++w) {
      workers.emplace_back([&] {
        Batch batch;
        uint64_t batch_bytes = 0;
        for (size_t k; !Cancelled() && (k = next++) < content_.size();) {
          WriteFile(content_[k], batch);
          batch_bytes += content_[k].node.size;
          if (batch.size() >= 128 || batch_bytes >= (256u << 20)) {
            CommitBatch(batch);
            batch_bytes = 0;
          }
        }
        CommitBatch(batch);
      });
    }
    for (auto& t : workers) t.join();
  }

  // Writes one file's content and metadata under a temporary name.
  void WriteFile(const RItem& f, Batch& batch) {
    auto parent = fstree::OpenParent(root_.get(), f.path);
    if (!parent.ok()) return Failed(f.path, parent.error().message());
    std::string tmp = TempName(parent->base);
    UniqueFd fd(env_.OpenAt(parent->dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return Failed(f.path, std::string("create: ") + std::strerror(errno));
    auto abandon = [&](const std::string& why) {
      env_.UnlinkAt(parent->dir.get(), tmp.c_str(), 0);
      std::lock_guard l(mu_);
      failed_sources_.insert(f.path);
      res_.failed.push_back({f.path, why});
    };
    if (env_.Ftruncate(fd.get(), static_cast<off_t>(f.node.size)) != 0) return abandon(std::strerror(errno));
    uint64_t off = 0;
    for (const Id& c : f.node.content) {
      auto data = repo_.LoadBlob(c);
      if (!data.ok()) return abandon(data.error().message());
      if (off + data->size() > f.node.size) return abandon("its chunks are longer than its size");
      if (!AllZero(*data)) {  // the truncate left a hole there already
        size_t done = 0;
        while (done < data->size()) {
          ssize_t w = env_.PWrite(fd.get(), data->data() + done, data->size() - done, static_cast<off_t>(off + done));
          if (w < 0) {
            if (errno == EINTR) continue;
            return abandon(std::string("write: ") + std::strerror(errno));
          }
          done += static_cast<size_t>(w);
        }
      }
      off += data->size();
      pr_.bytes_done += data->size();
    }
    if (off != f.node.size) return abandon("its chunks are shorter than its size");
    Status m = fstree::ApplyMeta(env_, parent->dir.get(), tmp.c_str(), EntryType::kFile, MetaOf(f.node));
    if (!m.ok()) return abandon(m.error().message());
    fd.Reset();
    batch.push_back({std::move(parent->dir), tmp, parent->base, f.path, f.node.size});
    pr_.files_done++;
    std::lock_guard l(mu_);
    ++res_.files;
    res_.bytes += f.node.size;
  }

  // Makes a batch durable (one syncfs), then renames each file into place:
  // no final name ever shows a file whose content could still be lost.
  void CommitBatch(Batch& batch) {
    if (batch.empty()) return;
    int flush_err = env_.Syncfs(root_.get()) == 0 ? 0 : errno;
    for (auto& w : batch) {
      int err = flush_err;
      if (err == 0 && env_.RenameAt(w.dir.get(), w.tmp.c_str(), w.dir.get(), w.base.c_str()) != 0) err = errno;
      if (err == 0) continue;
      env_.UnlinkAt(w.dir.get(), w.tmp.c_str(), 0);
      std::lock_guard l(mu_);
      failed_sources_.insert(w.path);
      std::string why = flush_err != 0 ? std::string("flush to disk: ") + std::strerror(err)
                        : err == EISDIR ? "exists in the target as a directory"
                                        : std::strerror(err);
      res_.failed.push_back({w.path, why});
      --res_.files;
      res_.bytes -= w.size;
    }
    batch.clear();
  }

  // Creates an entry under a temporary name with `make`, applies its
  // metadata, renames it into place.
  bool Place(const RItem& item, const std::function<int(int dirfd, const char* tmp)>& make) {
    auto parent = fstree::OpenParent(root_.get(), item.path);
    if (!parent.ok()) return Failed(item.path, parent.error().message()), false;
    std::string tmp = TempName(parent->base);
    if (make(parent->dir.get(), tmp.c_str()) != 0) return Failed(item.path, std::strerror(errno)), false;
    Status m = fstree::ApplyMeta(env_, parent->dir.get(), tmp.c_str(),
                                 item.node.type == NodeType::kSymlink ? EntryType::kSymlink : EntryType::kFile,
                                 MetaOf(item.node));
    if (!m.ok() || env_.RenameAt(parent->dir.get(), tmp.c_str(), parent->dir.get(), parent->base.c_str()) != 0) {
      std::string why = m.ok() ? std::strerror(errno) : m.error().message();
      env_.UnlinkAt(parent->dir.get(), tmp.c_str(), 0);
      return Failed(item.path, why), false;
    }
    return true;
  }

  void PlaceLinks() {
    for (const auto& l : links_) {
      if (Place(l, [&](int dirfd, const char* tmp) { return env_.SymlinkAt(l.node.link.c_str(), dirfd, tmp); })) {
        ++res_.symlinks;
      }
    }
    for (const auto& f : link_followers_) {
      const std::string& src = link_source_[f.node.inode];
      if (failed_sources_.count(src)) {
        Failed(f.path, "hard link to " + src + ", which could not be restored");
        continue;
      }
      auto sp = fstree::OpenParent(root_.get(), src);
      if (!sp.ok()) {
        Failed(f.path, sp.error().message());
        continue;
      }
      if (Place(f, [&](int dirfd, const char* tmp) {
            return env_.LinkAt(sp->dir.get(), sp->base.c_str(), dirfd, tmp, 0);
          })) {
        ++res_.hardlinks;
      }
    }
  }

  // Directory metadata last, deepest first (creating entries changed their
  // mtimes). A directory that could not be made (a symlink planted in its
  // place, say) is listed once, and its metadata refused by ApplyMeta, never
  // followed.
  void ApplyDirectoryMeta() {
    std::set<std::string> already_failed;
    for (const auto& f : res_.failed) already_failed.insert(f.path);
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      if (already_failed.count(it->path + "/")) continue;
      auto parent = fstree::OpenParent(root_.get(), it->path);
      if (!parent.ok()) continue;
      Status m = fstree::ApplyMeta(env_, parent->dir.get(), parent->base.c_str(), EntryType::kDir, MetaOf(it->node));
      if (!m.ok()) Failed(it->path + "/", m.error().message());
    }
    if (o_.include.empty()) {  // the whole tree: the target takes the backed-up directory's own metadata
      fstree::Meta m{snapshot_.root_mode, snapshot_.root_uid, snapshot_.root_gid, snapshot_.root_mtime_sec,
                     snapshot_.root_mtime_nsec};
      Status s = fstree::ApplyMeta(env_, root_.get(), "", EntryType::kDir, m);
      if (!s.ok()) Failed("/", s.error().message());
    }
  }

  repo::Repository& repo_;
  const repo::Snapshot& snapshot_;
  const RestoreOptions& o_;
  Progress& pr_;
  Env& env_;
  RestoreResult res_;
  std::mutex mu_;  // guards res_ and failed_sources_ while WriteFiles runs
  std::vector<RItem> dirs_, files_, links_;
  std::vector<RItem> content_, link_followers_;  // files_ split: those written, those linked to another
  std::map<uint64_t, std::string> link_source_;  // inode -> the path that gets the content
  std::set<std::string> failed_sources_;
  UniqueFd root_;
};

}  // namespace

Result<RestoreResult> Restore(repo::Repository& repo, const repo::Snapshot& snapshot, const RestoreOptions& o,
                              Progress* progress) {
  Progress local;
  return Restorer(repo, snapshot, o, progress != nullptr ? *progress : local).Run();
}

}  // namespace lifeboat::backup
