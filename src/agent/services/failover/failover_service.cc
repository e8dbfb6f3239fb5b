#include "agent/services/failover/failover_service.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <mutex>
#include <thread>

#include "agent/auth.h"
#include "agent/capabilities.h"
#include "core/log.h"
#include "core/process.h"
#include "core/worker.h"
#include "health/monitor.h"
#include "k8s/runbook.h"
#include "traffic/controls.h"
#include "orchestrate/detector.h"
#include "orchestrate/fencing.h"
#include "orchestrate/primary.h"
#include "orchestrate/runbook.h"
#include "postgres/control.h"
#include "postgres/instance.h"
#include "state/keys.h"

namespace lifeboat::agent {
namespace {

using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;
using orchestrate::Steady;

// How often the service looks: half the shortest check interval, within
// [50 ms, 500 ms], so that detection adds little to what the checks take.
Duration TickOf(const plan::Plan& plan) {
  Duration shortest = std::chrono::seconds(1);
  for (const auto& c : plan.checks) shortest = std::min(shortest, c.interval);
  return std::clamp<Duration>(shortest / 2, std::chrono::milliseconds(50), std::chrono::milliseconds(500));
}

// How long the built-in steps wait for what they asked for.
constexpr auto kPromoteTimeout = std::chrono::seconds(60);
constexpr auto kVerifyTimeout = std::chrono::seconds(30);
// After a run failed, an automatic failover waits this long before another.
constexpr auto kFailedRunBackoff = std::chrono::seconds(10);
// A planned failover waits this long for the old primary's targets to be in
// sync, and wants them in sync without a break for kInSyncSettle.
constexpr auto kInSyncTimeout = std::chrono::seconds(60);
constexpr auto kInSyncSettle = std::chrono::seconds(1);
// A restore step waits this long for the new primary's restores, and gives
// up sooner when that region's agent has had no view for kRestoreAgentGone.
constexpr auto kRestoreTimeout = std::chrono::hours(12);
constexpr auto kRestoreAgentGone = std::chrono::seconds(60);

// The volumes a `restore` step restores into `region`: each with a copy
// there that is not kept by continuous replication (a replicated copy is
// promoted instead).
std::vector<std::string> RestoredVolumes(const plan::Plan& plan, const std::string& region) {
  std::vector<std::string> out;
  for (const auto& v : plan.volumes) {
    bool replicated = v.replication.mode == plan::ReplicationMode::kContinuous && v.path.size() > 1;
    if (v.path.count(region) && !replicated) out.push_back(v.name);
  }
  return out;
}

// "ID#ATTEMPT": which attempt of which run's restore step a record answers.
std::string RestoreTag(const state::FailoverRun& run, const state::StepRecord& step) {
  return run.id + "#" + std::to_string(step.attempts);
}

// The stored codec's object, as status shows it.
Json ViewJson(const state::ObserverView& v) { return Json::parse(state::Encode(v)); }

class FailoverService final : public Service, public EndpointViews, private orchestrate::StepRunner {
 public:
  explicit FailoverService(ServiceContext& ctx)
      : ctx_(ctx),
        detector_(ctx.plan, ctx.region.name),
        owner_(ctx.region.name + "@" + Hostname() + ":" + std::to_string(::getpid())),
        tick_(TickOf(ctx.plan)) {
    if (const char* hold = std::getenv("LIFEBOAT_DRILL_HOLD_STEP")) hold_step_ = hold;
  }
  ~FailoverService() override { Stop(); }

  Status Init() {
    traffic_ = ctx_.caps.Get<TrafficSwitch>();
    roles_ = ctx_.caps.Get<VolumeRoles>();
    databases_ = ctx_.caps.Get<DatabaseRoles>();
    restorer_ = ctx_.caps.Get<VolumeRestorer>();
    // The witness serves nothing, so no traffic service probes for it: it
    // probes the endpoints itself to have a view.
    // Without a traffic service (the witness; a plan without DNS) it keeps
    // its own routing controls, which live in the shared store all the same:
    // any agent can drive a run.
    if (traffic_ == nullptr) {
      own_health_ = std::make_unique<health::Monitor>(ctx_.io, ctx_.plan, ctx_.metrics);
      own_controls_ = std::make_unique<traffic::RoutingControls>(ctx_.store, ctx_.plan, ctx_.metrics);
      LB_RETURN_IF_ERROR(own_controls_->Load());
    }
    ctx_.router.Add("/v1/failover", [this](const net::HttpRequest& r) { return Handle(r); });
    ctx_.caps.Provide<EndpointViews>(this);
    RegisterMetrics();
    return Ok();
  }

  std::string_view name() const override { return "failover"; }

  // EndpointViews
  std::optional<bool> Healthy(const std::string& endpoint) const override {
    std::lock_guard lock(mu_);
    auto it = combined_.find(endpoint);
    return it == combined_.end() ? std::nullopt : it->second;
  }
  void OnChange(std::function<void()> fn) override { on_views_change_ = std::move(fn); }

  Status Start() override {
    if (own_health_) own_health_->Start();
    driver_ = std::make_unique<Worker>();
    loop_ = std::thread([this] { Loop(); });
    LogInfo({{"mode", plan::Name(ctx_.plan.failover.mode)}},
            "failover: watching the primary every {} (mode {}, quorum {} of {} regions, grace {})",
            FormatDuration(tick_), plan::Name(ctx_.plan.failover.mode), ctx_.plan.failover.quorum,
            ctx_.plan.regions.size(), FormatDuration(ctx_.plan.failover.grace));
    return Ok();
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    stop_drive_ = true;
    cv_.notify_all();
    if (loop_.joinable()) loop_.join();
    driver_.reset();  // a run being driven stops between steps; another agent resumes it
    if (own_health_) own_health_->Stop();
    if (own_controls_) own_controls_->StopWatching();
    if (lease_) (void)ctx_.store.Revoke(*lease_);  // the view goes at once, not after the lease
  }

  // Each checked endpoint's health by the views; null where the agent's
  // own probe decides. mu_ held.
  Json CombinedJson() const {
    Json out = Json::object();
    for (const auto& [name, healthy] : combined_) out[name] = healthy ? Json(*healthy) : Json();
    return out;
  }

