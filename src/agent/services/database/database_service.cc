#include "agent/services/database/database_service.h"

#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

#include "agent/capabilities.h"
#include "core/log.h"
#include "postgres/control.h"
#include "postgres/inspect.h"
#include "postgres/instance.h"
#include "state/keys.h"

namespace lifeboat::agent {
namespace {

using OJson = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;
using Steady = SteadyClock::time_point;

constexpr auto kTick = std::chrono::milliseconds(500);
constexpr auto kCallTimeout = std::chrono::seconds(2);
constexpr auto kPromoteTimeout = std::chrono::seconds(60);
// How long a sync primary goes with no standby streaming before a plan with
// when_standby_down: degrade lets commits go on asynchronously.
constexpr auto kDegradeAfter = std::chrono::seconds(5);

// One database with a server in this region.
struct Db {
  const plan::Database* plan = nullptr;
  postgres::Target target;
  std::optional<postgres::Conn> conn;
  // The primary's server, while this one is a standby: what its lag is measured against.
  std::string primary_region;
  std::optional<postgres::Conn> primary_conn;

  // What the last tick saw (under the service's mutex).
  std::optional<postgres::ServerState> state;
  std::string error;
  int64_t lag_bytes = -1;  // a standby's, last measured
  double lag_seconds = -1;
  std::string lag_at;
  bool degraded = false;
  Steady alone_since{};  // a sync primary with no standby streaming since then
  std::vector<OJson> standbys;
  std::string last_action, last_action_at, last_error;
  Steady last_try{};
};

class DatabaseService final : public Service, public DatabaseRoles {
 public:
  DatabaseService(ServiceContext& ctx, std::vector<std::unique_ptr<Db>> dbs) : ctx_(ctx), dbs_(std::move(dbs)) {
    up_g_ = &ctx_.metrics.AddGauge("lifeboat_db_up", "1 when this region's server of the database answers", {"database"});
    primary_g_ = &ctx_.metrics.AddGauge("lifeboat_db_primary",
                                        "1 when this region's server is the database's writable primary", {"database"});
    fenced_g_ = &ctx_.metrics.AddGauge("lifeboat_db_fenced",
                                       "1 when this region's server is a primary fenced by lifeboat (refuses writes)",
                                       {"database"});
    lag_bytes_g_ = &ctx_.metrics.AddGauge(
        "lifeboat_db_lag_bytes",
        "Bytes of WAL this region's standby had not replayed of the primary's, when last measured (the database's RPO "
        "in bytes); NaN when never measured",
        {"database"});
    lag_seconds_g_ = &ctx_.metrics.AddGauge(
        "lifeboat_db_lag_seconds", "How far this region's standby is behind in time (0 when caught up); NaN when unknown",
        {"database"});
    degraded_g_ = &ctx_.metrics.AddGauge(
        "lifeboat_db_sync_degraded",
        "1 while a sync database's primary here commits asynchronously because no standby streams (when_standby_down: "
        "degrade)",
        {"database"});
    auto& limit = ctx_.metrics.AddGauge("lifeboat_db_max_lag_on_failover_bytes",
                                        "The plan's max_lag_on_failover: a standby further behind is not failed over to",
                                        {"database"});
    for (const auto& d : dbs_) limit.With({d->plan->name}).Set(static_cast<double>(d->plan->max_lag_on_failover.bytes));
    actions_c_ = &ctx_.metrics.AddCounter("lifeboat_db_actions_total",
                                          "What the agent did to this region's server: promote, fence, unfence, sync",
                                          {"database", "action", "result"});
    ctx_.caps.Provide<DatabaseRoles>(this);
    // A new epoch wakes the worker at once (the callback runs on the store's
    // watch thread and may outlive this service: it holds only the wake).
    primary_view_ = ctx_.caps.Get<PrimaryView>();
    if (primary_view_ != nullptr) {
      primary_view_->OnChange([wake = std::weak_ptr<Wake>(wake_)] {
        if (auto w = wake.lock()) w->Poke();
      });
    }
  }
  ~DatabaseService() override { Stop(); }

  std::string_view name() const override { return "databases"; }

  Status Start() override {
    worker_ = std::thread([this] { Loop(); });
    return Ok();
  }

