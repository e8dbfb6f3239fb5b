#include "replicate/stream.h"

#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/log.h"

namespace lifeboat::replicate {
namespace {

// How long a new file may be held back while it is being written.
constexpr auto kMaxDefer = std::chrono::seconds(5);
// New files at least this large also wait while they changed within the last
// coalescing window (smaller ones cost little to send again).
constexpr uint64_t kDeferRecentFrom = 1 << 20;
// ... or closed after writing less than this ago (BeingWritten).
constexpr auto kDeferClosed = std::chrono::milliseconds(1000);

using SteadyClock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

nlohmann::ordered_json StreamStatus::ToJson() const {
  using Json = nlohmann::ordered_json;
  // Times as RFC 3339 UTC, and null (not -1, 0 or "") for "not yet" or "none".
  auto time = [](int64_t unix_ms) {
    return unix_ms > 0 ? Json(FormatUtc(Clock::TimePoint(std::chrono::milliseconds(unix_ms)))) : Json();
  };
  Json j = {{"target", target_region},
            {"state", state},
            {"in_sync", in_sync},
            {"rpo_seconds", rpo_seconds},
            {"pending_files", pending_files},
            {"pending_bytes", pending_bytes},
            {"bytes_sent", bytes_sent},
            {"bytes_received", bytes_received},
            {"files_sent", files_sent},
            {"files_patched", files_patched},
            {"passes", passes},
            {"rate_bytes_per_second", rate_bytes_per_second},
            {"progress",
             {{"files_done", files_done},
              {"files_total", files_total},
              {"bytes_done", bytes_done},
              {"bytes_total", bytes_total},
              {"eta_seconds", eta_seconds >= 0 ? Json(eta_seconds) : Json()}}},
            {"last_sync", time(last_sync_unix_ms)},
            {"last_verify", time(last_verify_unix_ms)},
            {"last_verify_differences", last_verify_differences >= 0 ? Json(last_verify_differences) : Json()},
            {"last_error", last_error.empty() ? Json() : Json(last_error)}};
  return j;
}

Result<std::unique_ptr<Stream>> Stream::Create(StreamConfig config) {
  LB_ASSIGN_OR_RETURN(auto watcher, Watcher::Start(config.link.root));
  return std::unique_ptr<Stream>(new Stream(std::move(config), std::move(watcher)));
}

Stream::Stream(StreamConfig config, std::unique_ptr<Watcher> watcher)
    : config_(std::move(config)),
      blocks_(std::make_unique<BlockIndex>(config_.blocks_dir)),
      watcher_(std::move(watcher)) {
  config_.link.blocks = blocks_.get();
}

Stream::~Stream() { Stop(); }

void Stream::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Stream::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
    if (link_ != nullptr) link_->Shutdown();
    cv_.notify_all();
  }
  watcher_->Stop();  // wakes a Take in progress
  if (thread_.joinable()) thread_.join();
}

void Stream::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stop_.load(); });
}