  Json StatusJson() override {
    std::lock_guard lock(mu_);
    Json views = Json::array();
    for (const auto& v : views_) views.push_back(ViewJson(v));
    Json j = {{"mode", plan::Name(ctx_.plan.failover.mode)},
              {"quorum", ctx_.plan.failover.quorum},
              {"grace", FormatDuration(ctx_.plan.failover.grace)},
              {"view", ViewJson(view_)},
              {"views", views},
              {"verdict", {{"failover", verdict_.failover},
                           {"votes", verdict_.votes},
                           {"views", verdict_.views},
                           {"target", verdict_.target.empty() ? Json() : Json(verdict_.target)},
                           {"why", verdict_.why}}},
              {"endpoints", CombinedJson()},
              {"driving", driving_.load()},
              {"self_fenced", self_fenced_.load()},
              {"store_error", store_error_.empty() ? Json() : Json(store_error_)},
              {"last_request", last_request_.is_null() ? Json() : last_request_}};
    return j;
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      Tick();
      lock.lock();
      cv_.wait_for(lock, tick_, [this] { return stopping_; });
    }
  }

  // This region's own probe of the endpoint.
  bool ProbedHealthy(const std::string& endpoint) const {
    return traffic_ != nullptr ? traffic_->Healthy(endpoint) : own_health_->Healthy(endpoint);
  }

  // Grants or renews this agent's lease; false when the store did not answer.
  bool KeepLease(Steady now) {
    const Duration ttl = ctx_.plan.failover.lease;
    if (lease_ && now - renewed_ < ttl / 3) return true;
    if (lease_) {
      Status s = ctx_.store.KeepAlive(*lease_);
      if (s.ok()) {
        renewed_ = now;
        return true;
      }
      if (s.error().code() != Code::kNotFound) {
        NoteStoreError(s.error());
        return false;
      }
      lease_.reset();  // expired (a long pause): the view went with it; publish again
      published_.clear();
    }
    auto granted = ctx_.store.Grant(ttl);
    if (!granted) {
      NoteStoreError(granted.error());
      return false;
    }
    lease_ = *granted;
    renewed_ = now;
    return true;
  }

  void NoteStoreError(const Error& e) {
    std::lock_guard lock(mu_);
    if (store_error_.empty()) LogWarn({{"error", e.message()}}, "failover: the state store does not answer: {}", e.message());
    store_error_ = e.message();
  }

  Result<std::vector<state::ObserverView>> ReadViews() {
    LB_ASSIGN_OR_RETURN(auto range, ctx_.store.List(state::keys::kViewsPrefix));
    std::vector<state::ObserverView> out;
    for (const auto& kv : range.kvs) {
      state::ObserverView v;
      if (state::Decode(kv.value, v)) out.push_back(std::move(v));  // a damaged view does not vote
    }
    return out;
  }

  void Tick() {
    const Steady now = SteadyClock::now();
    bool ok = KeepLease(now);
    Result<orchestrate::Primary> primary = Unavailable("not read");
    Result<std::vector<state::ObserverView>> views = Unavailable("not read");
    Result<std::optional<state::FailoverRun>> run = Unavailable("not read");
    if (ok) primary = orchestrate::CurrentPrimary(ctx_.store, ctx_.plan);
    if (ok && primary.ok()) views = ReadViews();
    if (ok && views.ok()) run = state::keys::CurrentFailover().Get(ctx_.store);
    if (!ok || !primary.ok() || !views.ok() || !run.ok()) {
      if (ok) NoteStoreError(!primary.ok() ? primary.error() : !views.ok() ? views.error() : run.error());
      Combine({});  // the views may be stale now: every DNS server goes by its own probes
      MaybeSelfFence(now);
      return;
    }
    last_store_ok_ = now;
    {
      std::lock_guard lock(mu_);
      if (!store_error_.empty()) LogInfo({}, "failover: the state store answers again");
      store_error_.clear();
    }
    if (self_fenced_) EndSelfFence(primary->record);

    const state::PrimaryRecord& p = primary->record;
    bool heartbeat = std::any_of(views->begin(), views->end(), [&](const auto& v) { return v.observer == p.region; });
    state::ObserverView mine = detector_.Observe(p, [this](const std::string& e) { return ProbedHealthy(e); }, heartbeat, now);
    mine.agent = owner_;
    if (roles_ != nullptr) {
      for (const auto& v : roles_->Volumes()) {
        if (auto role = roles_->RoleOf(v)) mine.copies.push_back({v, *role});
        for (const auto& t : roles_->Sending(v)) {
          int64_t lag = t.in_sync ? 0 : t.lag_known ? std::llround(t.rpo_seconds * 1000) : -1;
          mine.sending.push_back({v, t.target, t.in_sync, lag});
        }
      }
    }
    if (databases_ != nullptr) mine.databases = databases_->Views();
    Publish(mine);
    std::erase_if(*views, [&](const auto& v) { return v.observer == mine.observer; });
    views->push_back(mine);
    std::sort(views->begin(), views->end(), [](const auto& a, const auto& b) { return a.observer < b.observer; });
    Combine(*views);
    orchestrate::Verdict verdict = detector_.Decide(p, *views);
    epoch_g_->Get().Set(static_cast<double>(p.epoch));
    votes_g_->Get().Set(verdict.votes);
    if (verdict.failover && !was_failover_) {
      LogWarn({{"primary", p.region}}, "failover: {}", verdict.why);
      down_quorum_at_ = now;
    }
    was_failover_ = verdict.failover;
    {
      std::lock_guard lock(mu_);
      view_ = mine;
      views_ = *views;
      verdict_ = verdict;
      primary_ = p;
      NoteInSync(p, *views);
    }
    Reconcile(p, *run, now);
    MaybeRestore(*run);
    Act(p, verdict, *run, now);
  }