  void Stop() override {
    {
      std::lock_guard lock(wake_->mu);
      wake_->stop = true;
    }
    wake_->cv.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  OJson StatusJson() override {
    std::lock_guard lock(mu_);
    OJson out = OJson::object();
    for (const auto& d : dbs_) {
      OJson j = {{"server", postgres::Describe(d->target.conninfo)}, {"role", RoleOf(*d)}};
      if (d->state) {
        const auto& s = *d->state;
        if (s.in_recovery) {
          j["upstream"] = s.upstream_status.empty() ? "none" : s.upstream_status;
          j["replay_lsn"] = s.replay_lsn ? postgres::FormatLsn(*s.replay_lsn) : "";
          j["lag_bytes"] = d->lag_bytes >= 0 ? OJson(d->lag_bytes) : OJson();
          j["lag_seconds"] = d->lag_seconds >= 0 ? OJson(d->lag_seconds) : OJson();
          if (!d->lag_at.empty()) j["lag_measured_at"] = d->lag_at;
        } else {
          j["wal_lsn"] = s.flush_lsn ? postgres::FormatLsn(*s.flush_lsn) : "";
          j["standbys"] = d->standbys;
          if (d->plan->mode == plan::DbMode::kSync) j["sync_degraded"] = d->degraded;
        }
      }
      if (!d->error.empty()) j["error"] = d->error;
      if (!d->last_action.empty()) {
        j["last_action"] = {{"what", d->last_action}, {"at", d->last_action_at}};
        if (!d->last_error.empty()) j["last_action"]["error"] = d->last_error;
      }
      out[d->plan->name] = j;
    }
    return out;
  }

  // DatabaseRoles
  std::vector<state::ObserverView::Database> Views() const override {
    std::lock_guard lock(mu_);
    std::vector<state::ObserverView::Database> out;
    for (const auto& d : dbs_) out.push_back({d->plan->name, RoleOf(*d), d->lag_bytes});
    return out;
  }

  void HoldWrites(bool held) override {
    held_ = held;
    wake_->Poke();
  }

 private:
  static std::string RoleOf(const Db& d) {
    if (!d.state) return "unreachable";
    return d.state->Role();
  }

  void Loop() {
    std::unique_lock lock(wake_->mu);
    while (!wake_->stop) {
      wake_->poked = false;
      lock.unlock();
      for (auto& d : dbs_) Tick(*d);
      lock.lock();
      wake_->cv.wait_for(lock, kTick, [this] { return wake_->stop || wake_->poked; });
    }
  }

  // Reads the server (outside the mutex: calls may take their timeout).
  std::optional<postgres::ServerState> Read(Db& d, std::string& error) {
    if (!d.conn || !d.conn->ok()) {
      d.conn.reset();
      auto c = postgres::Conn::Open(d.target, kCallTimeout);
      if (!c.ok()) {
        error = c.error().message();
        return std::nullopt;
      }
      d.conn.emplace(std::move(*c));
    }
    auto s = postgres::Inspect(*d.conn, kCallTimeout);
    if (!s.ok()) {
      error = s.error().message();
      d.conn.reset();
      return std::nullopt;
    }
    return std::move(*s);
  }

  void Record(Db& d, const std::string& action, const Status& s) {
    actions_c_->With({d.plan->name, action, s.ok() ? "ok" : "error"}).Inc();
    std::lock_guard lock(mu_);
    d.last_action = action;
    d.last_action_at = FormatUtc(ctx_.clock.Now());
    d.last_error = s.ok() ? "" : s.error().message();
  }

  void Tick(Db& d) {
    const std::string& here = ctx_.region.name;
    const std::string& name = d.plan->name;
    std::string error;
    auto state = Read(d, error);
    std::optional<state::PrimaryRecord> p = primary_view_ ? primary_view_->Primary() : std::nullopt;
    auto now = SteadyClock::now();
    bool retry_ok = now - d.last_try >= std::chrono::seconds(2);  // a refused change is tried again, not every tick

    if (state && !state->in_recovery && !state->fenced && retry_ok) {
      if (held_) {
        d.last_try = now;
        auto f = postgres::Fence(*d.conn, kCallTimeout * 5);
        LogError({{"database", name}}, "database {}: self-fence: writes refused while this primary cannot reach the "
                                       "state store{}", name, f.ok() ? "" : " (failed: " + f.error().message() + ")");
        if (f.ok()) self_fenced_here_ = true;
        Record(d, "fence", StatusOf(f));
        state = Read(d, error);
      } else if (p && p->region != here && d.plan->instances.count(p->region)) {
        // The epoch moved to another region: this server must never take another write.
        d.last_try = now;
        auto f = postgres::Fence(*d.conn, kCallTimeout * 5);
        if (f.ok()) {
          LogWarn({{"database", name}, {"primary", p->region}},
                  "database {}: epoch {} made {} primary: fenced this server ({} sessions ended, WAL ends at {})", name,
                  p->epoch, p->region, f->sessions_ended, postgres::FormatLsn(f->final_lsn));
          (void)state::keys::DatabaseRoleOf(here, name)
              .Put(ctx_.store, {"fenced", p->epoch, postgres::FormatLsn(f->final_lsn), FormatUtc(ctx_.clock.Now())});
        } else {
          LogError({{"database", name}}, "database {}: cannot fence this server: {}", name, f.error().message());
        }
        Record(d, "fence", StatusOf(f));
        state = Read(d, error);
      }
    }
    // The role record is read only when there may be something to do: a
    // primary that is neither a standby nor fenced needs no store read.
    if (state && p && p->region == here && !held_ && retry_ok && (state->in_recovery || state->fenced)) {
      auto role = state::keys::DatabaseRoleOf(here, name).Get(ctx_.store);
      uint64_t done_epoch = role.ok() && *role ? (*role)->epoch : 0;
      bool ours = role.ok() && *role && (*role)->role == "fenced";
      std::string sync = postgres::SyncStandbyNames(*d.plan, here, d.degraded);
      if (state->in_recovery && p->epoch > 1 && done_epoch < p->epoch && role.ok()) {
        d.last_try = now;
        LogWarn({{"database", name}}, "database {}: epoch {} makes {} primary: promoting this server", name, p->epoch,
                here);
        // A promoted standby has no standby of its own yet: with
        // when_standby_down: degrade it starts asynchronous (KeepSync makes
        // commits wait again once one streams); with block, commits wait.
        if (d.plan->when_standby_down == plan::StandbyDown::kDegrade && !d.degraded) {
          d.degraded = true;
          sync = postgres::SyncStandbyNames(*d.plan, here, true);
        }
        auto at = postgres::Promote(*d.conn, sync, kPromoteTimeout);
        if (at.ok()) {
          (void)state::keys::DatabaseRoleOf(here, name)
              .Put(ctx_.store, {"primary", p->epoch, postgres::FormatLsn(*at), FormatUtc(ctx_.clock.Now())});
          LogWarn({{"database", name}}, "database {}: promoted; it accepts writes from {}", name, postgres::FormatLsn(*at));
        } else {
          LogError({{"database", name}}, "database {}: promotion failed: {}", name, at.error().message());
        }
        Record(d, "promote", StatusOf(at));
        state = Read(d, error);
      } else if (!state->in_recovery && state->fenced && (ours ? done_epoch < p->epoch : self_fenced_here_.load())) {
        // Fenced by this agent, and the epoch is (again) this region's.
        d.last_try = now;
        auto s = postgres::Unfence(*d.conn, sync, kCallTimeout * 5);
        LogWarn({{"database", name}}, "database {}: this region is primary at epoch {}: fence lifted{}", name, p->epoch,
                s.ok() ? "" : " (failed: " + s.error().message() + ")");
        if (s.ok()) self_fenced_here_ = false;
        if (s.ok() && ours) {
          (void)state::keys::DatabaseRoleOf(here, name).Put(ctx_.store, {"primary", p->epoch, "", FormatUtc(ctx_.clock.Now())});
        }
        Record(d, "unfence", s);
        state = Read(d, error);
      }
    }
    if (state && !state->in_recovery && !state->fenced && d.plan->mode == plan::DbMode::kSync && !held_) KeepSync(d, *state, now);
    MeasureLag(d, state, p);

    std::lock_guard lock(mu_);
    d.state = std::move(state);
    d.error = d.state ? "" : error;
    up_g_->With({name}).Set(d.state ? 1 : 0);
    primary_g_->With({name}).Set(d.state && !d.state->in_recovery && !d.state->fenced ? 1 : 0);
    fenced_g_->With({name}).Set(d.state && !d.state->in_recovery && d.state->fenced ? 1 : 0);
    double nan = std::numeric_limits<double>::quiet_NaN();
    bool standby = d.state && d.state->in_recovery;
    lag_bytes_g_->With({name}).Set(standby && d.lag_bytes >= 0 ? static_cast<double>(d.lag_bytes) : standby ? nan : 0);
    lag_seconds_g_->With({name}).Set(standby && d.lag_seconds >= 0 ? d.lag_seconds : standby ? nan : 0);
    degraded_g_->With({name}).Set(d.degraded ? 1 : 0);
    d.standbys.clear();
    if (d.state && !d.state->in_recovery) {
      for (const auto& r : d.state->replicas) {
        OJson x = {{"name", r.application_name}, {"state", r.state}, {"sync_state", r.sync_state}};
        if (r.replay && d.state->flush_lsn) {
          x["lag_bytes"] = *d.state->flush_lsn > *r.replay ? *d.state->flush_lsn - *r.replay : 0;
        }
        if (r.replay_lag_seconds) x["lag_seconds"] = *r.replay_lag_seconds;
        d.standbys.push_back(x);
      }
    }
  }

  // A sync primary: commits wait for any one standby in another region;
  // with when_standby_down: degrade, they stop waiting while none streams.
  void KeepSync(Db& d, const postgres::ServerState& s, Steady now) {
    const std::string& name = d.plan->name;
    bool streaming = std::any_of(s.replicas.begin(), s.replicas.end(), [](const auto& r) { return r.state == "streaming"; });
    bool may_degrade = d.plan->when_standby_down == plan::StandbyDown::kDegrade;
    if (streaming) {
      d.alone_since = Steady{};
      if (d.degraded) {
        LogWarn({{"database", name}}, "database {}: a standby streams again: commits wait for it again", name);
        d.degraded = false;
      }
    } else if (may_degrade && !d.degraded) {
      if (d.alone_since == Steady{}) d.alone_since = now;
      if (now - d.alone_since >= kDegradeAfter) {
        LogError({{"database", name}}, "database {}: no standby has streamed for {}: commits go on asynchronously "
                                       "(when_standby_down: degrade) until one is back", name, FormatDuration(kDegradeAfter));
        d.degraded = true;
      }
    }
    std::string want = postgres::SyncStandbyNames(*d.plan, ctx_.region.name, d.degraded);
    if (s.synchronous_standby_names == want) return;
    auto st = postgres::Unfence(*d.conn, want, kCallTimeout * 5);
    Record(d, "sync", st);
    if (!st.ok()) LogWarn({{"database", name}}, "database {}: cannot set its sync standbys: {}", name, st.error().message());
  }

  // A standby's lag: the primary's flushed WAL minus what it replayed here,
  // measured whenever the primary's server answers; the last measure stays
  // (what a failover to this region would lose) when it does not.
  void MeasureLag(Db& d, const std::optional<postgres::ServerState>& state, const std::optional<state::PrimaryRecord>& p) {
    if (!state || !state->in_recovery || !p || p->region == ctx_.region.name || !d.plan->instances.count(p->region)) {
      std::lock_guard lock(mu_);
      if (state && !state->in_recovery) {
        d.lag_bytes = -1;
        d.lag_seconds = -1;
      }
      return;
    }
    if (d.primary_region != p->region) {
      d.primary_conn.reset();
      d.primary_region = p->region;
    }
    if (!d.primary_conn || !d.primary_conn->ok()) {
      d.primary_conn.reset();
      auto t = postgres::TargetOf(*d.plan, p->region);
      if (t.ok()) {
        auto c = postgres::Conn::Open(*t, kCallTimeout);
        if (c.ok()) d.primary_conn.emplace(std::move(*c));
      }
    }
    if (!d.primary_conn) return;
    auto ps = postgres::Inspect(*d.primary_conn, kCallTimeout);
    if (!ps.ok()) {
      d.primary_conn.reset();
      return;
    }
    if (ps->in_recovery) return;  // not (yet) the primary's server
    auto lag = postgres::LagOf(&*ps, *state, postgres::StandbyName(ctx_.region.name));
    std::lock_guard lock(mu_);
    if (lag.bytes) d.lag_bytes = static_cast<int64_t>(*lag.bytes);
    d.lag_seconds = lag.seconds.value_or(-1);
    d.lag_at = FormatUtc(ctx_.clock.Now());
  }

  ServiceContext& ctx_;
  std::vector<std::unique_ptr<Db>> dbs_;
  PrimaryView* primary_view_ = nullptr;
  mutable std::mutex mu_;  // guards what the ticks saw (Db's observed fields)
  struct Wake {
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false, poked = false;
    void Poke() {
      {
        std::lock_guard lock(mu);
        poked = true;
      }
      cv.notify_all();
    }
  };
  std::shared_ptr<Wake> wake_ = std::make_shared<Wake>();
  std::atomic<bool> held_{false};
  std::atomic<bool> self_fenced_here_{false};  // this agent fenced its primary for a self-fence
  std::thread worker_;
  metrics::Family<metrics::Gauge>* up_g_ = nullptr;
  metrics::Family<metrics::Gauge>* primary_g_ = nullptr;
  metrics::Family<metrics::Gauge>* fenced_g_ = nullptr;
  metrics::Family<metrics::Gauge>* lag_bytes_g_ = nullptr;
  metrics::Family<metrics::Gauge>* lag_seconds_g_ = nullptr;
  metrics::Family<metrics::Gauge>* degraded_g_ = nullptr;
  metrics::Family<metrics::Counter>* actions_c_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<Service>> MakeDatabaseService(ServiceContext& ctx) {
  std::vector<std::unique_ptr<Db>> dbs;
  for (const auto& db : ctx.plan.databases) {
    if (!db.instances.count(ctx.region.name)) continue;
    auto target = postgres::TargetOf(db, ctx.region.name);
    if (!target.ok()) return target.error().Wrap("database " + db.name);
    auto d = std::make_unique<Db>();
    d->plan = &db;
    d->target = std::move(*target);
    d->target.application_name = "lifeboat-agent";
    dbs.push_back(std::move(d));
  }
  if (dbs.empty()) return std::unique_ptr<Service>();
  return std::unique_ptr<Service>(std::make_unique<DatabaseService>(ctx, std::move(dbs)));
}

}  // namespace lifeboat::agent
