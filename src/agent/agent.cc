#include "agent/agent.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <filesystem>
#include <thread>

#include "agent/auth.h"
#include "agent/status_page.h"
#include "core/strings.h"
#include "core/version.h"
#include "metrics/process.h"
#include "state/keys.h"
#include "core/log.h"
#include "orchestrate/primary.h"
#include "state/open.h"
#include "state/sqlite_store.h"

namespace lifeboat::agent {

using Json = nlohmann::ordered_json;

std::string DefaultDataDir(const plan::Plan& plan, const std::string& region) {
  return "/var/lib/lifeboat/" + plan.name + "/" + region;
}

Result<std::unique_ptr<Agent>> Agent::Create(plan::Plan plan, AgentOptions options,
                                             std::vector<ServiceFactory> services) {
  if (auto r = plan.RequireRegion(options.region); !r.ok()) return r.error();
  if (options.data_dir.empty()) options.data_dir = DefaultDataDir(plan, options.region);
  if (auto s = EnsureWritableDir(options.data_dir); !s.ok()) {
    return Error(s.error().code(), "data dir: " + s.error().message() + "; choose another with --data-dir");
  }
  auto lock = FileLock::Acquire(options.data_dir + "/agent.lock");
  if (!lock.ok()) {
    return Error(lock.error().code(), "data dir " + options.data_dir + " is in use: " + lock.error().message() +
                                          "; each agent needs its own data dir");
  }
  std::unique_ptr<Agent> agent(new Agent(std::move(plan), std::move(options), std::move(*lock)));
  LB_RETURN_IF_ERROR(agent->Init());
  Agent& a = *agent;
  a.context_.reset(new ServiceContext{a.plan_, *a.region_, a.io_, *a.store_, a.metrics_, Clock::Real(), a.router_,
                                      a.caps_, a.token_, a.options_.dns_listen,
                                      a.options_.connect_to, !a.options_.proxy_only, a.options_.data_dir});
  a.caps_.Provide<PrimaryView>(&a);
  for (auto& make : services) {
    LB_ASSIGN_OR_RETURN(auto s, make(*a.context_));
    if (s) a.services_.push_back(std::move(s));
  }
  return agent;
}

Agent::Agent(plan::Plan plan, AgentOptions options, FileLock lock)
    : plan_(std::move(plan)), options_(std::move(options)), lock_(std::move(lock)) {
  region_ = plan_.FindRegion(options_.region);
}

Agent::~Agent() {
  for (auto it = services_.rbegin(); it != services_.rend(); ++it) (*it)->Stop();
  if (server_) server_->Stop();
  std::vector<std::unique_ptr<state::WatchHandle>> watches;
  {
    std::lock_guard lock(shared_mu_);
    watches.swap(shared_watches_);
  }
  watches.clear();  // waits for a callback in progress, which takes shared_mu_
}

Status Agent::FollowShared() {
  LB_ASSIGN_OR_RETURN(auto range, store_->List("failover/"));
  Shared next;
  next.revision = range.revision;
  for (const auto& kv : range.kvs) {
    if (kv.key == state::keys::Primary().name()) {
      state::PrimaryRecord p;
      if (state::Decode(kv.value, p)) next.primary = p;
    } else if (kv.key == state::keys::CurrentFailover().name()) {
      state::FailoverRun r;
      if (state::Decode(kv.value, r)) next.run = r;
    }
  }
  auto watch = store_->Watch("", range.revision + 1, [this](const state::Event& e) { OnShared(e); });
  bool primary_changed = false;
  {
    std::lock_guard lock(shared_mu_);
    auto epoch = [](const std::optional<state::PrimaryRecord>& p) { return p ? p->epoch : 0; };
    primary_changed = epoch(shared_.primary) != epoch(next.primary);
    shared_ = std::move(next);
    shared_watches_.push_back(std::move(watch));
  }
  if (primary_changed) {
    for (auto& fn : on_primary_) fn();
  }
  return Ok();
}

void Agent::OnShared(const state::Event& e) {
  if (e.type == state::Event::Type::kCompacted) {
    // Changes were missed: read again and watch from there.
    if (auto st = FollowShared(); !st.ok()) {
      std::lock_guard lock(shared_mu_);
      shared_.error = st.error().message();
    }
    return;
  }
  bool primary_changed = false;
  {
    std::lock_guard lock(shared_mu_);
    shared_.revision = std::max(shared_.revision, e.kv.mod_revision);
    shared_.error.clear();
    if (e.type != state::Event::Type::kPut) return;
    if (e.kv.key == state::keys::Primary().name()) {
      state::PrimaryRecord p;
      if (state::Decode(e.kv.value, p)) {
        shared_.primary = p;
        primary_changed = true;
      }
    } else if (e.kv.key == state::keys::CurrentFailover().name()) {
      state::FailoverRun r;
      if (state::Decode(e.kv.value, r)) shared_.run = r;
    }
  }
  if (primary_changed) {
    for (auto& fn : on_primary_) fn();
  }
}

std::optional<state::PrimaryRecord> Agent::Primary() const {
  std::lock_guard lock(shared_mu_);
  return shared_.primary;
}

void Agent::OnChange(std::function<void()> fn) { on_primary_.push_back(std::move(fn)); }

// An agent of an earlier version kept its state in DATA_DIR/state.db, its
// own: its keys move into the shared store once, under this region, and the
// old file is renamed so that it is never read again.
Status Agent::MigrateOwnStore() {
  std::string old = options_.data_dir + "/state.db";
  std::error_code ec;
  if (!std::filesystem::exists(old, ec)) return Ok();
  // The plan may name that very file as the shared store: nothing to move.
  if (plan_.state.store == plan::StoreKind::kEmbedded &&
      std::filesystem::weakly_canonical(old, ec) ==
          std::filesystem::weakly_canonical(state::EmbeddedStorePath(plan_, options_.data_dir), ec)) {
    return Ok();
  }
  {
    LB_ASSIGN_OR_RETURN(auto from, state::SqliteStore::Open(old));
    auto n = state::MigrateUnsharedKeys(*from, *store_, options_.region);
    if (!n.ok()) return n.error().Wrap("move the keys of " + old + " into " + store_->Describe());
    std::string to = store_->Describe();
    LogInfo({{"from", old}, {"to", to}}, "moved {} key(s) of the agent's own state into the shared store", *n);
  }
  std::filesystem::rename(old, old + ".migrated", ec);
  if (ec) return ErrnoError(ec.value(), "rename " + old + " after moving its keys");
  for (const char* side : {"-wal", "-shm"}) std::filesystem::remove(old + side, ec);
  return Ok();
}

Status Agent::Init() {
  started_at_ = Clock::Real().Now();
  started_steady_ = std::chrono::steady_clock::now();
  LB_ASSIGN_OR_RETURN(token_, LoadToken(plan_));
  LB_ASSIGN_OR_RETURN(store_, state::OpenPlanStore(plan_, options_.data_dir));
  LB_RETURN_IF_ERROR(MigrateOwnStore());
  const std::string& region = options_.region;
  // The first agent of the plan writes the plan's primary at epoch 1; from
  // then on the store, not the plan, says who is primary.
  LB_ASSIGN_OR_RETURN(auto primary, orchestrate::CurrentPrimary(*store_, plan_));
  if (primary.record.region != plan_.Primary()->name) {
    LogWarn({{"primary", primary.record.region}}, "the primary is {} at epoch {} (the plan says {}: a failover moved it)",
            primary.record.region, primary.record.epoch, plan_.Primary()->name);
  }

  // How often this region's agent has started: survives restarts, so an
  // operator can tell a crash loop from a long run. A standalone proxy is
  // not the region's agent and counts nothing.
  if (!options_.proxy_only) {
    LB_ASSIGN_OR_RETURN(auto starts, state::keys::AgentStarts(region).Get(*store_));
    starts_ = starts.value_or(0) + 1;
    LB_RETURN_IF_ERROR(state::keys::AgentStarts(region).Put(*store_, starts_));
    auto first_key = state::keys::AgentFirstStartedAt(region);
    LB_ASSIGN_OR_RETURN(auto first, first_key.Get(*store_));
    if (first) {
      first_started_at_ = *first;
    } else {
      first_started_at_ = FormatUtc(started_at_);
      LB_RETURN_IF_ERROR(first_key.Put(*store_, first_started_at_, state::Expect::Absent()));
    }
  } else {
    starts_ = 1;
    first_started_at_ = FormatUtc(started_at_);
  }

  metrics::AddProcessMetrics(metrics_);
  metrics_.AddGauge("lifeboat_build_info", "Version and commit of the running lifeboat; always 1.",
                    {"version", "commit"})
      .With({kVersion, kCommit})
      .Set(1);
  metrics_.AddGauge("lifeboat_agent_info", "The plan and region this agent runs; always 1.", {"plan", "region", "role"})
      .With({plan_.name, region_->name, options_.proxy_only ? "proxy" : plan::Name(region_->role)})
      .Set(1);
  metrics_.AddGauge("lifeboat_agent_start_time_seconds", "Unix time the agent started.")
      .Get()
      .Set(std::chrono::duration<double>(started_at_.time_since_epoch()).count());
  metrics_.AddGauge("lifeboat_agent_starts", "Times an agent has started on this data dir.").Get().Set(static_cast<double>(starts_));
  // The plan's objectives, for alert rules to compare lag and outages with
  // (deploy/prometheus/lifeboat.rules.yml); absent when the plan sets none.
  if (plan_.objectives.rpo) {
    metrics_.AddGauge("lifeboat_objective_rpo_seconds", "The plan's recovery point objective.")
        .Get()
        .Set(std::chrono::duration<double>(*plan_.objectives.rpo).count());
  }
  if (plan_.objectives.rto) {
    metrics_.AddGauge("lifeboat_objective_rto_seconds", "The plan's recovery time objective.")
        .Get()
        .Set(std::chrono::duration<double>(*plan_.objectives.rto).count());
  }
  metrics_.AddGaugeCallback("lifeboat_agent_uptime_seconds", "Seconds since the agent started.", {}, [this] {
    double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_steady_).count();
    return std::vector<std::pair<metrics::Labels, double>>{{{}, up}};
  });
  LB_RETURN_IF_ERROR(FollowShared());
  metrics_.AddGaugeCallback("lifeboat_state_revision", "Revision of the last change in the state store.", {}, [this] {
    std::lock_guard lock(shared_mu_);
    return std::vector<std::pair<metrics::Labels, double>>{{{}, static_cast<double>(shared_.revision)}};
  });
  requests_ = &metrics_.AddCounter("lifeboat_admin_requests_total", "Admin API requests by path and status code.",
                                   {"path", "code"});
  return Ok();
}

