#include "replicate/watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "fstree/tree.h"

namespace lifeboat::replicate {
namespace {

// How long a written file's close is remembered (BeingWritten's window).
constexpr auto kClosedMemory = std::chrono::seconds(10);
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM |
                           IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr auto kUnwatchedRescan = std::chrono::seconds(5);

}  // namespace

Result<std::unique_ptr<Watcher>> Watcher::Start(const std::string& root) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "inotify_init1");
  std::unique_ptr<Watcher> w(new Watcher(root, UniqueFd(fd)));
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError(errno, "pipe");
  w->wake_[0].Reset(p[0]);
  w->wake_[1].Reset(p[1]);
  {
    std::lock_guard lock(w->mu_);
    w->AddWatches("");
    if (w->paths_.empty()) return NotFound("cannot watch " + root + " (does it exist?)");
    w->full_ = true;  // the first Take asks for a full comparison
    w->first_ = std::chrono::steady_clock::now();
  }
  w->thread_ = std::thread([p = w.get()] { p->Loop(); });
  return w;
}

Watcher::Watcher(std::string root, UniqueFd fd) : root_(std::move(root)), fd_(std::move(fd)) {}

Watcher::~Watcher() { Stop(); }

void Watcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  char c = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_[1].get(), &c, 1);
  if (thread_.joinable()) thread_.join();
}

void Watcher::AddWatches(const std::string& rel) {
  UniqueFd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return;
  (void)fstree::WalkDirs(root.get(), rel, [&](const std::string& path) -> Status {
    std::string abs = path.empty() ? root_ : root_ + "/" + path;
    int wd = ::inotify_add_watch(fd_.get(), abs.c_str(), kMask);
    if (wd < 0) {
      if (errno == ENOSPC || errno == ENOMEM) {
        if (!limit_logged_) {
          spdlog::warn("replication: the inotify watch limit is reached under {} (raise "
                       "fs.inotify.max_user_watches); unwatched directories are rescanned every {}s",
                       root_, kUnwatchedRescan.count());
          limit_logged_ = true;
        }
        unwatched_.insert(path);
      }
      return Ok();
    }
    paths_[wd] = path;
    return Ok();
  });
}

void Watcher::Mark(const std::string& path, bool recursive) {
  if (dirty_.empty() && renames_.empty() && !full_) first_ = std::chrono::steady_clock::now();
  bool& r = dirty_[path];
  r = r || recursive;
}

void Watcher::Requeue(const std::vector<std::string>& paths, std::chrono::steady_clock::time_point since) {
  if (paths.empty()) return;
  std::lock_guard lock(mu_);
  bool was_empty = dirty_.empty() && renames_.empty() && !full_;
  for (const auto& p : paths) dirty_.try_emplace(p, false);
  first_ = was_empty ? since : std::min(first_, since);
  cv_.notify_all();
}

void Watcher::MovePaths(const std::string& from, const std::string& to) {
  for (auto& [wd, p] : paths_) {
    if (IsWithin(p, from)) p = to + p.substr(from.size());
  }
}

void Watcher::DropWatches(const std::string& rel) {
  for (auto it = paths_.begin(); it != paths_.end();) {
    if (IsWithin(it->second, rel)) {
      ::inotify_rm_watch(fd_.get(), it->first);
      it = paths_.erase(it);
    } else {
      ++it;
    }
  }
}

void Watcher::Handle(const inotify_event* ev) {
  if (ev->mask & IN_Q_OVERFLOW) {
    spdlog::warn("replication: inotify queue overflowed under {}; rescanning the whole volume", root_);
    if (!full_ && dirty_.empty()) first_ = std::chrono::steady_clock::now();
    full_ = true;
    return;
  }
  auto it = paths_.find(ev->wd);
  if (it == paths_.end()) return;
  if (ev->mask & IN_IGNORED) {
    paths_.erase(it);
    return;
  }
  const std::string dir = it->second;
  if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    if (dir.empty()) full_ = true;  // the volume root itself went away
    return;
  }
  if (ev->len == 0) {
    Mark(dir, false);  // the directory's own attributes
    return;
  }
  std::string path = JoinPath(dir, ev->name);
  bool is_dir = ev->mask & IN_ISDIR;
  if (ev->mask & IN_MOVED_FROM) {
    writing_.erase(path);  // the events of its new name tell the rest
    closed_.erase(path);
    moved_from_[ev->cookie] = {path, is_dir};
    Mark(path, false);
    Mark(dir, false);
    return;
  }
  if (ev->mask & IN_MOVED_TO) {
    auto from = moved_from_.find(ev->cookie);
    if (from != moved_from_.end()) {
      renames_.emplace_back(from->second.first, path);
      if (is_dir) MovePaths(from->second.first, path);
      moved_from_.erase(from);
    } else if (is_dir) {
      AddWatches(path);  // moved in from outside the volume
    }
    Mark(path, is_dir);
    Mark(dir, false);
    return;
  }
  if ((ev->mask & IN_CREATE) && is_dir) {
    AddWatches(path);
    Mark(path, true);
    Mark(dir, false);
    return;
  }
  // Created or written to, and not closed since: still being written (a file
  // opened with O_CREAT counts from its creation, before its first byte).
  if (ev->mask & (IN_CREATE | IN_MODIFY)) writing_.insert(path);
  if ((ev->mask & IN_CLOSE_WRITE) && writing_.erase(path) > 0) closed_[path] = std::chrono::steady_clock::now();
  if (ev->mask & IN_DELETE) {
    writing_.erase(path);
    closed_.erase(path);
  }
  Mark(path, false);
  if (ev->mask & (IN_CREATE | IN_DELETE)) Mark(dir, false);
}