  // When a run to this region is at its `restore` step: restores each
  // volume's newest backup here (on the backup service's worker), then
  // records the outcome for the driver (regions/R/failover/restore). Once
  // per attempt of the step.
  void MaybeRestore(const std::optional<state::FailoverRun>& run) {
    if (restorer_ == nullptr || !run || run->state != "running" || run->to != ctx_.region.name) return;
    auto step = std::find_if(run->steps.begin(), run->steps.end(), [](const auto& s) { return s.state != "done"; });
    if (step == run->steps.end() || step->name != "restore" || step->state != "running") return;
    std::string tag = RestoreTag(*run, *step);
    if (restoring_ == tag) return;
    auto key = state::keys::RestoreOf(ctx_.region.name);
    auto recorded = key.Get(ctx_.store);
    if (!recorded.ok()) return;  // tried again next tick
    restoring_ = tag;
    if (*recorded && (*recorded)->run == tag && (*recorded)->state != "running") return;  // done before a restart
    auto volumes = RestoredVolumes(ctx_.plan, ctx_.region.name);
    struct Pending {
      std::mutex mu;
      state::RestoreRecord record;
      size_t left = 0;
    };
    auto pending = std::make_shared<Pending>();
    pending->record = {tag, "running", {}, FormatUtc(ctx_.clock.Now()), ""};
    pending->left = volumes.size();
    if (auto put = key.Put(ctx_.store, pending->record); !put.ok()) {
      restoring_.clear();
      return;
    }
    LogWarn({{"run", run->id}}, "failover: restoring the newest backups of {} volume(s) into {} (run {}, attempt {})",
            volumes.size(), ctx_.region.name, run->id, step->attempts);
    // Runs on the backup service's worker, which may outlive this service
    // (it stops after): it uses the agent's store and clock, not `this`.
    auto finish = [key, store = &ctx_.store, clock = &ctx_.clock](Pending& p) {  // p.mu held
      bool failed = std::any_of(p.record.volumes.begin(), p.record.volumes.end(),
                                [](const auto& v) { return v.backup.empty() || (v.files == 0 && !v.error.empty()); });
      p.record.state = failed ? "failed" : "done";
      p.record.ended_at = FormatUtc(clock->Now());
      if (auto put = key.Put(*store, p.record); !put.ok()) {
        LogError({{"error", put.error().message()}}, "failover: cannot record the restore: {}", put.error().message());
      }
    };
    if (volumes.empty()) {
      std::lock_guard lock(pending->mu);
      return finish(*pending);
    }
    for (const auto& v : volumes) {
      restorer_->RestoreLatest(v, [pending, finish](const state::RestoreRecord::Volume& done) {
        std::lock_guard lock(pending->mu);
        pending->record.volumes.push_back(done);
        if (--pending->left == 0) finish(*pending);
      });
    }
  }

  // When the primary's own view last told how far a target of its volumes
  // was behind (in sync, or a lag while streaming): what an unplanned
  // failover reports as the writes it may lose. A view is rewritten within a
  // tick of a change, so what it says held a tick ago at most; but a dead
  // agent's view stays until its lease ends, so sightings count only while
  // this region sees the primary up. A volume written without pause is never
  // "in sync"; its lag still bounds the loss. mu_ held.
  void NoteInSync(const state::PrimaryRecord& p, const std::vector<state::ObserverView>& views) {
    if (view_.primary_down || view_.down_for_ms > 0) return;
    auto now = ctx_.clock.Now();
    for (const auto& v : views) {
      if (v.observer != p.region) continue;
      for (const auto& s : v.sending) {
        int64_t lag = s.in_sync ? 0 : s.lag_ms;
        if (lag >= 0) in_sync_seen_[{p.region, s.volume, s.target}] = {now, std::chrono::milliseconds(lag)};
      }
    }
  }