// Who is primary at which epoch, and the current or last failover run, as
// the watch last saw them (FollowShared).
nlohmann::ordered_json Agent::FailoverJson() {
  Shared shared;
  {
    std::lock_guard lock(shared_mu_);
    shared = shared_;
  }
  Json f;
  // Until a failover writes one, the first agent's record says the plan's primary.
  state::PrimaryRecord primary = shared.primary.value_or(state::PrimaryRecord{plan_.Primary()->name, 1, "", "plan"});
  f["primary"] = primary.region;
  f["epoch"] = primary.epoch;
  f["since"] = !primary.since.empty() ? Json(primary.since) : Json();
  f["by"] = primary.by;
  if (!shared.error.empty()) f["error"] = shared.error;
  if (shared.run) {
    const state::FailoverRun& r = *shared.run;
    Json steps = Json::array();
    for (const auto& st : r.steps) {
      steps.push_back({{"name", st.name}, {"state", st.state}, {"attempts", st.attempts},
                       {"started_at", st.started_at.empty() ? Json() : Json(st.started_at)},
                       {"ended_at", st.ended_at.empty() ? Json() : Json(st.ended_at)}, {"output", st.output}});
    }
    f["run"] = {{"id", r.id},       {"from", r.from},   {"to", r.to},       {"epoch", r.epoch},
                {"planned", r.planned}, {"state", r.state}, {"owner", r.owner}, {"started_at", r.started_at},
                {"ended_at", r.ended_at.empty() ? Json() : Json(r.ended_at)}, {"steps", steps}};
  } else {
    f["run"] = Json();
  }
  return f;
}

