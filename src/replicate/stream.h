// Continuous replication of one volume to one target: connect (with backoff),
// compare everything once (the initial sync, or the resync after a dropped
// connection), then send each coalesced batch of changes the Watcher reports,
// and verify by content hashes every verify_every, repairing what differs.
// Knows its lag: the age of the oldest change not yet durable at the target.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "replicate/sender.h"
#include "replicate/watcher.h"

namespace lifeboat::replicate {

struct StreamConfig {
  LinkConfig link;
  std::string target_region;
  std::chrono::milliseconds coalesce{200};
  std::chrono::milliseconds verify_every{0};  // zero: never
  // Where this source keeps the block records of the large files it sent to
  // this target (replicate/blocks.h), for in-place patches after a restart.
  // Empty: kept in memory (a restart sends the next change by delta).
  std::string blocks_dir;
  // Called on the stream's thread after each pass that succeeded: its kind
  // ("full", "changes" or "verify") and duration (for a histogram).
  std::function<void(std::string_view kind, double seconds)> on_pass;
};

struct StreamStatus {
  std::string target_region;
  std::string state;  // connecting, initial-sync, resync, streaming, verifying, disconnected
  std::string last_error;
  bool in_sync = false;  // connected, nothing pending, at least one full pass done
  double rpo_seconds = 0;
  uint64_t pending_files = 0, pending_bytes = 0;
  uint64_t bytes_sent = 0, bytes_received = 0, files_sent = 0, passes = 0;
  uint64_t files_patched = 0;  // of files_sent: large files updated in place
  double rate_bytes_per_second = 0;  // file bytes of the current (or last) pass
  uint64_t files_total = 0, files_done = 0, bytes_total = 0, bytes_done = 0;
  double eta_seconds = -1;
  int64_t last_sync_unix_ms = 0;
  int64_t last_verify_unix_ms = 0;
  int64_t last_verify_differences = -1;
  nlohmann::ordered_json ToJson() const;
};

// What a stream has yet to send (files or bytes), for status: between
// passes, what the last one left unsent (kept while disconnected); during a
// pass, what it counted so far and has not done, but never less than what
// the last pass left, less what this one did, since a pass counts its work
// as it lists (0 while a retry compares listings is not "nothing pending").
uint64_t PendingCount(bool busy, uint64_t total, uint64_t done, uint64_t unsent);

class Stream {
 public:
  // Watching starts at once (no change made from now on can be missed);
  // sending starts on Start().
  static Result<std::unique_ptr<Stream>> Create(StreamConfig config);
  ~Stream();
  void Start();
  void Stop();
  StreamStatus GetStatus() const;
  // Compares both trees by content over a separate read-only session.
  Result<std::vector<Difference>> Verify() const;
  const StreamConfig& config() const { return config_; }

 private:
  explicit Stream(StreamConfig config, std::unique_ptr<Watcher> watcher);
  void Loop();
  lifeboat::Status RunSession();
  void Sleep(std::chrono::milliseconds d);

  StreamConfig config_;
  std::unique_ptr<BlockIndex> blocks_;  // config_.link.blocks points here
  std::unique_ptr<Watcher> watcher_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Link* link_ = nullptr;                 // guarded by mu_; the session in use
  std::string state_ = "connecting";     // guarded by mu_
  std::string last_error_;               // guarded by mu_
  bool synced_once_ = false;             // guarded by mu_
  bool busy_ = false;                    // guarded by mu_: a pass is running
  uint64_t unsent_files_ = 0, unsent_bytes_ = 0;  // guarded by mu_: left by a failed pass, until one succeeds
  std::optional<std::chrono::steady_clock::time_point> unsynced_since_;  // guarded by mu_
  std::chrono::steady_clock::time_point pass_started_{};                // guarded by mu_
  double last_rate_ = 0;                 // guarded by mu_
  uint64_t bytes_sent_before_ = 0, bytes_received_before_ = 0;  // of finished sessions; guarded by mu_
  uint64_t files_sent_ = 0, passes_ = 0, files_patched_ = 0;  // guarded by mu_
  int64_t last_sync_ms_ = 0, last_verify_ms_ = 0, last_verify_diffs_ = -1;  // guarded by mu_
  Progress progress_;
  std::map<uint64_t, std::set<std::string>> links_;  // used by the loop thread only
  std::map<std::string, std::chrono::steady_clock::time_point> deferred_since_;  // loop thread only
};

}  // namespace lifeboat::replicate