  // The lag an unplanned failover from run.from to run.to accepts, volume by
  // volume: how long before now each target copy last had everything, by
  // what this agent last read of it (the time since, plus the lag it read).
  // Changes the old primary made after that may be missing in the new one.
  std::string AcceptedLag(const state::FailoverRun& run) {
    std::string out;
    auto now = ctx_.clock.Now();
    std::lock_guard lock(mu_);
    for (const auto& v : ctx_.plan.volumes) {
      if (v.replication.mode != plan::ReplicationMode::kContinuous || !v.path.count(run.to) ||
          !v.path.count(run.from)) {
        continue;
      }
      auto it = in_sync_seen_.find({run.from, v.name, run.to});
      std::string one;
      if (it == in_sync_seen_.end()) {
        accepted_lag_g_->With({v.name}).Set(std::numeric_limits<double>::quiet_NaN());
        one = v.name + ": this agent never saw how far behind it was, so what " + run.to + " lacks is unknown";
      } else {
        const Sighting& seen = it->second;
        auto complete_at = seen.at - std::chrono::duration_cast<Clock::TimePoint::duration>(seen.lag);
        double seconds = std::chrono::duration<double>(now - complete_at).count();
        accepted_lag_g_->With({v.name}).Set(seconds);
        auto before = FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.at));
        one = v.name + ": last seen " +
              (seen.lag.count() == 0 ? "in sync " + before
                                     : FormatDuration(seen.lag) + " behind, " + before) +
              " before the fence (changes " + run.from + " made after " + FormatUtc(complete_at) + " may be missing)";
      }
      out += (out.empty() ? "" : "; ") + one;
    }
    return out;
  }

  // Each checked endpoint's health by the views (EndpointViews::Healthy);
  // tells the traffic service when any changed.
  void Combine(const std::vector<state::ObserverView>& views) {
    std::map<std::string, std::optional<bool>> next;
    for (const auto& e : ctx_.plan.endpoints) {
      if (e.check.empty()) continue;
      int healthy = 0, reporting = 0;
      for (const auto& v : views) {
        for (const auto& [name, up] : v.endpoints) {
          if (name != e.name) continue;
          ++reporting;
          healthy += up ? 1 : 0;
        }
      }
      const plan::Check* check = ctx_.plan.FindCheck(e.check);
      int quorum = check != nullptr && check->vantage_quorum > 0 ? check->vantage_quorum : reporting / 2 + 1;
      next[e.name] = reporting == 0 || reporting < quorum ? std::nullopt : std::optional<bool>(healthy >= quorum);
    }
    bool changed;
    {
      std::lock_guard lock(mu_);
      changed = next != combined_;
      combined_ = std::move(next);
    }
    if (changed && on_views_change_) on_views_change_();
  }

  // Writes this agent's view when what it says changed (or it was lost).
  void Publish(state::ObserverView view) {
    view.at = FormatUtc(ctx_.clock.Now());
    state::ObserverView key_fields = view;
    key_fields.at.clear();
    key_fields.down_for_ms = 0;  // changes every tick while down; not worth a write each time
    std::string sig = state::Encode(key_fields);
    if (sig == published_) return;
    auto put = ctx_.store.Put(state::keys::ViewOf(ctx_.region.name).name(), state::Encode(view), state::Expect::Any(),
                              *lease_);
    if (put.ok()) published_ = sig;
  }

  // Brings this region's volumes to what the primary record says
  // (orchestrate::Reconcile for each).
  void Reconcile(const state::PrimaryRecord& p, const std::optional<state::FailoverRun>& run, Steady now) {
    if (roles_ == nullptr) return;
    const std::string& here = ctx_.region.name;
    for (const auto& volume : roles_->Volumes()) {
      auto role = roles_->RoleOf(volume);
      auto change = roles_->LastChange(volume);
      if (!role || (change && change->state == "running")) continue;
      auto& last = reconcile_tried_[volume];
      if (now - last < std::chrono::seconds(2)) continue;  // a refused change is tried again, not every tick
      auto action = orchestrate::Reconcile(*role, p, run, here, ctx_.plan.FindVolume(volume)->path.count(p.region) > 0);
      Status s = Ok();
      std::string what = orchestrate::Name(action);
      switch (action) {
        case orchestrate::VolumeAction::kNone: continue;
        case orchestrate::VolumeAction::kPromote: s = roles_->Promote(volume, p.epoch); break;
        case orchestrate::VolumeAction::kFence: s = roles_->Fence(volume, p.epoch); break;
        case orchestrate::VolumeAction::kFollow:
          what += " " + p.region;
          s = roles_->Reverse(volume, p.region, p.epoch);
          break;
      }
      last = now;
      if (s.ok()) {
        LogInfo({{"volume", volume}, {"primary", p.region}}, "failover: epoch {} (primary {}): {} {}", p.epoch, p.region,
                what, volume);
      } else {
        LogWarn({{"volume", volume}, {"error", s.error().message()}}, "failover: epoch {}: cannot {} {}: {}", p.epoch,
                what, volume, s.error().message());
      }
    }
  }

  // Resumes a run nobody drives (whatever the mode: a manual run's driver
  // may die too); in automatic mode, begins a run when this region is the
  // chosen target.
  void Act(const state::PrimaryRecord& p, const orchestrate::Verdict& verdict,
           const std::optional<state::FailoverRun>& run, Steady now) {
    if (driving_ || !ctx_.region.serves()) return;
    if (run && run->state == "running") {
      auto lock = ctx_.store.Get(state::keys::kFailoverLock);
      if (lock.ok() && !*lock) StartDrive("resume");
      return;
    }
    if (ctx_.plan.failover.mode != plan::FailoverMode::kAutomatic) return;
    if (run && run->state == "failed" && run->id != failed_run_) {
      failed_run_ = run->id;
      failed_seen_ = now;
    }
    if (!failed_run_.empty() && now - failed_seen_ < kFailedRunBackoff) return;
    if (!verdict.failover || verdict.target != ctx_.region.name) return;
    auto begun = Begin(p.region, ctx_.region.name, p.epoch + 1, false);
    if (!begun) {
      if (begun.error().code() != Code::kFailedPrecondition && begun.error().code() != Code::kAborted) {
        LogWarn({{"error", begun.error().message()}}, "failover: cannot begin: {}", begun.error().message());
      }
      return;
    }
    LogWarn({{"from", p.region}, {"to", ctx_.region.name}}, "failover: automatic failover from {} to {} (epoch {}): {}",
            p.region, ctx_.region.name, p.epoch + 1, verdict.why);
    StartDrive("automatic", begun->second);
  }

  // Records a run and takes its lock under a new lease of ours (returned
  // with it, for Drive): no other agent can take the run over before this
  // one drives it.
  Result<std::pair<state::FailoverRun, state::LeaseId>> Begin(const std::string& from, const std::string& to,
                                                               uint64_t epoch, bool planned) {
    LB_ASSIGN_OR_RETURN(state::LeaseId lease, ctx_.store.Grant(ctx_.plan.failover.lease));
    auto begun = MakeRunbook().Begin(from, to, epoch, planned, ctx_.plan.failover.steps, lease);
    if (!begun) {
      (void)ctx_.store.Revoke(lease);
      return begun.error();
    }
    return std::pair{*begun, lease};
  }

  orchestrate::Runbook MakeRunbook() {
    orchestrate::RunbookOptions o;
    o.owner = owner_;
    o.lease_ttl = ctx_.plan.failover.lease;
    return orchestrate::Runbook(ctx_.store, *this, o);
  }

  // From the loop thread only (the driver is reset after the loop ends).
  // `lease`: the one Begin locked the run under, or 0 (a run to resume).
  void StartDrive(const std::string& kind, state::LeaseId lease = 0) {
    if (driving_.exchange(true)) {
      if (lease != 0) (void)ctx_.store.Revoke(lease);
      return;
    }
    Steady quorum_at = down_quorum_at_;
    driver_->Post([this, kind, quorum_at, lease] {
      Drive(kind, quorum_at, lease);
      driving_ = false;
    });
  }

  // On the driver: drives the current run to its end, or until another
  // agent holds it or this agent stops.
  void Drive(const std::string& kind, Steady quorum_at, state::LeaseId lease) {
    auto started = SteadyClock::now();
    auto r = MakeRunbook().Drive(&stop_drive_, lease);
    if (!r.ok() && r.error().code() == Code::kFailedPrecondition) return;  // another agent drives it
    runs_c_->With({kind, r.ok() ? r->state : std::string(CodeName(r.error().code()))}).Inc();
    if (r.ok() && r->state == "done") {
      run_seconds_g_->Get().Set(std::chrono::duration<double>(SteadyClock::now() - started).count());
      if (kind == "automatic" && quorum_at != Steady()) {
        detect_to_switch_g_->Get().Set(std::chrono::duration<double>(SteadyClock::now() - quorum_at).count());
      }
    } else if (!r.ok() && r.error().code() != Code::kCancelled) {
      LogWarn({{"error", r.error().message()}}, "failover: driving the run stopped: {}", r.error().message());
    }
  }

  // The primary has not reached the store for a whole lease: another region
  // may be promoted now, so this one stops sending before it could matter.
  void MaybeSelfFence(Steady now) {
    if (self_fenced_ || last_store_ok_ == Steady()) return;
    std::optional<state::PrimaryRecord> p;
    {
      std::lock_guard lock(mu_);
      p = primary_;
    }
    if (!p || p->region != ctx_.region.name || now - last_store_ok_ < ctx_.plan.failover.lease) return;
    self_fenced_ = true;
    self_fence_c_->Get().Inc();
    LogError({{"region", ctx_.region.name}},
             "failover: self-fence: this primary has not reached the state store for {}; another region may take "
             "over, so this region stops sending its volumes until the store answers",
             FormatDuration(ctx_.plan.failover.lease));
    if (roles_ != nullptr) roles_->HoldSending(true);
    if (databases_ != nullptr) databases_->HoldWrites(true);
    if (!ctx_.plan.failover.self_fence.empty()) {
      const plan::Hook* hook = FindHook(ctx_.plan.failover.self_fence);
      state::FailoverRun fenced;  // what the hook's environment tells: this region, at the epoch it last read
      fenced.from = ctx_.region.name;
      fenced.epoch = p->epoch;
      // On the driver: the tick goes on meanwhile and sees the store come back.
      driver_->Post([this, hook, fenced] {
        auto out = RunHook(*hook, fenced);
        if (!out.ok()) LogError({{"error", out.error().message()}}, "failover: self-fence hook: {}", out.error().message());
      });
    }
  }

  // Sends again only while still the primary; a source superseded meanwhile
  // stays held until Reconcile fences it (a role change ends the hold).
  void EndSelfFence(const state::PrimaryRecord& p) {
    self_fenced_ = false;
    if (roles_ != nullptr && p.region == ctx_.region.name) roles_->HoldSending(false);
    if (databases_ != nullptr && p.region == ctx_.region.name) databases_->HoldWrites(false);
    LogWarn({{"primary", p.region}}, "failover: the state store answers again; the primary is {} at epoch {}",
            p.region, p.epoch);
  }

  Result<state::RoutingControl> SwitchControl(const std::string& region, bool on, bool force, const std::string& who) {
    return traffic_ != nullptr ? traffic_->Switch(region, on, force, who) : own_controls_->Set(region, on, force, who);
  }

  const plan::Hook* FindHook(const std::string& name) const {
    for (const auto& h : ctx_.plan.failover.hooks) {
      if (h.name == name) return &h;
    }
    return nullptr;
  }

  // StepRunner
  Result<std::string> RunStep(const state::StepRecord& step, const state::FailoverRun& run) override {
    // A drill's hold (LIFEBOAT_DRILL_HOLD_STEP=NAME, set only by `lifeboat
    // drill run agent-crash-mid-failover` for the agents it starts): the
    // first attempt of that step waits 2 s before it acts, so that the drill,
    // watching the run, kills its driver inside the step and not after it.
    if (!hold_step_.empty() && step.name == hold_step_ && step.attempts <= 1) {
      spdlog::warn("failover: holding step {} for 2s (LIFEBOAT_DRILL_HOLD_STEP, a drill)", step.name);
      for (int i = 0; i < 40 && !stop_drive_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto started = SteadyClock::now();
    Result<std::string> out = Internal("unknown step");
    if (step.name == "fence") {
      out = FenceStep(run);
    } else if (step.name == "promote") {
      out = PromoteStep(run);
    } else if (step.name == "restore") {
      out = RestoreStep(run, step);
    } else if (step.name == "restore-resources") {
      out = k8s::RestoreResourcesStep(ctx_.plan, run.to, ctx_.token);
    } else if (step.name == "scale") {
      out = k8s::ScaleStep(ctx_.plan, run.to, [this] { return stop_drive_.load(); });
    } else if (step.name == "switch-traffic") {
      out = SwitchStep(run);
    } else if (step.name == "verify") {
      out = VerifyStep(run);
    } else if (const plan::Hook* hook = FindHook(step.name)) {
      out = RunHook(*hook, run);
    } else {
      out = InvalidArgument("step '" + step.name + "' is neither a built-in step nor a hook of this plan");
    }
    step_seconds_h_->With({step.name, out.ok() ? "done" : "failed"})
        .Observe(std::chrono::duration<double>(SteadyClock::now() - started).count());
    return out;
  }

  // The epoch moves to the run's target, and the old primary's traffic goes.
  Result<std::string> FenceStep(const state::FailoverRun& run) {
    LB_ASSIGN_OR_RETURN(auto p, orchestrate::CurrentPrimary(ctx_.store, ctx_.plan));
    std::string accepted, db_fenced;
    if (p.record.epoch < run.epoch) {
      if (p.record.epoch + 1 != run.epoch || p.record.region != run.from) {
        return FailedPrecondition("the primary is " + p.record.region + " at epoch " + std::to_string(p.record.epoch) +
                                  "; this run moves " + run.from + " at epoch " + std::to_string(run.epoch - 1));
      }
      if (run.planned) LB_RETURN_IF_ERROR(DrainBeforeSwitch(run));
      std::string lag = run.planned ? std::string() : AcceptedLag(run);
      LB_ASSIGN_OR_RETURN(db_fenced, FenceDatabases(run));
      LB_ASSIGN_OR_RETURN(p, orchestrate::AdvanceEpoch(ctx_.store, ctx_.plan, p, run.to, owner_));
      if (!lag.empty()) {
        LogWarn({{"from", run.from}, {"to", run.to}}, "failover: epoch {}: unplanned, accepting the lag: {}", run.epoch,
                lag);
        accepted = "; accepted lag: " + lag;
      }
    } else if (p.record.epoch > run.epoch || p.record.region != run.to) {
      return FailedPrecondition("superseded: the primary is " + p.record.region + " at epoch " +
                                std::to_string(p.record.epoch));
    }
    std::string out = "epoch " + std::to_string(run.epoch) + ": " + run.to + " is primary" +
                      (run.planned ? " (planned: every volume was in sync at the switch)" : accepted) + db_fenced;
    const plan::Region* from = ctx_.plan.FindRegion(run.from);
    if (from != nullptr && from->serves()) {
      LB_RETURN_IF_ERROR(StatusOf(SwitchControl(run.from, false, true, "failover " + run.id)));
      out += "; routing control of " + run.from + " off";
    }
    return out;
  }

  // A planned failover: the old primary's traffic goes first, then every
  // volume it sends must be in sync at the new primary (as the old primary's
  // view reports) without a break for kInSyncSettle; only then does the
  // epoch move, so nothing acknowledged there is left behind.
  //
  // Resolvers may send clients to the old primary for the longest TTL of
  // its DNS answers after its traffic went off, and what they write there
  // would be overwritten when it follows the new primary: so the switch
  // also waits out that TTL (and the settle after it).
  Status DrainBeforeSwitch(const state::FailoverRun& run) {
    const plan::Region* from = ctx_.plan.FindRegion(run.from);
    if (from != nullptr && from->serves()) {
      LB_RETURN_IF_ERROR(StatusOf(SwitchControl(run.from, false, true, "planned failover " + run.id)));
    }
    const Duration ttl = ctx_.plan.LongestTtlTo(run.from);
    const Steady off_at = SteadyClock::now();
    if (ttl > Duration::zero()) {
      LogInfo({{"from", run.from}, {"to", run.to}},
              "failover: epoch {}: {}'s traffic is off; waiting out the DNS TTL of {} before the switch", run.epoch,
              run.from, FormatDuration(ttl));
    }
    std::vector<std::string> volumes;
    for (const auto& v : ctx_.plan.volumes) {
      if (v.replication.mode == plan::ReplicationMode::kContinuous && v.path.count(run.to) && v.path.count(run.from)) {
        volumes.push_back(v.name);
      }
    }
    auto deadline = off_at + ttl + kInSyncTimeout;
    Steady since{};  // since when every volume has been in sync; epoch: not now
    for (;;) {
      LB_ASSIGN_OR_RETURN(auto view, state::keys::ViewOf(run.from).Get(ctx_.store));
      if (!view) {
        return FailedPrecondition("a planned failover needs " + run.from + "'s agent to report its lag, and it has no "
                                  "view in the store (fail over unplanned instead)");
      }
      std::string behind;
      for (const auto& v : volumes) {
        bool ok = std::any_of(view->sending.begin(), view->sending.end(), [&](const auto& s) {
          return s.volume == v && s.target == run.to && s.in_sync;
        });
        if (!ok) behind += (behind.empty() ? "" : ", ") + v;
      }
      auto now = SteadyClock::now();
      if (!behind.empty()) {
        since = Steady{};
      } else if (since == Steady{}) {
        since = now;
      } else if (now - since >= kInSyncSettle && now - off_at >= ttl) {
        return Ok();
      }
      if (now > deadline || stop_drive_) {
        return DeadlineExceeded(run.to + " did not catch up with " + run.from + " within " +
                                FormatDuration(ttl + kInSyncTimeout) + " (" + behind + " behind); the primary is unchanged");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // Waits until the new primary's agent has made it the source of every
  // volume it holds a copy of, and has promoted its server of every
  // database (it reconciles to the epoch by itself).
  Result<std::string> PromoteStep(const state::FailoverRun& run) {
    std::vector<std::string> volumes, databases;
    for (const auto& v : ctx_.plan.volumes) {
      if (v.replication.mode == plan::ReplicationMode::kContinuous && v.path.count(run.to) && v.path.size() > 1) {
        volumes.push_back(v.name);
      }
    }
    for (const auto& d : ctx_.plan.databases) {
      if (d.instances.count(run.to) && d.instances.size() > 1) databases.push_back(d.name);
    }
    if (volumes.empty() && databases.empty()) return std::string("no continuously replicated volume or database to promote");
    auto deadline = SteadyClock::now() + kPromoteTimeout;
    for (;;) {
      std::string waiting;
      for (const auto& v : volumes) {
        LB_ASSIGN_OR_RETURN(auto role, state::keys::VolumeRoleOf(run.to, v).Get(ctx_.store));
        if (role && role->source && !role->fenced && role->epoch >= run.epoch) continue;
        waiting += (waiting.empty() ? "" : ", ") + v + " (" +
                   (!role ? std::string("no role yet")
                          : std::string(role->fenced ? "fenced" : role->source ? "source" : "target") + " at epoch " +
                                std::to_string(role->epoch)) +
                   ")";
      }
      for (const auto& d : databases) {
        LB_ASSIGN_OR_RETURN(auto role, state::keys::DatabaseRoleOf(run.to, d).Get(ctx_.store));
        if (role && role->role == "primary" && role->epoch >= run.epoch) continue;
        waiting += (waiting.empty() ? "" : ", ") + ("database " + d) + " (" +
                   (!role ? std::string("not promoted yet") : role->role + " at epoch " + std::to_string(role->epoch)) + ")";
      }
      if (waiting.empty()) {
        std::string list;
        for (const auto& v : volumes) list += (list.empty() ? "" : ", ") + v;
        for (const auto& d : databases) list += (list.empty() ? "database " : ", database ") + d;
        return run.to + " is the source of " + list + " at epoch " + std::to_string(run.epoch);
      }
      if (SteadyClock::now() > deadline || stop_drive_) {
        return DeadlineExceeded(run.to + "'s agent did not promote within " + FormatDuration(kPromoteTimeout) +
                                ": " + waiting + "; see its log and `lifeboat status`");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // The database part of a fence: each database's server in the old
  // primary region is fenced when it answers (planned: it must, and the new
  // primary's server must then receive all it wrote before the epoch
  // moves). Unplanned and unreachable is fine: that server's own agent
  // fences it when it sees the epoch, and a server nobody reaches takes no
  // writes from anyone who reaches lifeboat's traffic.
  Result<std::string> FenceDatabases(const state::FailoverRun& run) {
    std::string out;
    for (const auto& db : ctx_.plan.databases) {
      if (!db.instances.count(run.from) || !db.instances.count(run.to)) continue;
      auto target = postgres::TargetOf(db, run.from);
      if (!target.ok()) return target.error();
      target->application_name = "lifeboat-failover";
      auto conn = postgres::Conn::Open(*target, std::chrono::seconds(run.planned ? 5 : 2));
      if (!conn.ok()) {
        if (run.planned) return conn.error().Wrap("a planned failover fences " + db.name + " in " + run.from);
        out += "; database " + db.name + ": " + run.from + "'s server is unreachable (its agent fences it on return)";
        continue;
      }
      auto fenced = postgres::Fence(*conn, std::chrono::seconds(30));
      if (!fenced.ok()) {
        if (fenced.error().code() == Code::kFailedPrecondition) continue;  // a standby there: nothing to fence
        if (run.planned) return fenced.error().Wrap("fence " + db.name + " in " + run.from);
        out += "; database " + db.name + ": fencing " + run.from + "'s server failed: " + fenced.error().message();
        continue;
      }
      (void)state::keys::DatabaseRoleOf(run.from, db.name)
          .Put(ctx_.store, {"fenced", run.epoch, postgres::FormatLsn(fenced->final_lsn), FormatUtc(ctx_.clock.Now())});
      std::string one = "database " + db.name + ": " + run.from + "'s server fenced at " +
                        postgres::FormatLsn(fenced->final_lsn);
      if (run.planned) {
        LB_ASSIGN_OR_RETURN(auto t, postgres::TargetOf(db, run.to));
        t.application_name = "lifeboat-failover";
        LB_ASSIGN_OR_RETURN(auto standby, postgres::Conn::Open(t, std::chrono::seconds(5)));
        if (auto w = postgres::WaitReceived(standby, fenced->final_lsn, kInSyncTimeout); !w.ok()) {
          return w.error().Wrap(run.to + "'s server of " + db.name + " did not receive " + run.from + "'s last write");
        }
        one += ", all of it received by " + run.to;
      }
      out += "; " + one;
    }
    return out;
  }

  // Waits until the new primary's agent has restored the newest backup of
  // each of its volumes (MaybeRestore there) for this attempt.
  Result<std::string> RestoreStep(const state::FailoverRun& run, const state::StepRecord& step) {
    auto volumes = RestoredVolumes(ctx_.plan, run.to);
    if (volumes.empty()) return "no volume to restore in " + run.to + " (replicated copies are promoted instead)";
    const std::string tag = RestoreTag(run, step);
    auto started = SteadyClock::now(), deadline = started + kRestoreTimeout;
    Steady agent_seen = started, reported = started;
    for (;;) {
      LB_ASSIGN_OR_RETURN(auto record, state::keys::RestoreOf(run.to).Get(ctx_.store));
      if (record && record->run == tag && record->state != "running") {
        std::string out;
        for (const auto& v : record->volumes) {
          std::string one = v.volume + ": ";
          if (v.backup.empty()) {
            one += "no backup in any location" + (v.error.empty() ? "" : " (" + v.error + ")");
          } else if (v.files == 0 && !v.error.empty()) {
            one += "backup " + v.backup.substr(0, 8) + " from " + v.location + " failed: " + v.error;
          } else {
            one += "backup " + v.backup.substr(0, 8) + " from " + v.location + ", " + std::to_string(v.files) +
                   " files (" + HumanBytes(v.bytes) + ")" + (v.error.empty() ? "" : "; " + v.error);
          }
          out += (out.empty() ? "" : "; ") + one;
        }
        if (record->state == "failed") return Internal("restore in " + run.to + " failed: " + out);
        return "restored in " + run.to + ": " + out;
      }
      auto now = SteadyClock::now();
      LB_ASSIGN_OR_RETURN(auto view, state::keys::ViewOf(run.to).Get(ctx_.store));
      if (view) agent_seen = now;
      if (now - agent_seen > kRestoreAgentGone) {
        return Unavailable(run.to + "'s agent has had no view in the store for " + FormatDuration(kRestoreAgentGone) +
                           "; it restores its own copies");
      }
      if (now > deadline || stop_drive_) {
        return DeadlineExceeded(run.to + " did not finish restoring within " + FormatDuration(kRestoreTimeout));
      }
      if (now - reported > std::chrono::minutes(1)) {
        reported = now;
        LogInfo({{"to", run.to}}, "failover: waiting for {} to restore its volumes ({} so far)", run.to,
                FormatDuration(std::chrono::duration_cast<Duration>(now - started)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  Result<std::string> SwitchStep(const state::FailoverRun& run) {
    LB_RETURN_IF_ERROR(StatusOf(SwitchControl(run.to, true, false, "failover " + run.id)));
    return "routing control of " + run.to + " on";
  }

  // The new primary's checked endpoints pass from a quorum of regions.
  Result<std::string> VerifyStep(const state::FailoverRun& run) {
    auto checked = orchestrate::CheckedEndpoints(ctx_.plan, run.to);
    if (checked.empty()) return "no checked endpoint in " + run.to + "; nothing to verify";
    const int quorum = ctx_.plan.failover.quorum;
    auto deadline = SteadyClock::now() + kVerifyTimeout;
    std::string seen;
    for (;;) {
      LB_ASSIGN_OR_RETURN(auto views, ReadViews());
      std::erase_if(views, [&](const auto& v) { return v.epoch != run.epoch || v.primary != run.to; });
      for (const auto* e : checked) {
        if (orchestrate::HealthyInViews(e->name, views, quorum)) {
          std::string who;
          for (const auto& v : views) {
            for (const auto& [name, up] : v.endpoints) {
              if (name == e->name && up) who += (who.empty() ? "" : ", ") + v.observer;
            }
          }
          return e->name + " passes its check from " + who;
        }
      }
      seen = std::to_string(views.size()) + " region(s) have a view of epoch " + std::to_string(run.epoch);
      if (SteadyClock::now() > deadline || stop_drive_) {
        return DeadlineExceeded("no endpoint of " + run.to + " passed its check from " + std::to_string(quorum) +
                                " regions within " + FormatDuration(kVerifyTimeout) + " (" + seen + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  Result<std::string> RunHook(const plan::Hook& hook, const state::FailoverRun& run) {
    std::vector<std::pair<std::string, std::string>> env = {
        {"LIFEBOAT_OLD_PRIMARY", run.from},
        {"LIFEBOAT_NEW_PRIMARY", run.to},
        {"LIFEBOAT_EPOCH", std::to_string(run.epoch)},
        {"LIFEBOAT_PLAN", ctx_.plan.source},
        {"LIFEBOAT_REGION", ctx_.region.name}};
    LB_ASSIGN_OR_RETURN(auto r, RunCommand(hook.run, env, hook.timeout));
    std::string output = r.output;
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    LogInfo({{"hook", hook.name}}, "failover: hook {} exited with {}{}{}", hook.name, r.exit_code,
            output.empty() ? "" : ": ", output);
    if (r.exit_code != 0) {
      return Internal("hook " + hook.name + " exited with " + std::to_string(r.exit_code) +
                      (output.empty() ? "" : ": " + output));
    }
    return "hook " + hook.name + (output.empty() ? " done" : ": " + output);
  }

  // POST /v1/failover {"to": REGION, "planned": BOOL, "force": BOOL, "by": WHO}: a manual
  // failover, checked against the last tick's views (the handler runs on the
  // event loop: the store is written on the driver's worker).
  net::HttpResponse Handle(const net::HttpRequest& req) {
    if (req.path != "/v1/failover") return JsonError(404, "no such route; use GET or POST /v1/failover");
    if (req.method == "GET") return net::HttpResponse::Json(200, StatusJson().dump(2) + "\n");
    if (req.method != "POST") return JsonError(405, "use GET or POST /v1/failover");
    if (auto denied = CheckToken(req, ctx_.token, "a failover")) return *denied;
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("to") || !body["to"].is_string()) {
      return JsonError(400, "send a JSON body such as {\"to\": \"us-west\", \"planned\": false, \"force\": false, "
                            "\"by\": \"alice\"}");
    }
    std::string to = body["to"];
    bool force = body.contains("force") && body["force"].is_boolean() && body["force"].get<bool>();
    bool planned = body.contains("planned") && body["planned"].is_boolean() && body["planned"].get<bool>();
    std::string by = body.contains("by") && body["by"].is_string() ? body["by"].get<std::string>() : "";
    auto region = ctx_.plan.RequireRegion(to);
    if (!region.ok()) return JsonError(region.error());
    if (!(*region)->serves()) return JsonError(400, "region '" + to + "' is a witness; it cannot become primary");
    state::PrimaryRecord p;
    orchestrate::Verdict verdict;
    std::vector<state::ObserverView> views;
    {
      std::lock_guard lock(mu_);
      if (!primary_) return JsonError(503, "this agent has not read the state store yet" +
                                               (store_error_.empty() ? std::string() : ": " + store_error_));
      p = *primary_;
      views = views_;
    }
    if (p.region == to) return JsonError(409, to + " is already the primary (epoch " + std::to_string(p.epoch) + ")");
    if (!force) {
      // The target must be able to take over: the detector's test for a target.
      if (std::string why = detector_.Unfit(to, p, views); !why.empty()) {
        return JsonError(409, to + " cannot become primary now: " + why + " (--force to fail over anyway)");
      }
    }
    if (driving_.exchange(true)) return JsonError(409, "this agent is driving a failover already; see GET /v1/failover");
    std::string who = (by.empty() ? "admin API" : by) + " from " + req.remote;
    {
      std::lock_guard lock(mu_);
      last_request_ = {{"to", to},       {"force", force},     {"planned", planned},
                       {"by", who},      {"state", "accepted"}, {"at", FormatUtc(ctx_.clock.Now())}};
    }
    driver_->Post([this, p, to, who, planned] {
      auto begun = Begin(p.region, to, p.epoch + 1, planned);
      {
        std::lock_guard lock(mu_);
        last_request_["state"] = begun.ok() ? "running" : "refused";
        if (begun.ok()) last_request_["run"] = begun->first.id;
        if (!begun.ok()) last_request_["error"] = begun.error().message();
      }
      if (!begun.ok()) {
        LogWarn({{"error", begun.error().message()}}, "failover: manual failover to {} refused: {}", to,
                begun.error().message());
      } else {
        LogWarn({{"from", p.region}, {"to", to}, {"by", who}},
                "failover: manual {}failover from {} to {} (epoch {}) by {}", planned ? "planned " : "", p.region, to,
                p.epoch + 1, who);
        Drive("manual", Steady(), begun->second);
      }
      driving_ = false;
    });
    return net::HttpResponse::Json(202, Json{{"to", to}, {"from", p.region}, {"epoch", p.epoch + 1},
                                             {"planned", planned}, {"state", "accepted"}}.dump() + "\n");
  }

  void RegisterMetrics() {
    auto& m = ctx_.metrics;
    epoch_g_ = &m.AddGauge("lifeboat_failover_epoch", "The failover epoch this agent last read from the store");
    votes_g_ = &m.AddGauge("lifeboat_failover_votes", "Regions whose view of this epoch sees the primary down");
    runs_c_ = &m.AddCounter("lifeboat_failover_runs_total",
                            "Failover runs this agent drove to an end, by kind (automatic, manual, resume) and result",
                            {"kind", "result"});
    step_seconds_h_ = &m.AddHistogram("lifeboat_failover_step_duration_seconds",
                                      "Durations of failover steps this agent ran, by step and result",
                                      {"step", "result"}, metrics::DurationBuckets());
    run_seconds_g_ = &m.AddGauge("lifeboat_failover_last_run_seconds",
                                 "Duration of the last failover run this agent drove to done");
    detect_to_switch_g_ = &m.AddGauge("lifeboat_failover_detection_to_done_seconds",
                                      "From a quorum seeing the primary down to the automatic run done, last time");
    accepted_lag_g_ = &m.AddGauge("lifeboat_failover_accepted_lag_seconds",
                                  "At this agent's last unplanned failover: how long before the fence it last saw "
                                  "the new primary's copy of the volume in sync (NaN: never)",
                                  {"volume"});
    self_fence_c_ = &m.AddCounter("lifeboat_failover_self_fence_total",
                                  "Times this primary fenced itself after losing the state store for a lease");
  }

  ServiceContext& ctx_;
  orchestrate::Detector detector_;  // used on the loop thread (and read-only by Handle's Decide)
  const std::string owner_;
  const Duration tick_;
  TrafficSwitch* traffic_ = nullptr;
  VolumeRoles* roles_ = nullptr;
  DatabaseRoles* databases_ = nullptr;
  VolumeRestorer* restorer_ = nullptr;
  std::unique_ptr<health::Monitor> own_health_;
  std::unique_ptr<traffic::RoutingControls> own_controls_;

  std::thread loop_;
  std::unique_ptr<Worker> driver_;  // begins and drives runs
  std::atomic<bool> driving_{false};
  std::string hold_step_;  // LIFEBOAT_DRILL_HOLD_STEP
  std::atomic<bool> stop_drive_{false};

  // The loop thread's own.
  std::optional<state::LeaseId> lease_;
  Steady renewed_, last_store_ok_, down_quorum_at_, failed_seen_;
  std::string published_;  // what the stored view says, minus its time
  bool was_failover_ = false;
  std::atomic<bool> self_fenced_{false};  // read by StatusJson
  std::string failed_run_;
  std::map<std::string, Steady> reconcile_tried_;
  std::string restoring_;  // the restore tag (RestoreTag) this agent began last

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                       // guarded by mu_
  state::ObserverView view_;                    // guarded by mu_
  std::vector<state::ObserverView> views_;      // guarded by mu_
  orchestrate::Verdict verdict_;                // guarded by mu_
  std::optional<state::PrimaryRecord> primary_;  // guarded by mu_
  std::string store_error_;                     // guarded by mu_
  Json last_request_;                           // guarded by mu_
  std::map<std::string, std::optional<bool>> combined_;  // guarded by mu_: endpoint -> health by the views
  std::function<void()> on_views_change_;
  // (primary, volume, target) -> when the primary's view last said in sync; guarded by mu_.
  struct Sighting {
    Clock::TimePoint at;        // when this agent read it
    std::chrono::milliseconds lag;  // how far behind the view said the target was
  };
  std::map<std::tuple<std::string, std::string, std::string>, Sighting> in_sync_seen_;

  metrics::Family<metrics::Gauge>* epoch_g_ = nullptr;
  metrics::Family<metrics::Gauge>* votes_g_ = nullptr;
  metrics::Family<metrics::Counter>* runs_c_ = nullptr;
  metrics::Family<metrics::Histogram>* step_seconds_h_ = nullptr;
  metrics::Family<metrics::Gauge>* run_seconds_g_ = nullptr;
  metrics::Family<metrics::Gauge>* detect_to_switch_g_ = nullptr;
  metrics::Family<metrics::Counter>* self_fence_c_ = nullptr;
  metrics::Family<metrics::Gauge>* accepted_lag_g_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<Service>> MakeFailoverService(ServiceContext& ctx) {
  if (ctx.plan.regions.size() < 2 || ctx.plan.Primary() == nullptr) return std::unique_ptr<Service>();
  auto s = std::make_unique<FailoverService>(ctx);
  LB_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace lifeboat::agent