nlohmann::ordered_json Agent::StatusJson() {
  Json j;
  j["plan"] = plan_.name;
  j["region"] = region_->name;
  j["role"] = plan::Name(region_->role);
  j["agent"] = region_->agent.ToString();
  j["version"] = kVersion;
  j["commit"] = kCommit;
  j["pid"] = ::getpid();
  j["started_at"] = FormatUtc(started_at_);
  j["uptime_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_steady_).count();
  j["starts"] = starts_;
  j["first_started_at"] = first_started_at_;
  j["data_dir"] = options_.data_dir;
  {
    std::lock_guard lock(shared_mu_);
    j["state"] = {{"store", store_->Describe()}, {"revision", shared_.revision}};
  }
  j["failover"] = FailoverJson();
  Json regions = Json::array();
  for (const auto& r : plan_.regions) {
    regions.push_back({{"name", r.name}, {"role", plan::Name(r.role)}, {"agent", r.agent.ToString()}});
  }
  j["regions"] = regions;
  Json services = Json::object();
  for (auto& s : services_) services[std::string(s->name())] = s->StatusJson();
  j["services"] = services;
  return j;
}

net::HttpResponse Agent::Handle(const net::HttpRequest& req) {
  net::HttpResponse res;
  std::string label = req.path;
  auto error = [](int status, const std::string& msg) {
    return net::HttpResponse::Json(status, Json{{"error", msg}}.dump() + "\n");
  };
  bool get = req.method == "GET" || req.method == "HEAD";
  if (req.path == "/healthz") {
    res = get ? net::HttpResponse::Text(200, "ok\n") : error(405, "use GET");
  } else if (req.path == "/v1/status") {
    if (get) {
      res = net::HttpResponse::Json(200, StatusJson().dump(2) + "\n");
    } else {
      res = error(405, "use GET");
    }
  } else if (req.path == "/status" || req.path == "/") {
    if (get) {
      res.content_type = "text/html; charset=utf-8";
      res.body = RenderStatusPage(StatusJson(), Clock::Real().Now());
      // The page has no script and loads nothing: say so to the browser.
      res.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    } else {
      res = error(405, "use GET");
    }
  } else if (req.path == "/metrics") {
    if (get) {
      res = net::HttpResponse::Text(200, metrics_.Render());
      res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
      res = error(405, "use GET");
    }
  } else {
    label = "other";
    res = error(404, "no such endpoint: " + req.path + " (try /status, /healthz, /v1/status, /metrics)");
    if (const auto* route = router_.Find(req.path)) {
      label = route->first;
      res = route->second(req);
    }
  }
  if (res.status == 405) res.headers.emplace_back("Allow", "GET, HEAD");
  requests_->With({label, std::to_string(res.status)}).Inc();
  return res;
}

std::unique_ptr<boost::asio::signal_set> StopOnSignals(boost::asio::io_context& io, std::function<void()> stop) {
  std::signal(SIGPIPE, SIG_IGN);
  auto signals = std::make_unique<boost::asio::signal_set>(io, SIGINT, SIGTERM);
  signals->async_wait([stop = std::move(stop)](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop();
  });
  return signals;
}

Status Agent::Run() {
  // A process that owns its signals (the agent and the proxy run alone)
  // never dies of a peer that closed a socket or a pipe first: every write
  // reports EPIPE instead, and the service that made it decides.
  if (options_.handle_signals) std::signal(SIGPIPE, SIG_IGN);
  server_ = std::make_unique<net::HttpServer>(io_, [this](const net::HttpRequest& r) { return Handle(r); });
  LB_RETURN_IF_ERROR(server_->Listen(options_.admin_listen.value_or(region_->agent)));
  for (auto& service : services_) {
    if (auto s = service->Start(); !s.ok()) return s.error().Wrap(std::string(service->name()));
  }
  auto signals = options_.handle_signals ? StopOnSignals(io_, [this] { Stop(); }) : nullptr;
  Address admin = options_.admin_listen.value_or(region_->agent);
  admin.port = server_->port();
  spdlog::info("{} for region {} ({}) of plan {} serving on {}; data dir {}; start #{}",
               options_.proxy_only ? "proxy" : "agent", region_->name, plan::Name(region_->role), plan_.name,
               admin.ToString(), options_.data_dir, starts_);
  auto work = boost::asio::make_work_guard(io_);
  std::vector<std::thread> extra;
  for (int i = 1; i < options_.threads; ++i) extra.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : extra) t.join();
  spdlog::info("agent for region {} stopped", region_->name);
  return Ok();
}

void Agent::Stop() {
  if (server_) server_->Stop();
  io_.stop();
}  // the services stop with the agent's destruction, in reverse order

}  // namespace lifeboat::agent
