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

}  // namespace lifeboat::backup
