#include "agent/services/backup/backup_service.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "agent/auth.h"
#include "agent/capabilities.h"
#include "backup/backup.h"
#include "core/clock.h"
#include "core/cron.h"
#include "core/log.h"
#include "core/worker.h"
#include "k8s/cluster_backup.h"
#include "k8s/runbook.h"
#include "state/keys.h"

namespace lifeboat::agent {
namespace {

using OJson = nlohmann::ordered_json;

class BackupService final : public Service, public VolumeRestorer {
 public:
  explicit BackupService(ServiceContext& ctx) : ctx_(ctx) {}
  ~BackupService() override { Stop(); }
  Status Init();

  std::string_view name() const override { return "backups"; }
  Status Start() override;
  void Stop() override;
  nlohmann::ordered_json StatusJson() override { return Json(); }
  void RestoreLatest(const std::string& volume, Done done) override;

 private:
  struct Run {  // one volume of one schedule
    std::string schedule, volume;
    int64_t last_success_ns = 0;
    double last_duration = 0;
    uint64_t last_bytes = 0, last_stored = 0, runs = 0, failures = 0, deleted = 0;
    std::string last_id, last_error, state = "idle";  // idle, running, skipped (not the source here)
  };
  struct Schedule {
    const plan::Schedule* plan = nullptr;
    CronSchedule cron;
    std::chrono::system_clock::time_point next;
  };
  // The newest backup of a volume in any location, manual or scheduled, as
  // the last catalog refresh found it.
  struct Latest {
    std::string location, id, schedule;  // schedule empty: made by hand
    int64_t time_ns = 0;
  };
  static constexpr auto kCatalogEvery = std::chrono::minutes(5);

  void Loop();
  void RunSchedule(const Schedule& s);
  struct Made;
  Result<Made> BackupOne(const plan::Schedule& ps, const std::string& target, repo::Repository& repo);
  // Lists every location's backups (of the volumes whose source is here,
  // and of this region's cluster);
  // on the scheduler thread, after runs and every kCatalogEvery.
  void RefreshCatalog();
  bool IsSourceHere(const std::string& volume);
  Run& RunOf(const std::string& schedule, const std::string& volume);  // mu_ held
  nlohmann::ordered_json Json();
  net::HttpResponse Handle(const net::HttpRequest& req);
  void RegisterMetrics();