void Stream::Loop() {
  constexpr auto kFirst = std::chrono::milliseconds(500), kMax = std::chrono::milliseconds(10'000);
  auto backoff = kFirst;
  while (!stop_.load()) {
    uint64_t passes_before;
    {
      std::lock_guard lock(mu_);
      passes_before = passes_;
    }
    lifeboat::Status st = RunSession();
    if (stop_.load()) break;
    {
      std::lock_guard lock(mu_);
      state_ = "disconnected";
      last_error_ = st.ok() ? "" : st.error().message();
      // A session that got work done starts the backoff over.
      backoff = passes_ > passes_before ? kFirst : std::min(backoff * 2, kMax);
    }
    std::string why = st.ok() ? "session ended" : st.error().message();
    LogWarn({{"volume", config_.link.volume}, {"target", config_.target_region}, {"error", why}},
            "replication {} -> {}: {}; retrying in {} ms", config_.link.volume, config_.target_region, why,
            backoff.count());
    Sleep(backoff);
  }
}

lifeboat::Status Stream::RunSession() {
  {
    std::lock_guard lock(mu_);
    state_ = "connecting";
  }
  auto opened = Link::Open(config_.link, kModeSync);
  if (!opened) return opened.error();
  std::unique_ptr<Link> link = std::move(*opened);
  {
    std::lock_guard lock(mu_);
    if (stop_.load()) return Ok();
    link_ = link.get();
    last_error_.clear();
  }
  struct Detach {
    Stream* s;
    Link* l;
    ~Detach() {
      std::lock_guard lock(s->mu_);
      s->bytes_sent_before_ += l->bytes_sent();
      s->bytes_received_before_ += l->bytes_received();
      s->link_ = nullptr;
    }
  } detach{this, link.get()};
  LogInfo({{"volume", config_.link.volume}, {"target", config_.target_region}},
          "replication {} -> {}: connected to {}", config_.link.volume, config_.target_region,
          config_.link.target.ToString());
  bool full = true;  // every session starts by comparing everything
  auto last_verify = SteadyClock::now();
  while (!stop_.load()) {
    Changes changes;
    bool verify = false;
    if (full) {
      // Changes seen so far are covered by the full comparison.
      auto oldest = watcher_->oldest();
      watcher_->Clear();
      changes.full = true;
      changes.roots = {{"", true}};
      changes.first_seen = oldest.value_or(SteadyClock::now());
    } else {
      auto wait = std::chrono::milliseconds(1000);
      if (config_.verify_every.count() > 0) {
        auto due = last_verify + config_.verify_every;
        if (SteadyClock::now() >= due) verify = true;
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(due - SteadyClock::now()));
        wait = std::max(wait, std::chrono::milliseconds(0));
      }
      if (!verify) {
        changes = watcher_->Take(wait, config_.coalesce, [this](const Changes& c) {
          std::lock_guard lock(mu_);
          busy_ = true;
          unsynced_since_ = std::min(unsynced_since_.value_or(c.first_seen), c.first_seen);
        });
      }
      if (!verify && changes.empty()) continue;
      if (verify) changes.roots = {{"", true}};
    }
    {
      std::lock_guard lock(mu_);
      if (!changes.first_seen.time_since_epoch().count()) changes.first_seen = SteadyClock::now();
      if (!verify) unsynced_since_ = std::min(unsynced_since_.value_or(changes.first_seen), changes.first_seen);
      state_ = verify ? "verifying" : !full ? "streaming" : synced_once_ ? "resync" : "initial-sync";
      busy_ = true;
      pass_started_ = SteadyClock::now();
      progress_.Reset();
    }
    if (full && !synced_once_) {
      spdlog::info("replication {} -> {}: initial sync", config_.link.volume, config_.target_region);
    }
    // A new file that is still being written (a copy under way, or a
    // temporary file about to be renamed over an old version) waits: sent
    // now, its bytes would travel as they are, and then again with no
    // version at the target to take a delta from. Being written: open for
    // writing as inotify tells, or (1 MiB and up) changed within the last
    // coalescing window or closed less than kDeferClosed ago, since it may be
    // renamed a moment later (ext4 holds that rename until the new file's
    // writeback is done). At most kMaxDefer. One sent anyway still goes as a
    // delta against the old version it is likely to replace (PickBasis).
    std::vector<std::string> deferred;
    int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    auto defer = [&](const Entry& e) {
      int64_t age_ns = now_ns - (e.meta.mtime_sec * 1'000'000'000LL + e.meta.mtime_nsec);
      bool large = e.size >= kDeferRecentFrom;
      bool recent = large && age_ns < std::chrono::nanoseconds(config_.coalesce).count();
      if (!recent && !watcher_->BeingWritten(e.path, large ? kDeferClosed : std::chrono::milliseconds(0))) return false;
      auto [it, fresh] = deferred_since_.try_emplace(e.path, SteadyClock::now());
      return SteadyClock::now() - it->second < kMaxDefer;
    };
    SyncOptions options{true, verify, &progress_, &links_};
    if (!full && !verify) {
      options.defer = defer;
      options.deferred = &deferred;
    }
    auto diffs = link->Sync(changes.renames, changes.roots, options);
    for (auto it = deferred_since_.begin(); it != deferred_since_.end();) {  // forget the ones that went
      it = std::find(deferred.begin(), deferred.end(), it->first) == deferred.end() ? deferred_since_.erase(it)
                                                                                   : std::next(it);
    }
    if (diffs && !deferred.empty()) watcher_->Requeue(deferred, changes.first_seen);
    std::lock_guard lock(mu_);
    busy_ = false;
    double secs = std::chrono::duration<double>(SteadyClock::now() - pass_started_).count();
    if (!diffs) {
      // What this pass did not send stays pending while disconnected (status
      // showed 0); the next session's full comparison sends it.
      uint64_t total = progress_.files_total.load(), done = progress_.files_done.load();
      unsent_files_ = std::max<uint64_t>(unsent_files_, std::max<uint64_t>(total - std::min(done, total),
                                                                             verify ? 0 : changes.roots.size()));
      unsent_bytes_ = std::max<uint64_t>(unsent_bytes_, progress_.bytes_total.load() -
                                                            std::min(progress_.bytes_done.load(), progress_.bytes_total.load()));
      return diffs.error();
    }
    unsent_files_ = unsent_bytes_ = 0;
    if (config_.on_pass) config_.on_pass(verify ? "verify" : full ? "full" : "changes", secs);
    spdlog::debug("replication {} -> {}: {} pass of {} root(s): {} file(s) sent, {} deferred, {:.3f}s",
                  config_.link.volume, config_.target_region, verify ? "verify" : full ? "full" : "changes",
                  changes.roots.size(), progress_.files_done.load(), deferred.size(), secs);
    if (secs > 0.5) last_rate_ = static_cast<double>(progress_.bytes_done.load()) / secs;
    files_sent_ += progress_.files_done.load();
    files_patched_ += progress_.files_patched.load();
    ++passes_;
    last_sync_ms_ = NowMs();
    if (verify) {
      last_verify = SteadyClock::now();
      last_verify_ms_ = NowMs();
      last_verify_diffs_ = static_cast<int64_t>(diffs->size());
      if (!diffs->empty()) {
        LogWarn({{"volume", config_.link.volume}, {"target", config_.target_region}},
                "replication {} -> {}: verify found and repaired {} difference(s), first: {} {}",
                config_.link.volume, config_.target_region, diffs->size(), (*diffs)[0].kind,
                Printable((*diffs)[0].path));
      }
    } else {
      unsynced_since_.reset();
    }
    if (full) {
      if (!synced_once_) {
        spdlog::info("replication {} -> {}: initial sync done: {} files, {} bytes in {:.1f}s", config_.link.volume,
                     config_.target_region, progress_.files_done.load(), progress_.bytes_done.load(), secs);
      }
      synced_once_ = true;
      full = false;
    }
    state_ = "streaming";
  }
  return Ok();
}

uint64_t PendingCount(bool busy, uint64_t total, uint64_t done, uint64_t unsent) {
  if (!busy) return unsent;
  uint64_t left = total - std::min(done, total);
  return std::max(left, unsent - std::min(done, unsent));
}

StreamStatus Stream::GetStatus() const {
  // The watcher first, then mu_: Take's callback holds the watcher's lock
  // while it takes mu_, so changes are always in one of the two places.
  auto oldest = watcher_->oldest();
  size_t watcher_pending = watcher_->pending();
  std::lock_guard lock(mu_);
  StreamStatus s;
  s.target_region = config_.target_region;
  s.state = state_;
  s.last_error = last_error_;
  auto now = SteadyClock::now();
  std::optional<SteadyClock::time_point> since = unsynced_since_;
  if (oldest && (!since || *oldest < *since)) since = oldest;
  if (since) s.rpo_seconds = std::chrono::duration<double>(now - *since).count();
  s.files_total = progress_.files_total.load();
  s.files_done = progress_.files_done.load();
  s.bytes_total = progress_.bytes_total.load();
  s.bytes_done = progress_.bytes_done.load();
  s.pending_files = PendingCount(busy_, s.files_total, s.files_done, unsent_files_) + watcher_pending;
  s.pending_bytes = PendingCount(busy_, s.bytes_total, s.bytes_done, unsent_bytes_);
  s.bytes_sent = bytes_sent_before_ + (link_ != nullptr ? link_->bytes_sent() : 0);
  s.bytes_received = bytes_received_before_ + (link_ != nullptr ? link_->bytes_received() : 0);
  s.files_sent = files_sent_ + (busy_ ? s.files_done : 0);
  s.files_patched = files_patched_ + (busy_ ? progress_.files_patched.load() : 0);
  s.passes = passes_;
  s.rate_bytes_per_second = last_rate_;
  if (busy_) {
    double secs = std::chrono::duration<double>(now - pass_started_).count();
    if (secs > 0.5) s.rate_bytes_per_second = static_cast<double>(s.bytes_done) / secs;
    if (s.rate_bytes_per_second > 0) s.eta_seconds = static_cast<double>(s.pending_bytes) / s.rate_bytes_per_second;
  }
  s.in_sync = link_ != nullptr && synced_once_ && !busy_ && !since;
  s.last_sync_unix_ms = last_sync_ms_;
  s.last_verify_unix_ms = last_verify_ms_;
  s.last_verify_differences = last_verify_diffs_;
  return s;
}

Result<std::vector<Difference>> Stream::Verify() const {
  LB_ASSIGN_OR_RETURN(auto link, Link::Open(config_.link, kModeReadOnly));
  return link->Sync({}, {{"", true}}, {false, true, nullptr, nullptr});
}

}  // namespace lifeboat::replicate
