// Watches a whole tree with inotify (new directories are watched as they
// appear) and turns events into the parts of the tree to compare: changed
// entries, their parent directories, new or moved-in directories (whole
// subtrees) and renames within the tree. A queue overflow or an unreadable
// event asks for a full rescan; directories that could not be watched (the
// watch limit) are rescanned periodically instead. No change is ever dropped
// silently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/inotify.h>

#include "core/fd.h"
#include "core/result.h"
#include "replicate/sender.h"

namespace lifeboat::replicate {

struct Changes {
  bool full = false;  // rescan everything
  std::vector<std::pair<std::string, std::string>> renames;
  std::vector<Root> roots;
  // When the oldest change in this batch was seen.
  std::chrono::steady_clock::time_point first_seen{};
  bool empty() const { return !full && renames.empty() && roots.empty(); }
};

class Watcher {
 public:
  static Result<std::unique_ptr<Watcher>> Start(const std::string& root);
  ~Watcher();

  // Waits until a change arrives (or `timeout`), then until `coalesce` after
  // the first change (a quarter of it at least) to gather the ones that
  // follow it, and takes them all. `on_take` runs while
  // they change hands (under the watcher's lock), so that whoever reports
  // lag never sees them in neither place.
  Changes Take(std::chrono::milliseconds timeout, std::chrono::milliseconds coalesce,
               const std::function<void(const Changes&)>& on_take = {});
  // Marks everything for a rescan (used after a reconnection).
  void Clear();
  // Whether a process has the file open for writing, as far as the events
  // tell (written to and not closed since), or closed it after writing less
  // than `closed_within` ago (a temporary file's rename over the old version
  // comes a moment after its close, and ext4 makes that rename wait for the
  // new file's writeback: long, for a large one).
  bool BeingWritten(const std::string& path,
                    std::chrono::milliseconds closed_within = std::chrono::milliseconds(0)) const;
  // Puts paths back for the next Take, as changed since `since` (files a pass
  // chose not to send yet).
  void Requeue(const std::vector<std::string>& paths, std::chrono::steady_clock::time_point since);
  // The oldest change not yet taken, if any.
  std::optional<std::chrono::steady_clock::time_point> oldest() const;
  size_t pending() const;
  size_t watches() const;
  size_t unwatched() const;
  void Stop();

 private:
  explicit Watcher(std::string root, UniqueFd fd);
  void Loop();
  void Handle(const inotify_event* ev);
  void AddWatches(const std::string& rel);  // rel and the directories below it
  void Mark(const std::string& path, bool recursive);
  void MovePaths(const std::string& from, const std::string& to);
  void DropWatches(const std::string& rel);

  std::string root_;
  UniqueFd fd_;
  UniqueFd wake_[2];
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<int, std::string> paths_;  // watch descriptor -> directory
  std::set<std::string> unwatched_;             // could not be watched (limit)
  std::map<std::string, bool> dirty_;           // path -> recursive
  std::set<std::string> writing_;               // files written to and not closed since
  std::map<std::string, std::chrono::steady_clock::time_point> closed_;  // written files' last close (recent ones)
  std::vector<std::pair<std::string, std::string>> renames_;
  std::map<uint32_t, std::pair<std::string, bool>> moved_from_;  // cookie -> path, is dir
  bool full_ = false;
  bool stopped_ = false;
  bool limit_logged_ = false;
  std::chrono::steady_clock::time_point first_{};
  std::chrono::steady_clock::time_point last_unwatched_scan_{};
};

}  // namespace lifeboat::replicate