  ServiceContext& ctx_;
  std::vector<Schedule> schedules_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::string> requested_;  // schedules asked to run now
  bool refresh_requested_ = false;
  std::map<std::string, Latest> latest_;                    // volume -> newest backup; guarded by mu_
  std::map<std::string, std::string> catalog_errors_;       // location -> why it could not be listed
  int64_t catalog_refreshed_ns_ = 0;                         // guarded by mu_
  std::chrono::system_clock::time_point next_catalog_{};    // guarded by mu_
  std::map<std::pair<std::string, std::string>, Run> runs_;
  std::thread thread_;
  metrics::Family<metrics::Histogram>* duration_h_ = nullptr;
  metrics::Family<metrics::Counter>* restores_c_ = nullptr;
  std::atomic<bool> stop_restores_{false};
  std::unique_ptr<Worker> restorer_;  // restores for failovers, one at a time; last: it uses the above
};


Status BackupService::Init() {
  for (const auto& ps : ctx_.plan.backup.schedules) {
    LB_ASSIGN_OR_RETURN(CronSchedule cron, CronSchedule::Parse(ps.cron));
    schedules_.push_back({&ps, cron, {}});
    for (const auto& v : ps.Targets()) {
      Run& r = RunOf(ps.name, v);
      // The last success survives restarts (the age metric stays true).
      auto last = state::keys::LastBackupOf(ctx_.region.name, ps.name, v).Get(ctx_.store);
      if (!last.ok()) {
        spdlog::warn("backup {} of {}: {}; the last success is forgotten", ps.name, v, last.error().message());
      } else if (*last) {
        r.last_success_ns = (*last)->time_ns;
        r.last_id = (*last)->id;
        r.last_bytes = (*last)->bytes;
        r.last_stored = (*last)->stored_bytes;
        r.last_duration = (*last)->duration_seconds;
      }
    }
  }
  ctx_.router.Add("/v1/backups", [this](const net::HttpRequest& r) { return Handle(r); });
  RegisterMetrics();
  restorer_ = std::make_unique<Worker>();
  if (!ctx_.plan.backup.locations.empty()) ctx_.caps.Provide<VolumeRestorer>(this);
  return Ok();
}

void BackupService::RestoreLatest(const std::string& volume, Done done) {
  if (!restorer_) {  // stopped
    state::RestoreRecord::Volume out;
    out.volume = volume;
    out.error = "the backup service has stopped";
    return done(out);
  }
  restorer_->Post([this, volume, done = std::move(done)] {
    state::RestoreRecord::Volume out;
    out.volume = volume;
    auto finish = [&](std::string result) {
      restores_c_->With({volume, result}).Inc();
      done(out);
    };
    if (stop_restores_) {  // the agent stops: what was asked is answered, not done
      out.error = "the agent stopped before the restore began";
      return finish("failed");
    }
    const plan::Volume* v = ctx_.plan.FindVolume(volume);
    if (v == nullptr || !v->path.count(ctx_.region.name)) {
      out.error = "this region holds no copy of " + volume;
      return finish("failed");
    }
    // The newest backup of the volume in any location; a location that
    // cannot be read is named if none is found elsewhere.
    const plan::Location* best_location = nullptr;
    std::optional<repo::Snapshot> best;
    std::string unreadable;
    for (const auto& loc : ctx_.plan.backup.locations) {
      auto repo = backup::OpenLocation(loc);
      auto snaps = repo.ok() ? (*repo)->ListSnapshots() : Result<std::vector<repo::Snapshot>>(repo.error());
      if (!snaps.ok()) {
        unreadable += (unreadable.empty() ? "" : "; ") + loc.name + ": " + snaps.error().message();
        continue;
      }
      for (const auto& snap : *snaps) {
        if (snap.source != "volume:" + volume || (best && snap.time_ns <= best->time_ns)) continue;
        best = snap;
        best_location = &loc;
      }
    }
    if (!best) {
      out.error = unreadable.empty() ? "" : "no backup found; unreadable: " + unreadable;
      return finish(unreadable.empty() ? "none" : "failed");
    }
    out.location = best_location->name;
    auto repo = backup::OpenLocation(*best_location);
    if (!repo.ok()) {
      out.error = repo.error().message();
      return finish("failed");
    }
    out.backup = best->id;
    const std::string& path = v->path.at(ctx_.region.name);
    LogWarn({{"volume", volume}, {"backup", best->id}, {"location", out.location}},
            "backup: restoring {} from {} (backup {}) into {} for a failover", volume, out.location,
            best->id.substr(0, 8), path);
    backup::RestoreOptions ro;
    ro.to = path;
    ro.cancel = &stop_restores_;
    auto res = backup::Restore(**repo, *best, ro);
    if (!res.ok()) {
      out.error = res.error().message();
      LogError({{"volume", volume}, {"error", out.error}}, "backup: the restore of {} failed: {}", volume, out.error);
      return finish("failed");
    }
    out.files = res->files;
    out.bytes = res->bytes;
    out.not_restored = res->failed.size();
    if (!res->failed.empty()) {
      out.error = std::to_string(res->failed.size()) + " entries could not be restored, first " +
                  res->failed[0].path + ": " + res->failed[0].reason;
    }
    LogInfo({{"volume", volume}, {"backup", best->id}}, "backup: restored {} files ({}) of {} into {}{}", out.files,
            HumanBytes(out.bytes), volume, path, out.error.empty() ? "" : "; " + out.error);
    finish(out.not_restored == 0 ? "done" : "partial");
  });
}

BackupService::Run& BackupService::RunOf(const std::string& schedule, const std::string& volume) {
  auto [it, added] = runs_.try_emplace({schedule, volume});
  if (added) {
    it->second.schedule = schedule;
    it->second.volume = volume;
  }
  return it->second;
}

Status BackupService::Start() {
  auto now = std::chrono::system_clock::now();
  for (auto& s : schedules_) s.next = s.cron.Next(now).value_or(std::chrono::system_clock::time_point::max());
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void BackupService::Stop() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  stop_restores_ = true;  // a running restore stops at its next file
  restorer_.reset();
}

void BackupService::Loop() {
  std::unique_lock l(mu_);
  while (!stop_) {
    auto wake = next_catalog_;
    for (const auto& s : schedules_) wake = std::min(wake, s.next);
    if (requested_.empty() && !refresh_requested_) {
      cv_.wait_until(l, wake, [&] { return stop_ || !requested_.empty() || refresh_requested_; });
    }
    if (stop_) break;
    auto now = std::chrono::system_clock::now();
    std::vector<const Schedule*> due;
    for (auto& s : schedules_) {
      bool asked = std::erase(requested_, s.plan->name) > 0;
      if (asked || s.next <= now) {
        due.push_back(&s);
        if (s.next <= now) s.next = s.cron.Next(now).value_or(std::chrono::system_clock::time_point::max());
      }
    }
    bool refresh = !due.empty() || refresh_requested_ || now >= next_catalog_;
    refresh_requested_ = false;
    if (refresh) next_catalog_ = now + kCatalogEvery;
    l.unlock();
    for (const auto* s : due) RunSchedule(*s);
    if (refresh) RefreshCatalog();
    l.lock();
  }
}

void BackupService::RefreshCatalog() {
  std::map<std::string, Latest> latest;
  std::map<std::string, std::string> errors;
  std::map<std::string, bool> here;  // volume -> its source is this region
  for (const auto& v : ctx_.plan.volumes) here[v.name] = IsSourceHere(v.name);
  for (const auto& loc : ctx_.plan.backup.locations) {
    auto repo = backup::OpenLocation(loc);
    if (!repo.ok()) {
      errors[loc.name] = repo.error().message();
      continue;
    }
    auto snaps = (*repo)->ListSnapshots();
    if (!snaps.ok()) {
      errors[loc.name] = snaps.error().message();
      continue;
    }
    for (const auto& snap : *snaps) {
      // A volume whose source is here, or this region's cluster.
      std::string key;
      if (snap.source.starts_with("volume:")) {
        key = snap.source.substr(7);
        if (!here[key]) continue;
      } else if (snap.source == "cluster:" + ctx_.region.name) {
        key = snap.source;
      } else {
        continue;
      }
      auto& l = latest[key];
      if (snap.time_ns > l.time_ns) l = Latest{loc.name, snap.id, snap.schedule, snap.time_ns};
    }
  }
  std::lock_guard l(mu_);
  latest_ = std::move(latest);
  catalog_errors_ = std::move(errors);
  catalog_refreshed_ns_ = NowUnixNs();
}

bool BackupService::IsSourceHere(const std::string& volume) {
  const plan::Volume* v = ctx_.plan.FindVolume(volume);
  if (v == nullptr || !v->path.count(ctx_.region.name)) return false;
  return SourceOf(ctx_.plan, ctx_.region, ctx_.caps.Get<VolumeRoles>(), volume) == ctx_.region.name;
}

// One backup a schedule makes: of a volume's copy here, or of this region's
// cluster. `problems` counts what could not be read (files, or kinds).
struct BackupService::Made {
  repo::Snapshot snapshot;
  size_t problems = 0;
  std::string problem_kind;  // "files could not be read", "kinds could not be listed"
};

Result<BackupService::Made> BackupService::BackupOne(const plan::Schedule& ps, const std::string& target,
                                                      repo::Repository& repo) {
  Made made;
  if (!ps.cluster.empty()) {
    LB_ASSIGN_OR_RETURN(auto client, k8s::ConnectCluster(ctx_.plan, ps.cluster));
    k8s::ClusterBackupOptions o;
    o.cluster = ps.cluster;
    o.select = {ps.namespaces, ps.exclude_namespaces, ps.resources, ps.exclude_resources};
    o.selector = ps.selector;
    o.cluster_resources = k8s::ClusterResourcesOf(ps.include_cluster_resources);
    o.schedule = ps.name;
    o.tags = {"schedule:" + ps.name};
    if (ps.volume_data) {
      o.volumes = k8s::VolumeBackupFor(ctx_.plan, ps.cluster, ps.location, ctx_.token);
      o.volumes->tags = o.tags;
      o.volumes->schedule = ps.name;
    }
    LB_ASSIGN_OR_RETURN(auto res, k8s::BackupCluster(repo, *client, o));
    for (const auto& e : res.errors) spdlog::warn("backup {} of {}: not backed up: {}", ps.name, target, e);
    made.snapshot = std::move(res.snapshot);
    made.problems = res.errors.size();
    made.problem_kind = "kinds could not be listed";
    return made;
  }
  backup::BackupOptions bo;
  bo.path = ctx_.plan.FindVolume(target)->path.at(ctx_.region.name);
  bo.source = "volume:" + target;
  bo.schedule = ps.name;
  bo.tags = {"schedule:" + ps.name};
  LB_ASSIGN_OR_RETURN(auto res, backup::CreateBackup(repo, bo));
  made.snapshot = std::move(res.snapshot);
  made.problems = res.errors.size();
  made.problem_kind = "files could not be read";
  return made;
}

void BackupService::RunSchedule(const Schedule& s) {
  const plan::Schedule& ps = *s.plan;
  const plan::Location* loc = ctx_.plan.FindLocation(ps.location);
  for (const auto& volume : ps.Targets()) {  // a volume, or "cluster:REGION"
    std::string skip = !ps.cluster.empty()
                           ? (ps.cluster == ctx_.region.name ? "" : "skipped: " + ps.cluster + "'s agent backs up its cluster")
                           : (IsSourceHere(volume) ? "" : "skipped: not the source of this volume here");
    if (!skip.empty()) {
      std::lock_guard l(mu_);
      RunOf(ps.name, volume).state = skip;
      continue;
    }
    {
      std::lock_guard l(mu_);
      RunOf(ps.name, volume).state = "running";
    }
    auto fail = [&](const Error& e) {
      LogError({{"schedule", ps.name}, {"volume", volume}, {"error", e.message()}}, "backup {} of {}: {}", ps.name,
               volume, e.message());
      std::lock_guard l(mu_);
      Run& r = RunOf(ps.name, volume);
      r.state = "idle";
      r.failures++;
      r.runs++;
      r.last_error = e.message();
    };
    spdlog::info("backup {}: backing up {} to {}", ps.name, volume, ps.location);
    auto repo = backup::OpenLocation(*loc);
    if (!repo.ok()) {
      fail(repo.error());
      continue;
    }
    auto res = BackupOne(ps, volume, **repo);
    if (!res.ok()) {
      fail(res.error());
      continue;
    }
    const auto& snap = res->snapshot;
    const std::string problems =
        res->problems == 0 ? "" : std::to_string(res->problems) + " " + res->problem_kind;
    LogInfo({{"schedule", ps.name}, {"volume", volume}, {"backup", snap.id}}, "backup {} of {}: {} ({} files, {} new, {} in {:.1f}s{})", ps.name, volume, snap.id.substr(0, 8),
                 snap.stats.files, HumanBytes(snap.stats.new_bytes), HumanBytes(snap.stats.bytes),
                 snap.stats.duration_seconds, problems.empty() ? "" : ", " + problems);
    duration_h_->With({ps.name, volume}).Observe(snap.stats.duration_seconds);
    state::LastBackup last{snap.time_ns, snap.id, snap.stats.bytes, snap.stats.stored_bytes,
                           snap.stats.duration_seconds};
    if (auto saved = state::keys::LastBackupOf(ctx_.region.name, ps.name, volume).Put(ctx_.store, last); !saved) {
      spdlog::warn("backup {} of {}: cannot record the success in the state store: {}", ps.name, volume,
                   saved.error().message());
    }
    {
      std::lock_guard l(mu_);
      Run& r = RunOf(ps.name, volume);
      r.runs++;
      r.last_success_ns = snap.time_ns;
      r.last_id = snap.id;
      r.last_bytes = snap.stats.bytes;
      r.last_stored = snap.stats.stored_bytes;
      r.last_duration = snap.stats.duration_seconds;
      r.last_error = problems;
      r.state = "retention";
    }
    // Retention over this schedule's backups of this volume.
    auto snaps = (*repo)->ListSnapshots();
    uint64_t deleted = 0;
    if (snaps.ok()) {
      std::vector<repo::Snapshot> mine;
      for (auto& x : *snaps) {
        if (x.source == snap.source && x.schedule == ps.name) mine.push_back(x);
      }
      for (const auto& id : backup::SelectForDeletion(mine, ps.ttl, ps.keep, std::chrono::system_clock::now())) {
        // A cluster backup's PVC files go with it (read before it is gone).
        std::vector<std::string> linked;
        for (const auto& x : mine) {
          if (x.id != id) continue;
          auto l = k8s::LinkedVolumeSnapshots(**repo, x);
          if (l.ok()) linked = std::move(*l);
          else spdlog::warn("backup {} of {}: the PVC files of {} are not found: {}", ps.name, volume, id.substr(0, 8),
                            l.error().message());
        }
        for (const auto& v : linked) {
          if (Status d = (*repo)->DeleteSnapshot(v); d.ok()) ++deleted;
        }
        Status d = (*repo)->DeleteSnapshot(id);
        if (d.ok()) {
          ++deleted;
          spdlog::info("backup {} of {}: retention deleted {}", ps.name, volume, id.substr(0, 8));
        } else {
          spdlog::warn("backup {} of {}: retention could not delete {}: {}", ps.name, volume, id.substr(0, 8),
                       d.error().message());
        }
      }
    }
    if (deleted > 0) {
      auto lock = (*repo)->AcquireLock(true, "prune (retention of " + ps.name + ")");
      if (!lock.ok()) {
        spdlog::info("backup {}: prune postponed: {}", ps.name, lock.error().message());
      } else if (auto p = (*repo)->Prune(); !p.ok()) {
        spdlog::warn("backup {}: prune failed: {}", ps.name, p.error().message());
      } else {
        spdlog::info("backup {}: prune freed {}", ps.name, HumanBytes(p->bytes_freed));
      }
    }
    std::lock_guard l(mu_);
    Run& r = RunOf(ps.name, volume);
    r.deleted += deleted;
    r.state = "idle";
  }
}

OJson BackupService::Json() {
  std::lock_guard l(mu_);
  OJson out = OJson::array();
  auto now = NowUnixNs();
  OJson latest = OJson::array();
  for (const auto& [volume, l] : latest_) {
    latest.push_back({{"volume", volume},
                      {"location", l.location},
                      {"backup", l.id},
                      {"schedule", l.schedule.empty() ? OJson() : OJson(l.schedule)},
                      {"time", repo::TimeText(l.time_ns)},
                      {"age_seconds", static_cast<double>(now - l.time_ns) / 1e9}});
  }
  OJson catalog = {{"refreshed_at", catalog_refreshed_ns_ ? OJson(repo::TimeText(catalog_refreshed_ns_)) : OJson()},
                   {"errors", catalog_errors_}};
  for (const auto& s : schedules_) {
    for (const auto& v : s.plan->Targets()) {
      const Run& r = RunOf(s.plan->name, v);
      OJson j = {{"schedule", r.schedule},
                 {"volume", r.volume},
                 {"location", s.plan->location},
                 {"cron", s.plan->cron},
                 {"state", r.state},
                 {"runs", r.runs},
                 {"failures", r.failures},
                 {"deleted_by_retention", r.deleted}};
      if (s.next != std::chrono::system_clock::time_point::max()) {
        j["next_run"] = repo::TimeText(std::chrono::duration_cast<std::chrono::nanoseconds>(s.next.time_since_epoch()).count());
      }
      if (r.last_success_ns > 0) {
        j["last_success"] = repo::TimeText(r.last_success_ns);
        j["age_seconds"] = static_cast<double>(now - r.last_success_ns) / 1e9;
        j["last_backup"] = r.last_id;
        j["last_bytes"] = r.last_bytes;
        j["last_stored_bytes"] = r.last_stored;
        j["last_duration_seconds"] = r.last_duration;
      }
      if (!r.last_error.empty()) j["last_error"] = r.last_error;
      out.push_back(j);
    }
  }
  return OJson{{"schedules", out}, {"latest", latest}, {"catalog", catalog}};
}

net::HttpResponse BackupService::Handle(const net::HttpRequest& req) {
  if (req.path == "/v1/backups") {
    if (req.method != "GET") return JsonError(405, "GET only");
    return net::HttpResponse::Json(200, Json().dump(2) + "\n");
  }
  std::string rest = req.path.substr(std::string("/v1/backups/").size());
  if (rest == "refresh") {  // re-lists the locations now (after a backup made by hand)
    if (req.method != "POST") return JsonError(405, "POST only");
    if (auto denied = CheckToken(req, ctx_.token, "refreshing the backup catalog")) return *denied;
    {
      std::lock_guard l(mu_);
      refresh_requested_ = true;
    }
    cv_.notify_all();
    return net::HttpResponse::Json(202, OJson{{"catalog", "refreshing"}}.dump() + "\n");
  }
  auto slash = rest.find('/');
  if (slash == std::string::npos || rest.substr(slash) != "/run") return JsonError(404, "no such resource");
  std::string name = rest.substr(0, slash);
  if (req.method != "POST") return JsonError(405, "POST only");
  if (auto denied = CheckToken(req, ctx_.token, "running a backup schedule")) return *denied;
  bool known = std::any_of(schedules_.begin(), schedules_.end(), [&](const Schedule& s) { return s.plan->name == name; });
  if (!known) return JsonError(404, "the plan has no backup schedule '" + name + "'");
  {
    std::lock_guard l(mu_);
    requested_.push_back(name);
  }
  cv_.notify_all();
  return net::HttpResponse::Json(202, OJson{{"schedule", name}, {"state", "queued"}}.dump());
}

void BackupService::RegisterMetrics() {
  auto& m = ctx_.metrics;
  using Samples = std::vector<std::pair<metrics::Labels, double>>;
  auto each = [this](auto field, bool only_succeeded) {
    return [this, field, only_succeeded] {
      Samples out;
      std::lock_guard l(mu_);
      for (const auto& [key, r] : runs_) {
        if (only_succeeded && r.last_success_ns == 0) continue;
        out.push_back({{r.schedule, r.volume}, field(r)});
      }
      return out;
    };
  };
  const std::vector<std::string> labels = {"schedule", "volume"};
  duration_h_ = &m.AddHistogram("lifeboat_backup_duration_seconds", "Durations of successful scheduled backups",
                                labels, metrics::DurationBuckets());
  m.AddGaugeCallback("lifeboat_backup_last_success_timestamp_seconds", "When the last successful backup started",
                     labels, each([](const Run& r) { return static_cast<double>(r.last_success_ns) / 1e9; }, true));
  m.AddGaugeCallback("lifeboat_backup_age_seconds", "Time since the last successful backup started", labels,
                     each([](const Run& r) { return static_cast<double>(NowUnixNs() - r.last_success_ns) / 1e9; }, true));
  m.AddGaugeCallback("lifeboat_backup_last_size_bytes", "Bytes in the tree the last backup saved", labels,
                     each([](const Run& r) { return static_cast<double>(r.last_bytes); }, true));
  m.AddGaugeCallback("lifeboat_backup_last_added_bytes", "Bytes the last backup added to the repository", labels,
                     each([](const Run& r) { return static_cast<double>(r.last_stored); }, true));
  m.AddGaugeCallback("lifeboat_backup_last_duration_seconds", "How long the last successful backup took", labels,
                     each([](const Run& r) { return r.last_duration; }, true));
  m.AddCounterCallback("lifeboat_backup_runs_total", "Backups attempted by the schedules", labels,
                       each([](const Run& r) { return static_cast<double>(r.runs); }, false));
  m.AddCounterCallback("lifeboat_backup_failures_total", "Scheduled backups that failed", labels,
                       each([](const Run& r) { return static_cast<double>(r.failures); }, false));
  restores_c_ = &m.AddCounter("lifeboat_backup_failover_restores_total",
                              "Restores of a volume's newest backup for a failover, by result (done, partial, "
                              "none: no backup anywhere, failed)",
                              {"volume", "result"});
  m.AddCounterCallback("lifeboat_backup_retention_deleted_total", "Backups deleted by retention", labels,
                       each([](const Run& r) { return static_cast<double>(r.deleted); }, false));
}

}  // namespace

Result<std::unique_ptr<Service>> MakeBackupService(ServiceContext& ctx) {
  if (ctx.plan.backup.schedules.empty() && ctx.plan.backup.locations.empty()) return std::unique_ptr<Service>();
  auto s = std::make_unique<BackupService>(ctx);
  LB_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace lifeboat::agent