bool Watcher::BeingWritten(const std::string& path, std::chrono::milliseconds closed_within) const {
  std::lock_guard lock(mu_);
  if (writing_.count(path) > 0) return true;
  auto it = closed_.find(path);
  return it != closed_.end() && std::chrono::steady_clock::now() - it->second < closed_within;
}

void Watcher::Loop() {
  alignas(struct inotify_event) char buf[64 * 1024];
  while (true) {
    struct pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    ::poll(p, 2, 1000);
    if (p[1].revents != 0) return;
    {
      std::lock_guard lock(mu_);
      auto now = std::chrono::steady_clock::now();
      if (!unwatched_.empty() && now - last_unwatched_scan_ >= kUnwatchedRescan) {
        last_unwatched_scan_ = now;
        for (const auto& d : unwatched_) Mark(d, true);
        cv_.notify_all();
      }
    }
    if (p[0].revents == 0) continue;
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n <= 0) continue;
    std::lock_guard lock(mu_);
    for (char* q = buf; q < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(q);
      Handle(ev);
      q += sizeof(struct inotify_event) + ev->len;
    }
    // A MOVED_FROM without its MOVED_TO in the same read left the volume.
    for (auto& [cookie, moved] : moved_from_) {
      if (moved.second) DropWatches(moved.first);
    }
    moved_from_.clear();
    cv_.notify_all();
  }
}

Changes Watcher::Take(std::chrono::milliseconds timeout, std::chrono::milliseconds coalesce,
                      const std::function<void(const Changes&)>& on_take) {
  std::unique_lock lock(mu_);
  auto has = [&] { return stopped_ || full_ || !dirty_.empty() || !renames_.empty(); };
  if (!cv_.wait_for(lock, timeout, has) || stopped_) return {};
  // The window runs from the first change (changes that piled up during a
  // long pass have waited long enough), and a quarter of it at least (files
  // a pass put back, Requeue, keep their first time: not a busy loop).
  cv_.wait_until(lock, std::max(first_ + coalesce, std::chrono::steady_clock::now() + coalesce / 4),
                 [&] { return stopped_; });
  if (stopped_) return {};
  Changes c;
  c.full = full_;
  c.first_seen = first_;
  c.renames = std::move(renames_);
  for (const auto& [path, recursive] : dirty_) c.roots.push_back({path, recursive});
  if (c.full) {
    c.roots = {{"", true}};
    c.renames.clear();
  }
  full_ = false;
  dirty_.clear();
  renames_.clear();
  // Closes older than any window a caller asks about are forgotten.
  auto now = std::chrono::steady_clock::now();
  std::erase_if(closed_, [&](const auto& kv) { return now - kv.second > kClosedMemory; });
  if (on_take && !c.empty()) on_take(c);
  return c;
}

void Watcher::Clear() {
  std::lock_guard lock(mu_);
  dirty_.clear();
  renames_.clear();
  full_ = false;
}

std::optional<std::chrono::steady_clock::time_point> Watcher::oldest() const {
  std::lock_guard lock(mu_);
  if (!full_ && dirty_.empty() && renames_.empty()) return std::nullopt;
  return first_;
}

size_t Watcher::pending() const {
  std::lock_guard lock(mu_);
  return dirty_.size() + renames_.size();
}

size_t Watcher::watches() const {
  std::lock_guard lock(mu_);
  return paths_.size();
}

size_t Watcher::unwatched() const {
  std::lock_guard lock(mu_);
  return unwatched_.size();
}

}  // namespace lifeboat::replicate
