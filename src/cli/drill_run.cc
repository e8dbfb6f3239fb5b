#include "cli/drill_run.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "cli/agent_api.h"
#include "cli/common.h"
#include "cli/local_processes.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "core/strings.h"
#include "drill/client.h"
#include "drill/fault_proxy.h"
#include "drill/history.h"
#include "drill/report.h"
#include "drill/timeline.h"
#include "net/http.h"
#include "postgres/instance.h"
#include "postgres/local.h"
#include "repo/crypto.h"
#include "state/open.h"
#include "state/sqlite_store.h"

namespace lifeboat::cli {

const char* const kScenarioNames =
    "region-outage, endpoint-failure, planned-switchover, replication-partition, slow-link, agent-crash-mid-failover";

Result<Scenario> ParseScenario(const std::string& name) {
  for (Scenario s : {Scenario::kRegionOutage, Scenario::kEndpointFailure, Scenario::kPlannedSwitchover,
                     Scenario::kReplicationPartition, Scenario::kSlowLink, Scenario::kAgentCrashMidFailover}) {
    if (name == Name(s)) return s;
  }
  return InvalidArgument("unknown scenario '" + name + "'; the scenarios are: " + kScenarioNames);
}

const char* Name(Scenario s) {
  switch (s) {
    case Scenario::kRegionOutage: return "region-outage";
    case Scenario::kEndpointFailure: return "endpoint-failure";
    case Scenario::kPlannedSwitchover: return "planned-switchover";
    case Scenario::kReplicationPartition: return "replication-partition";
    case Scenario::kSlowLink: return "slow-link";
    case Scenario::kAgentCrashMidFailover: return "agent-crash-mid-failover";
  }
  return "?";
}

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;

// What the drill runs and writes to, chosen from the plan.
struct Setup {
  const plan::Record* record = nullptr;
  const plan::Volume* volume = nullptr;      // where the records are: a volume,
  const plan::Database* database = nullptr;  // or a database
  const plan::Region* primary = nullptr;
  const plan::Region* standby = nullptr;       // the region of the record's secondary endpoint
  std::vector<const plan::Endpoint*> endpoints;  // the record's, primary first
};

Result<Setup> Choose(const plan::Plan& plan, const DrillConfig& o) {
  auto invalid = [](std::string m) { return Error(Code::kInvalidArgument, std::move(m)); };
  if (plan.state.store != plan::StoreKind::kEmbedded || !plan.state.path.empty()) {
    return invalid(
        "a drill runs the plan's regions afresh on this machine and moves its primary; it needs the embedded "
        "store at its default place (no state.path, no etcd), so that it can never touch a shared store");
  }
  if (o.scenario != Scenario::kPlannedSwitchover && plan.failover.mode != plan::FailoverMode::kAutomatic) {
    return invalid(std::string(Name(o.scenario)) +
                   " waits for the agents to fail over on their own: set failover.mode: automatic");
  }
  if (o.scenario == Scenario::kReplicationPartition && !plan.objectives.rpo) {
    return invalid("replication-partition checks that the lag goes over objectives.rpo (the lag alert's threshold): "
                   "set objectives.rpo");
  }
  Setup s;
  s.primary = plan.Primary();
  if (!plan.dns) return invalid("the drill's client writes through a DNS name: the plan has no dns section");
  auto named = [&](const std::string& n) {
    return n == o.record || n == o.record + "." || n == o.record + "." + plan.dns->zone;
  };
  for (const auto& r : plan.dns->records) {
    if (r.policy != plan::RecordPolicy::kFailover || r.type != "A") continue;
    if (!o.record.empty()) {
      if (!named(r.name)) continue;
    } else if (s.record != nullptr) {
      return invalid("the plan has several failover A records: name one with --record");
    }
    s.record = &r;
  }
  if (s.record == nullptr) {
    return invalid(o.record.empty() ? "the plan has no failover A record for the drill's client to write through"
                                    : "--record: the plan has no failover A record '" + o.record + "'");
  }
  for (const auto& name : {s.record->primary, s.record->secondary}) {
    if (const plan::Endpoint* e = plan.FindEndpoint(name)) s.endpoints.push_back(e);
  }
  if (!o.database.empty() && !o.volume.empty()) {
    return invalid("--volume and --database both say where the sample application keeps its records: give one");
  }
  if (!o.database.empty()) {
    s.database = plan.FindDatabase(o.database);
    if (s.database == nullptr) return invalid("--database: the plan has no database '" + o.database + "'");
  } else if (o.volume.empty() && plan.databases.size() == 1) {
    s.database = &plan.databases[0];
  } else if (o.volume.empty() && plan.databases.size() > 1) {
    return invalid("the plan has several databases: name the one the sample application keeps its records in with "
                   "--database (or a volume with --volume)");
  }
  if (s.database != nullptr) {
    if (o.scenario == Scenario::kReplicationPartition || o.scenario == Scenario::kSlowLink) {
      return invalid(std::string(Name(o.scenario)) + " cuts or slows a volume's replication link through the drill's "
                     "proxy; database " + s.database->name + " streams over PostgreSQL's own connection, which the "
                     "drill does not proxy. Drill it with region-outage, endpoint-failure, planned-switchover or "
                     "agent-crash-mid-failover");
    }
    for (const auto& name : {s.record->primary, s.record->secondary}) {
      const plan::Endpoint* e = plan.FindEndpoint(name);
      if (e == nullptr) continue;
      if (!s.database->instances.count(e->region)) {
        return invalid("database " + s.database->name + " has no server in " + e->region + ", where endpoint " +
                       e->name + " runs the sample application");
      }
      if (!s.database->data_dir.count(e->region)) {
        return invalid("database " + s.database->name + " has no data_dir for " + e->region +
                       ": the drill stops and starts the region's server, and rewinds it to fail back");
      }
    }
  }
  for (const auto& v : plan.volumes) {
    if (s.database != nullptr) break;
    if (!o.volume.empty()) {
      if (v.name != o.volume) continue;
    } else if (v.replication.mode != plan::ReplicationMode::kContinuous) {
      continue;
    } else if (s.volume != nullptr) {
      return invalid("the plan replicates several volumes: name the one the sample application keeps its records in "
                     "with --volume");
    }
    s.volume = &v;
  }
  if (s.volume == nullptr && s.database == nullptr) {
    return invalid(o.volume.empty() ? "the plan replicates no volume and has no database for the sample "
                                      "application's records"
                                    : "--volume: the plan has no volume '" + o.volume + "'");
  }
  for (const auto* e : s.endpoints) {
    if (s.volume != nullptr && !s.volume->path.count(e->region)) {
      return invalid("volume " + s.volume->name + " has no path in " + e->region + ", where endpoint " + e->name +
                     " runs the sample application");
    }
  }
  if (s.endpoints.empty() || s.endpoints[0]->region != s.primary->name) {
    return invalid("the record " + s.record->name + "'s primary endpoint is not in the primary region " +
                   s.primary->name);
  }
  if (s.endpoints.size() < 2 || s.endpoints[1]->region == s.primary->name) {
    return invalid("the record " + s.record->name + " needs a secondary endpoint in another region to fail over to");
  }
  s.standby = plan.FindRegion(s.endpoints[1]->region);
  return s;
}

// A port on 127.0.0.1 free for both UDP and TCP at this moment and not in
// `taken` (ports already handed out, or named by the plan but not yet bound:
// the kernel may offer a just-closed port again).
Result<uint16_t> FreePort(const std::set<uint16_t>& taken) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int t = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (t < 0 || ::bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(t, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (t >= 0) ::close(t);
      return ErrnoError(errno, "find a free port on 127.0.0.1");
    }
    int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    bool ok = u >= 0 && ::bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (u >= 0) ::close(u);
    ::close(t);
    if (ok && !taken.contains(ntohs(a.sin_port))) return ntohs(a.sin_port);
  }
  return Error(Code::kResourceExhausted, "no port on 127.0.0.1 is free for both UDP and TCP");
}

double SecondsOf(Duration d) { return std::chrono::duration<double>(d).count(); }

// A fresh admin token for the drill's own agents (they take it from the
// environment, which overrides the plan's token_file).
std::string NewToken() {
  std::array<uint8_t, 16> bytes;
  repo::RandomBytes(bytes);
  return "drill-" + repo::HexOf(bytes);
}

// One move of the primary and what the client lived through it.
struct Phase {
  std::string name;        // "failover", "failback"
  std::string what;        // what the drill did
  std::string from, to;    // regions
  std::string to_app;      // the application the client must reach after it
  Clock::TimePoint at;     // the fault, or the request
  uint64_t epoch_before = 0;
  bool planned = false;
  Json failover, run;      // the failover status after the phase
  drill::Recovery recovery;
  drill::Loss loss;
  drill::Overlap overlap;  // the old primary acknowledging after the new one did
};

class Drill {
 public:
  Drill(const plan::Plan& plan, Setup setup, DrillConfig o, std::string data_dir, std::string plan_path)
      : plan_(plan), s_(setup), o_(std::move(o)), dir_(std::move(data_dir)), plan_path_(std::move(plan_path)) {}

  int Run() {
    sigs_ = BlockStopSignals();
    token_ = NewToken();
    ::setenv("LIFEBOAT_TOKEN", token_.c_str(), 1);
    // The driver waits 2 s at the start of the chosen step's first attempt
    // (agent/services/failover): the kill lands inside that step.
    if (o_.scenario == Scenario::kAgentCrashMidFailover) {
      ::setenv("LIFEBOAT_DRILL_HOLD_STEP", o_.crash_at.c_str(), 1);
    } else {
      ::unsetenv("LIFEBOAT_DRILL_HOLD_STEP");
    }
    int rc = RunInner();
    StopSampling();
    timeline_.reset();
    if (o_.stay && rc != ExitCode(Code::kCancelled)) Stay();
    if (!children_.empty()) {
      Say("Stopping every process the drill started");
      StopAll(children_);
    }
    proxy_.reset();
    return rc;
  }

 private:
  // Keeps everything running until Ctrl-C, for a look around.
  void Stay() {
    Say("\nEverything runs on until Ctrl-C. Have a look:\n  the status page: http://" +
        plan_.regions[0].agent.ToString() + "/status\n  " + SelfExe() + " status --plan " + plan_path_ +
        "\n  curl -s http://" + plan_.regions[0].agent.ToString() + "/metrics | grep lifeboat_failover");
    for (;;) {
      if (StopRequested(sigs_)) break;
      if (auto st = CheckChildren(); !st.ok()) {
        Fail(st.error());
        break;
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  void Say(const std::string& line) {
    if (!Structured(o_.output)) std::cout << line << "\n" << std::flush;
  }

  Status StartChild(const std::string& name, std::vector<std::string> args, const std::string& log) {
    auto pid = Spawn(args, log);
    if (!pid.ok()) return pid.error();
    children_.push_back({name, log, *pid});
    args_[name] = std::move(args);
    NoteAgent(name, *pid);
    return Ok();
  }

  // Starts again a child the drill killed, with the same arguments and log.
  Status Restart(const std::string& name) {
    auto it = args_.find(name);
    if (it == args_.end()) return Internal("no child named " + name);
    std::string log;
    for (const auto& c : children_) {
      if (c.name == name) log = c.log;
    }
    auto pid = Spawn(it->second, log);
    if (!pid.ok()) return pid.error();
    children_.push_back({name, log, *pid});
    NoteAgent(name, *pid);
    return Ok();
  }

  // Keeps each region's agent pid, for a kill from the store's thread.
  void NoteAgent(const std::string& name, pid_t pid) {
    const std::string suffix = " agent";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return;
    std::lock_guard lock(kill_mu_);
    agent_pids_[name.substr(0, name.size() - suffix.size())] = pid;
  }

  // Kills at once the running children of `region` (only its applications
  // when `apps_only`); returns their names.
  std::vector<std::string> Kill(const std::string& region, bool apps_only) {
    std::vector<std::string> names;
    for (auto& c : children_) {
      if (c.exited || c.name.rfind(region + " ", 0) != 0) continue;
      if (apps_only && c.name.find(" app ") == std::string::npos) continue;
      {
        std::lock_guard lock(kill_mu_);
        killed_.insert(c.pid);
      }
      KillNow(c);
      names.push_back(c.name);
    }
    if (!apps_only) dark_.insert(region);
    if (!apps_only && s_.database) {
      // The region's database server goes with it, as in a crash.
      if (auto st = postgres::StopServer(*s_.database, region, 30s, true); st.ok()) {
        names.push_back(region + " database server");
      } else {
        Say("  could not stop " + region + "'s server of database " + s_.database->name + ": " + st.error().message());
      }
    }
    return names;
  }

  // Fails when a child the drill did not kill has died: a drill that lost
  // a process by accident measures nothing.
  Status CheckChildren() {
    if (Child* died = Reap(children_)) {
      std::lock_guard lock(kill_mu_);
      if (!killed_.count(died->pid)) {
        return Error(Code::kUnavailable, died->name + " exited (" + DescribeExit(died->status) + "); the end of " +
                                             died->log + ":\n" + Tail(died->log, 5));
      }
    }
    return Ok();
  }

  bool LinkFault() const {
    return o_.scenario == Scenario::kReplicationPartition || o_.scenario == Scenario::kSlowLink;
  }

  Status StartAll() {
    const std::string exe = SelfExe();
    std::vector<std::string> connect_to;
    if (LinkFault()) {
      // The primary replicates to the standby through the drill's proxy.
      Address target{s_.standby->agent.host, s_.volume->replication.port};
      LB_ASSIGN_OR_RETURN(proxy_, drill::FaultProxy::Start(target));
      connect_to = {"--connect-to", target.ToString() + "=" + proxy_->address().ToString()};
      if (o_.scenario == Scenario::kSlowLink) proxy_->Shape(o_.link_delay, o_.link_rate);
      Say("  the replication link " + s_.primary->name + " -> " + s_.standby->name + " runs through a proxy on " +
          proxy_->address().ToString() +
          (o_.scenario == Scenario::kSlowLink
               ? " that delays it by " + FormatDuration(o_.link_delay) + " each way and throttles it to " +
                     FormatSize(Size{o_.link_rate}) + "/s"
               : ""));
    }
    std::set<uint16_t> taken;
    for (const auto& r : plan_.regions) taken.insert(r.agent.port);
    for (const auto& r : plan_.regions) {
      std::string dir = dir_ + "/" + r.name;
      if (auto st = EnsureWritableDir(dir); !st.ok()) return st;
      auto port = FreePort(taken);
      if (!port.ok()) return port.error();
      taken.insert(*port);
      Address dns{"127.0.0.1", *port};
      dns_[r.name] = dns;
      if (auto st = StartChild(r.name + " agent",
                               AgentArgs(exe, r, dir, dns, r.name == s_.primary->name ? connect_to
                                                                                      : std::vector<std::string>{}),
                               dir + "/agent.log");
          !st.ok()) {
        return st;
      }
      std::string apps;
      for (const auto* e : s_.endpoints) {
        if (e->region != r.name) continue;
        std::vector<std::string> where = {"--dir", s_.volume ? s_.volume->path.at(r.name) : ""};
        if (s_.database) where = {"--database", s_.database->name, "--plan", plan_path_};
        std::vector<std::string> app = {exe, "--log-format", "json", "app", "serve"};
        app.insert(app.end(), where.begin(), where.end());
        app.insert(app.end(), {"--listen", e->address.ToString(), "--region", r.name});
        if (auto st = StartChild(r.name + " app " + e->name, app, dir + "/app-" + e->name + ".log");
            !st.ok()) {
          return st;
        }
        apps += ", the sample application on " + e->address.ToString();
      }
      Say("  started " + r.name + " (" + plan::Name(r.role) + "): agent on " + r.agent.ToString() + ", DNS on " +
          dns.ToString() + apps);
    }
    return Ok();
  }

  std::vector<std::string> AgentArgs(const std::string& exe, const plan::Region& r, const std::string& dir,
                                     const Address& dns, const std::vector<std::string>& extra) const {
    std::vector<std::string> args = {exe,     "--log-format", "json", "agent",        "--plan",
                                     plan_path_, "--region",  r.name, "--data-dir",   dir,
                                     "--dns-listen", dns.ToString()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Samples how far behind each stream of the volume is, from every agent
  // that answers (a source reports its streams), or each standby of the
  // database (its agent reports its lag), every 250 ms until Stop.
  void StartSampling() {
    sampler_ = std::thread([this] {
      while (!stop_sampling_) {
        auto now = Clock::Real().Now();
        for (const auto& r : plan_.regions) {
          if (s_.database) {
            if (r.name != s_.primary->name && r.name != s_.standby->name) continue;
            auto st = GetAgentJson(r, "/v1/status", 300ms);
            if (!st.ok()) continue;
            Json db = json::Obj(json::Obj(json::Obj(*st, "services"), "databases"), s_.database->name.c_str());
            auto lag = json::Num(db, "lag_seconds");
            if (json::Str(db, "role") != "standby" || !lag || *lag < 0) continue;
            std::lock_guard lock(lag_mu_);
            const std::string& from = r.name == s_.primary->name ? s_.standby->name : s_.primary->name;
            lag_.push_back({now, from, r.name, *lag, "streaming"});
            continue;
          }
          auto v = GetAgentJson(r, "/v1/replication/" + s_.volume->name, 300ms);
          if (!v.ok()) continue;
          for (const auto& t : v->value("targets", AgentJson::array())) {
            if (!t.is_object() || !t.contains("rpo_seconds") || !t["rpo_seconds"].is_number()) continue;
            std::lock_guard lock(lag_mu_);
            lag_.push_back({now, r.name, t.value("target", ""), t["rpo_seconds"].get<double>(),
                            t.value("state", "")});
          }
        }
        for (int i = 0; i < 5 && !stop_sampling_; ++i) std::this_thread::sleep_for(50ms);
      }
    });
  }
  void StopSampling() {
    stop_sampling_ = true;
    if (sampler_.joinable()) sampler_.join();
  }

  // Follows the agents' store (read only): the views, votes, epochs and the
  // run's steps for the report, and the run for a crash mid-failover.
  Status FollowStore() {
    auto store = state::SqliteStore::Open(state::EmbeddedStorePath(plan_, dir_ + "/" + plan_.regions[0].name));
    if (!store.ok()) return store.error();
    store_ = std::move(*store);
    auto timeline = drill::StoreTimeline::Start(*store_, [this](const state::FailoverRun& r) { OnRun(r); });
    if (!timeline.ok()) return timeline.error();
    timeline_ = std::move(*timeline);
    return Ok();
  }

  // On the store's thread, for every version of the failover run: kills
  // the driver of the run to crash once it is at the chosen step or later.
  void OnRun(const state::FailoverRun& run) {
    if (o_.scenario != Scenario::kAgentCrashMidFailover || run.state != "running") return;
    std::lock_guard lock(kill_mu_);
    if (crash_ || crash_epoch_ == 0 || run.epoch != crash_epoch_) return;
    size_t chosen = run.steps.size(), running = run.steps.size();
    for (size_t i = 0; i < run.steps.size(); ++i) {
      if (run.steps[i].name == o_.crash_at) chosen = i;
      if (run.steps[i].state == "running") running = i;
    }
    if (chosen == run.steps.size() || running == run.steps.size() || running < chosen) return;
    std::string region = run.owner.substr(0, run.owner.find('@'));
    auto it = agent_pids_.find(region);
    if (it == agent_pids_.end()) return;
    ::kill(it->second, SIGKILL);
    killed_.insert(it->second);
    crash_ = Crash{Clock::Real().Now(), run.owner, region, run.steps[running].name, it->second, std::nullopt};
  }

  // Waits for `ready` up to `limit`, taking Ctrl-C and dead children.
  Status WaitFor(const std::string& what, Duration limit, const std::function<bool()>& ready) {
    auto deadline = SteadyClock::now() + limit;
    while (!ready()) {
      if (StopRequested(sigs_)) return Error(Code::kCancelled, "interrupted while waiting for " + what);
      if (auto st = CheckChildren(); !st.ok()) return st;
      if (SteadyClock::now() > deadline) {
        return Error(Code::kDeadlineExceeded, what + " did not happen within " + FormatDuration(limit) +
                                                  "; the logs are under " + dir_);
      }
      std::this_thread::sleep_for(50ms);
    }
    return Ok();
  }

  static bool Healthy(const Address& a) {
    auto r = net::Fetch("GET", net::BaseUrl(a) + "/healthz", 500ms);
    return r.ok() && r->status == 200;
  }

  // Waits until the agents and applications of `regions` answer.
  Status WaitHealthy(const std::set<std::string>& regions) {
    std::vector<std::string> names(regions.begin(), regions.end());
    return WaitFor("the agents and applications of " + Join(names, ", ") + " to answer",
                   20s, [&] {
                     for (const auto& r : plan_.regions) {
                       if (regions.count(r.name) && !Healthy(r.agent)) return false;
                     }
                     for (const auto* e : s_.endpoints) {
                       if (regions.count(e->region) && !Healthy(e->address)) return false;
                     }
                     return true;
                   });
  }

  // The address of the sample application in `region` (the record's endpoint there).
  std::string AppOf(const std::string& region) const {
    for (const auto* e : s_.endpoints) {
      if (e->region == region) return e->address.ToString();
    }
    return "";
  }

  std::optional<Address> EndpointOf(const std::string& ip) const {
    for (const auto* e : s_.endpoints) {
      if (e->address.host == ip) return e->address;
    }
    return std::nullopt;
  }

  // Waits until `source`'s agent streams the volume to `target` (a full
  // pass done): a drill of a plan whose replication does not run would
  // only measure that. The error says what the source's agent reports.
  Status WaitReplicating(const plan::Region& source, const std::string& target, Duration limit) {
    if (s_.database) return WaitStreaming(source.name, target, limit);
    std::string why = "no answer from " + source.name + "'s agent";
    auto st = WaitFor("replication of " + s_.volume->name + " from " + source.name + " to " + target, limit, [&] {
      auto volume = GetAgentJson(source, "/v1/replication/" + s_.volume->name, 1s);
      if (!volume.ok()) return false;
      Json stream = TargetIn(*volume, target);
      if (StreamCaughtUp(stream)) return true;
      why = stream.is_object() ? "its stream to " + target + " is " + json::Str(stream, "state") +
                                     (json::Str(stream, "last_error").empty() ? "" : ": " + json::Str(stream, "last_error"))
            : !json::Str(*volume, "problem").empty() ? json::Str(*volume, "problem")
                                                     : source.name + "'s agent reports no stream to " + target;
      return false;
    });
    if (!st.ok() && st.error().code() == Code::kDeadlineExceeded) {
      return Error(Code::kFailedPrecondition, "volume " + s_.volume->name + " does not replicate from " + source.name +
                                                  " to " + target + " (" + why + "); a drill would only measure that. "
                                                  "Logs: " + dir_);
    }
    return st;
  }

  // Waits until `target`'s server of the database is a standby streaming
  // from `source`'s, an unfenced primary, with its agent reporting its lag.
  Status WaitStreaming(const std::string& source, const std::string& target, Duration limit) {
    const plan::Database& db = *s_.database;
    std::string why = "no answer";
    auto st = WaitFor("database " + db.name + " to stream from " + source + " to " + target, limit, [&] {
      auto seen = postgres::ObserveAll(db, 2s);
      const auto& src = seen.at(source);
      const auto& dst = seen.at(target);
      if (!src.state || !dst.state) {
        const auto& gone = !src.state ? src : dst;
        why = gone.region + "'s server: " + (gone.error ? gone.error->message() : "no answer");
        return false;
      }
      if (src.state->in_recovery || src.state->fenced) {
        why = source + "'s server is a " + src.state->Role();
        return false;
      }
      if (!dst.state->in_recovery || dst.state->upstream_status != "streaming") {
        why = target + "'s server is a " + dst.state->Role() +
              (dst.state->in_recovery ? " whose WAL receiver is '" + dst.state->upstream_status + "'" : "");
        return false;
      }
      const plan::Region* r = plan_.FindRegion(target);
      auto status = r ? GetAgentJson(*r, "/v1/status", 1s) : Result<AgentJson>(NotFound("no region"));
      if (!status.ok()) {
        why = target + "'s agent does not answer";
        return false;
      }
      Json mine = json::Obj(json::Obj(json::Obj(*status, "services"), "databases"), db.name.c_str());
      if (json::Str(mine, "role") != "standby" || !json::Num(mine, "lag_bytes")) {
        why = target + "'s agent has not measured its standby's lag yet";
        return false;
      }
      return true;
    });
    if (!st.ok() && st.error().code() == Code::kDeadlineExceeded) {
      return Error(Code::kFailedPrecondition,
                   "database " + db.name + " does not stream from " + source + " to " + target + " (" + why +
                       "); a drill would only measure that. `lifeboat db status " + db.name + "` shows each server; "
                       "`lifeboat db bootstrap " + db.name + " --region " + target + "` builds a standby. Logs: " + dir_);
    }
    return st;
  }

  // Makes `region`'s server (an old primary, stopped or fenced) a standby of
  // the current primary: pg_rewind, configured, started, streaming.
  Status RewindDatabase(const std::string& region) {
    Say("  database " + s_.database->name + ": rewinding " + region + "'s server to follow the new primary...");
    postgres::LocalOptions lo;
    lo.timeout = o_.duration;
    auto done = postgres::Rewind(*s_.database, region, lo);
    if (!done.ok()) return done.error().Wrap("rewind " + region + "'s server of database " + s_.database->name);
    Say("  database " + s_.database->name + ": " + region + "'s server " + done->done);
    for (const auto& w : done->warnings) Say("  warning: " + w);
    return Ok();
  }

  // "volume shop", "database shop": where the sample application's records are.
  std::string Data() const {
    return s_.database ? "database " + s_.database->name : "volume " + s_.volume->name;
  }

  // The failover status as the first agent that answers reports it (the
  // regions gone dark are not asked).
  Json FailoverStatus() const {
    for (const auto& r : plan_.regions) {
      if (dark_.count(r.name)) continue;
      auto got = GetAgentJson(r, "/v1/status", 1s);
      if (got.ok() && got->contains("failover")) return json::Obj(*got, "failover");
    }
    return Json::object();
  }

  // Waits until the phase's failover run has ended and the client has
  // written to the phase's application; after `duration` the phase counts
  // as not recovered (the measures say so).
  Status WaitPhase(Phase& p, drill::Client& client) {
    auto end = SteadyClock::now() + o_.duration;
    auto st = WaitFor("the " + p.name + " and the client's recovery", o_.duration + 1s, [&] {
      if (SteadyClock::now() > end) return true;
      if (!RestartCrashed()) return false;
      auto last = client.LastAttempt();
      bool back = last && last->acked && last->target == p.to_app && last->start >= p.at;
      if (!back) return false;
      Json run = json::Obj(FailoverStatus(), "run");
      if (json::U64(run, "epoch") <= p.epoch_before || json::Str(run, "to") != p.to) return false;
      std::string state = json::Str(run, "state");
      return state == "done" || state == "failed";
    });
    p.failover = FailoverStatus();
    p.run = json::Obj(p.failover, "run");
    if (json::U64(p.run, "epoch") <= p.epoch_before) p.run = Json::object();  // no run of this phase
    return st;
  }

  // A driver killed mid-failover starts again a second later, as a
  // supervisor would. False until then (the phase is not over).
  bool RestartCrashed() {
    std::optional<Crash> crash;
    {
      std::lock_guard lock(kill_mu_);
      crash = crash_;
    }
    if (!crash || crash->restarted) return true;
    if (Clock::Real().Now() - crash->at < 1s) return false;
    Say("  the agent driving the run, " + crash->owner + ", was killed at step " + crash->step +
        "; starting it again");
    if (auto st = Restart(crash->region + " agent"); !st.ok()) {
      Say("  could not start it again: " + st.error().message());
    }
    std::lock_guard lock(kill_mu_);
    crash_->restarted = Clock::Real().Now();
    return false;
  }

  // Asks for a planned failover to `p.to` and waits for it.
  Status PlannedMove(Phase& p, drill::Client& client) {
    p.planned = true;
    p.epoch_before = json::U64(FailoverStatus(), "epoch");
    // A region that has just come back is refused as a target until a
    // majority of the agents' views see its endpoints healthy again (its
    // checks' rise), and until its own view reports its database server
    // measured as a standby (published on the agent's next tick): ask
    // again until then.
    auto coming_back = [](const std::string& why) {
      for (const char* s : {"healthy", "unreachable from its agent", "was never measured", "has no view of epoch"}) {
        if (why.find(s) != std::string::npos) return true;
      }
      return false;
    };
    Result<AcceptedFailover> accepted = Unavailable("not asked yet");
    bool said = false;
    auto st = WaitFor("the agents to accept a planned failover to " + p.to, o_.duration, [&] {
      p.at = Clock::Real().Now();
      accepted = RequestFailover(plan_, {p.to, "lifeboat drill", token_, true, false},
                                 [this](const std::string& line) { Say("  " + line); });
      if (accepted.ok() || !coming_back(accepted.error().message())) return true;
      if (!said) Say("  waiting until the agents see " + p.to + " ready again (" + accepted.error().message() + ")...");
      said = true;
      std::this_thread::sleep_for(200ms);
      return false;
    });
    if (!st.ok()) {
      return Error(st.error().code(), st.error().message() +
                                          (accepted.ok() ? "" : "; the last answer: " + accepted.error().message()));
    }
    if (!accepted.ok()) return accepted.error();
    Say("  a planned failover from " + p.from + " to " + p.to + " (epoch " + std::to_string(accepted->epoch) +
        ") accepted by " + accepted->agent->name + "'s agent");
    return WaitPhase(p, client);
  }

  // A database drill starts from the plan's layout: the primary region's
  // server an unfenced primary, the standby region's server (started
  // when it is down) streaming from it.
  Status StartDatabase() {
    if (!s_.database) return Ok();
    const plan::Database& db = *s_.database;
    for (const auto* r : {s_.primary, s_.standby}) {
      if (auto st = postgres::StartServer(db, r->name, 60s); !st.ok()) {
        return st.error().Wrap("start " + r->name + "'s server of database " + db.name);
      }
    }
    auto seen = postgres::ObserveAll(db, 5s);
    auto primary = postgres::WritablePrimary(seen);
    if (!primary.ok()) {
      return Error(Code::kFailedPrecondition, "database " + db.name + ": " + primary.error().message() +
                                                  "; the drill starts from a writable primary in " + s_.primary->name);
    }
    if (*primary != s_.primary->name) {
      return Error(Code::kFailedPrecondition,
                   "database " + db.name + "'s primary is in " + *primary + ", and the plan's primary region is " +
                       s_.primary->name + ": the drill starts from the plan's layout. Move it back first (a planned "
                       "failover to " + s_.primary->name + ", then `lifeboat db rewind " + db.name + " --region " +
                       *primary + "`)");
    }
    Say("  database " + db.name + ": " + s_.primary->name + "'s server is the primary (" +
        postgres::Describe(db.instances.at(s_.primary->name)) + "), " + s_.standby->name + "'s a standby (" +
        postgres::Describe(db.instances.at(s_.standby->name)) + ")" +
        (db.mode == plan::DbMode::kSync ? "; commits wait for the standby (sync)" : "; asynchronous"));
    return Ok();
  }

  // The first phase: the scenario's fault.
  Status Fault(Phase& p, drill::Client& client) {
    p.name = "failover";
    p.from = s_.primary->name;
    p.to = s_.standby->name;
    p.to_app = s_.endpoints[1]->address.ToString();
    if (o_.scenario == Scenario::kPlannedSwitchover) {
      p.what = "planned switchover requested";
      Say("Switching over from " + p.from + " to " + p.to + " by a planned failover (" +
          std::to_string(client.acked()) + " records acknowledged so far)...");
      return PlannedMove(p, client);
    }
    p.epoch_before = json::U64(FailoverStatus(), "epoch");
    if (o_.scenario == Scenario::kReplicationPartition) return Partition(p, client);
    if (o_.scenario == Scenario::kAgentCrashMidFailover) {
      std::lock_guard lock(kill_mu_);
      crash_epoch_ = p.epoch_before + 1;
    }
    p.at = Clock::Real().Now();
    bool apps_only = o_.scenario == Scenario::kEndpointFailure;
    killed_names_ = Kill(p.from, apps_only);
    const std::string killed =
        s_.database ? "agent, application and database server killed" : "agent and application killed";
    p.what = apps_only ? "application killed; its agent runs"
             : o_.scenario == Scenario::kSlowLink ? killed + ", replicating over a slow link"
             : o_.scenario == Scenario::kAgentCrashMidFailover
                 ? killed + "; then the failover's driver, at its " + o_.crash_at + " step"
                 : killed;
    Say((apps_only ? "The application of " + p.from + " died at " : "Region " + p.from + " went dark at ") +
        FormatUtc(p.at) + " (" + p.what + ", " + std::to_string(client.acked()) +
        " records acknowledged so far). Waiting for the others to fail over...");
    return WaitPhase(p, client);
  }

  // replication-partition: the link cut for fault_for while the client
  // writes on; nothing may fail over. Then healed, and the standby must
  // catch up (the read-back after the client stops counts what it lacks).
  Status Partition(Phase& p, drill::Client& client) {
    p.name = "partition";
    p.to = p.from;
    p.to_app = s_.endpoints[1]->address.ToString();  // the read-back: the standby's copy
    p.at = Clock::Real().Now();
    proxy_->Cut(true);
    p.what = "replication link to " + s_.standby->name + " cut for " + FormatDuration(o_.fault_for);
    Say("The replication link from " + p.from + " to " + s_.standby->name + " was cut at " + FormatUtc(p.at) + " (" +
        std::to_string(client.acked()) + " records acknowledged so far). Nothing may fail over; holding the cut for " +
        FormatDuration(o_.fault_for) + "...");
    auto end = SteadyClock::now() + o_.fault_for;
    auto said = SteadyClock::now();
    auto st = WaitFor("the partition", o_.fault_for + 5s, [&] {
      if (SteadyClock::now() - said >= 15s) {
        said = SteadyClock::now();
        Json f = FailoverStatus();
        Say("  " + std::to_string(client.acked()) + " records acknowledged; " + s_.standby->name + " is " +
            drill::FormatSeconds(LastLag()) +
            " behind; primary " + json::Str(f, "primary") + " at epoch " + std::to_string(json::U64(f, "epoch")));
      }
      return SteadyClock::now() >= end;
    });
    proxy_->Cut(false);
    healed_ = Clock::Real().Now();
    if (!st.ok()) return st;
    Say("Healed at " + FormatUtc(*healed_) + "; waiting for " + s_.standby->name + " to catch up...");
    LB_RETURN_IF_ERROR(WaitReplicating(*s_.primary, s_.standby->name, o_.duration));
    p.failover = FailoverStatus();
    p.run = json::Obj(p.failover, "run");
    if (json::U64(p.run, "epoch") <= p.epoch_before) p.run = Json::object();
    return Ok();
  }

  // The newest lag sampled of the stream from the primary to the standby.
  double LastLag() {
    std::lock_guard lock(lag_mu_);
    for (auto it = lag_.rbegin(); it != lag_.rend(); ++it) {
      if (it->from == s_.primary->name && it->to == s_.standby->name) return it->seconds;
    }
    return 0;
  }

  // Waits until the standby has everything the primary acknowledged (the
  // stream in sync once the client stopped writing).
  Status WaitInSync() {
    return WaitFor(s_.standby->name + " to have every record", o_.duration, [&] {
      return StreamTo(*s_.primary, s_.volume->name, s_.standby->name).value("in_sync", false);
    });
  }

  // The second phase: the processes killed come back, the old primary's
  // copy follows the new primary and catches up, then a planned failover
  // moves everything back.
  Status Failback(const Phase& first, Phase& p, drill::Client& client) {
    p.name = "failback";
    p.what = "planned failover back";
    p.from = first.to;
    p.to = first.from;
    p.to_app = s_.endpoints[0]->address.ToString();
    if (!killed_names_.empty()) {
      Say("Failing back: starting again what was killed in " + first.from);
      for (const auto& name : killed_names_) {
        if (name.ends_with(" database server")) continue;  // the rewind below starts it
        if (auto st = Restart(name); !st.ok()) return st;
      }
      dark_.erase(first.from);
      LB_RETURN_IF_ERROR(WaitHealthy({first.from}));
    }
    const plan::Region* back = plan_.FindRegion(p.to);
    const plan::Region* now = plan_.FindRegion(p.from);
    if (s_.database) {
      LB_RETURN_IF_ERROR(RewindDatabase(p.to));
    } else {
      Json f = FailoverStatus();
      auto follows = FollowPrimary(*back, json::Str(f, "primary"), json::U64(f, "epoch"), token_,
                                   [this](const std::string& line) { Say("  " + line); });
      if (!follows.ok()) return follows.error();
    }
    LB_RETURN_IF_ERROR(WaitReplicating(*now, p.to, o_.duration));
    Say("  " + Data() + ": " + p.to + " has caught up with " + p.from + "; switching back (" +
        std::to_string(client.acked()) + " records acknowledged so far)...");
    return PlannedMove(p, client);
  }

  int RunInner() {
    started_ = Clock::Real().Now();
    std::string story;
    switch (o_.scenario) {
      case Scenario::kPlannedSwitchover:
        story = "the primary " + s_.primary->name + " hands over to " + s_.standby->name + " and takes back";
        break;
      case Scenario::kRegionOutage: story = "the primary " + s_.primary->name + " will go dark"; break;
      case Scenario::kEndpointFailure: story = "the primary " + s_.primary->name + "'s application will die"; break;
      case Scenario::kReplicationPartition:
        story = "only the replication link from " + s_.primary->name + " to " + s_.standby->name +
                " will be cut; nothing may fail over";
        break;
      case Scenario::kSlowLink:
        story = s_.primary->name + " replicates over a slow link, then goes dark";
        break;
      case Scenario::kAgentCrashMidFailover:
        story = "the primary " + s_.primary->name + " will go dark, and the agent driving the failover will be killed "
                "at its " + o_.crash_at + " step";
        break;
    }
    if (s_.database) story += "; the application keeps its records in database " + s_.database->name;
    Say("lifeboat drill: " + std::string(Name(o_.scenario)) + " on plan '" + plan_.name + "'; " + story +
        ". Logs and the report: " + dir_);
    if (auto st = StartDatabase(); !st.ok()) return Fail(st.error());
    if (auto st = StartAll(); !st.ok()) return Fail(st.error());
    std::set<std::string> all;
    for (const auto& r : plan_.regions) all.insert(r.name);
    if (auto st = WaitHealthy(all); !st.ok()) return Fail(st.error());
    if (auto st = FollowStore(); !st.ok()) return Fail(st.error());
    // The client asks the regions' DNS servers, the primary's first, as a
    // resolver configured with every region's would.
    std::vector<Address> servers = {dns_.at(s_.primary->name)};
    for (const auto& [region, a] : dns_) {
      if (region != s_.primary->name && servers.size() < 3) servers.push_back(a);
    }
    auto resolver = drill::Resolver::Create(servers);
    if (!resolver.ok()) return Fail(resolver.error());
    const std::string primary_app = s_.endpoints[0]->address.ToString();
    auto st = WaitFor("the DNS name " + s_.record->name + " to answer the primary's endpoint", 20s, [&] {
      auto probe = drill::Resolver::Create(servers);
      auto a = probe->Resolve(s_.record->name);
      return a.ok() && EndpointOf(a->addresses.front()) && EndpointOf(a->addresses.front())->ToString() == primary_app;
    });
    if (!st.ok()) return Fail(st.error());
    st = WaitReplicating(*s_.primary, s_.standby->name, o_.duration);
    if (!st.ok()) return Fail(st.error());
    drill::Client client({s_.record->name, [this](const std::string& ip) { return EndpointOf(ip); }, 10ms, 1s,
                          drill::FirstRecordNumber()},
                         std::move(*resolver));
    client.Start();
    StartSampling();
    Say("Every region answers and " + Data() + " replicates. The client writes a numbered record to " +
        s_.record->name + " every 10ms; warming up for " + FormatDuration(o_.warmup) + ".");
    auto warm_end = SteadyClock::now() + o_.warmup;
    st = WaitFor("the warm-up", o_.warmup + 30s, [&] { return SteadyClock::now() >= warm_end && client.acked() > 0; });
    if (!st.ok()) return Fail(st.error());

    std::vector<Phase> phases(1);
    st = Fault(phases[0], client);
    bool failback = (o_.failback || o_.scenario == Scenario::kPlannedSwitchover) &&
                    o_.scenario != Scenario::kReplicationPartition;
    if (st.ok() && failback) {
      auto attempts = client.Attempts();
      if (drill::MeasureRecovery(attempts, phases[0].at).rto) {
        std::this_thread::sleep_for(1s);  // writes at the new primary before moving back
        phases.emplace_back();
        st = Failback(phases[0], phases[1], client);
      } else {
        Say("The client never recovered; no failback.");
      }
    }
    if (!st.ok()) {
      client.Stop();
      return Fail(st.error());
    }
    std::this_thread::sleep_for(1s);  // writes after the recovery, counted too
    client.Stop();
    if (s_.database && phases.size() > 1) {
      // The servers end as they began: the region the primary left follows it.
      if (auto st = RewindDatabase(phases.back().from); !st.ok()) {
        Say("  warning: " + st.error().message() + "; `lifeboat db rewind " + s_.database->name + " --region " +
            phases.back().from + "` does it by hand");
      }
    }
    if (o_.scenario == Scenario::kReplicationPartition) {
      if (auto wait = WaitInSync(); !wait.ok()) return Fail(wait.error());
    }
    StopSampling();
    return Finish(phases, client.Attempts());
  }

  int Finish(std::vector<Phase>& phases, const std::vector<drill::Attempt>& attempts) {
    // Each phase's recovery from its own start; its loss over the records
    // written before the next phase began.
    for (Phase& p : phases) p.recovery = drill::MeasureRecovery(attempts, p.at);
    const Phase& last = phases.back();
    std::string final_app = last.recovery.recovered_at.empty() || o_.scenario == Scenario::kReplicationPartition
                                ? last.to_app
                                : last.recovery.recovered_at;
    std::set<uint64_t> found;
    std::string readback_error;
    if (auto where = ParseAddress(final_app); where.ok()) {
      auto got = drill::ReadBack(*where, 5s);
      if (got.ok()) {
        found = std::move(*got);
      } else {
        readback_error = got.error().message();
      }
    }
    drill::Verdict verdict;
    for (size_t i = 0; i < phases.size(); ++i) {
      Phase& p = phases[i];
      std::vector<drill::Attempt> mine;
      for (const auto& a : attempts) {
        if (i + 1 < phases.size() && a.start >= phases[i + 1].at) break;
        if (i == 0 || a.start >= p.at) mine.push_back(a);
      }
      p.loss = drill::MeasureLoss(mine, found, p.at);
      auto v = drill::Judge(plan_.objectives, p.recovery, p.loss);
      if (p.from != p.to) {
        Clock::TimePoint end = i + 1 < phases.size() ? phases[i + 1].at : Clock::TimePoint::max();
        p.overlap = drill::MeasureOverlap(attempts, AppOf(p.from), p.to_app, p.at, end);
        if (p.overlap.writes > 0) {
          v.pass = false;
          v.missed.push_back(std::to_string(p.overlap.writes) + " writes acknowledged by " + p.from + " after " + p.to +
                             " had acknowledged one: two primaries at once");
        }
      }
      if (p.planned && p.loss.missing > 0) {
        v.pass = false;
        v.missed.push_back("a planned failover lost " + std::to_string(p.loss.missing) + " acknowledged records");
      }
      for (auto& m : v.missed) verdict.missed.push_back(i == 0 ? m : p.name + ": " + m);
      verdict.pass = verdict.pass && v.pass;
    }
    Json replication = ReplicationJson();
    if (o_.scenario == Scenario::kReplicationPartition) {
      const Phase& p = phases[0];
      uint64_t epoch = json::U64(p.failover, "epoch");
      auto miss = [&](std::string m) {
        verdict.pass = false;
        verdict.missed.push_back(std::move(m));
      };
      if (epoch != p.epoch_before || json::Str(p.failover, "primary") != s_.primary->name) {
        miss("a replication partition alone failed over (primary " + json::Str(p.failover, "primary") + " at epoch " +
             std::to_string(epoch) + "); only the link was cut");
      }
      if (json::Num(replication, "over_objective_seconds").value_or(0) <= 0) {
        miss("the lag never went over the RPO objective during the cut (at most " +
             drill::FormatSeconds(json::Num(replication, "max_lag_seconds").value_or(0)) +
             "): the partition did not hold replication back, or nothing measured it");
      }
      if (p.loss.missing > 0) {
        miss("after the link healed, " + s_.standby->name + " still lacks " + std::to_string(p.loss.missing) +
             " acknowledged records");
      }
    }
    Json crash = CrashJson(phases[0]);
    if (o_.scenario == Scenario::kAgentCrashMidFailover) {
      auto miss = [&](std::string m) {
        verdict.pass = false;
        verdict.missed.push_back(std::move(m));
      };
      if (crash.is_null()) {
        miss("the failover run never reached its " + o_.crash_at + " step while the drill watched, so its driver " +
             "was never killed (the run's steps: " + StepNames(phases[0].run) + ")");
      } else if (json::Str(phases[0].run, "state") != "done") {
        miss("the run whose driver was killed at " + json::Str(crash, "step") + " did not finish (" +
             json::Str(phases[0].run, "state") + ")");
      } else if (!json::Bool(crash, "resumed")) {
        miss("the run finished, but nothing shows it resumed after its driver was killed");
      }
      uint64_t epoch = json::U64(phases[0].failover, "epoch");
      if (epoch != phases[0].epoch_before + 1) {
        miss("the epoch moved from " + std::to_string(phases[0].epoch_before) + " to " + std::to_string(epoch) +
             ": one failover must move it once");
      }
    }
    if (!readback_error.empty()) {
      verdict.pass = false;
      verdict.missed.push_back("the records could not be read back: " + readback_error);
    }
    // Every attempt, one JSON object a line: the timeline behind the figures.
    std::string lines;
    for (const auto& a : attempts) {
      lines += Json({{"seq", a.seq}, {"start", FormatUtc(a.start)}, {"end", FormatUtc(a.end)}, {"target", a.target},
                     {"acked", a.acked}, {"error", a.error}})
                   .dump() +
               "\n";
    }
    if (auto w = WriteFileAtomic(dir_ + "/attempts.jsonl", lines); !w.ok()) return Fail(w.error());
    Json report = Report(phases, attempts, verdict);
    report["replication"] = std::move(replication);
    if (!crash.is_null()) report["crash"] = std::move(crash);
    report["events"] = timeline_ ? Json(timeline_->Events()) : Json::array();
    std::string path = dir_ + "/drill.json";
    if (auto w = WriteFileAtomic(path, report.dump(2) + "\n"); !w.ok()) return Fail(w.error());
    if (auto w = WriteFileAtomic(dir_ + "/drill.html", drill::RenderHtml(report, attempts)); !w.ok()) {
      return Fail(w.error());
    }
    std::string recorded = Record(report, attempts, verdict);
    if (Structured(o_.output)) {
      PrintDocument(report, o_.output);
    } else {
      PrintSummary(report, verdict, path);
      std::cout << recorded << "\n";
    }
    return verdict.pass ? kExitOk : kExitFailure;
  }

  // Keeps the drill in the state store of the plan's agents on this machine
  // and in its own agents' store (whose status pages show it while they
  // run, with --stay). Returns a line saying where, or why not: a drill
  // whose figures are in its report is not failed by its history.
  std::string Record(const Json& report, const std::vector<drill::Attempt>& attempts, const drill::Verdict& verdict) {
    state::DrillRecord d;
    d.id = drill::DrillId(started_, Name(o_.scenario));
    d.scenario = Name(o_.scenario);
    d.plan = plan_.name;
    d.started_at = FormatUtc(started_);
    d.ended_at = FormatUtc(Clock::Real().Now());
    d.pass = verdict.pass;
    d.missed = verdict.missed;
    auto figure = [](const Json& v) { return v.is_number() ? v.get<double>() : -1.0; };
    d.rto_seconds = figure(report["rto_seconds"]);
    d.rpo_seconds = figure(report["rpo_seconds"]);
    d.dir = dir_;
    Json full = report;
    full["id"] = d.id;
    full["attempts"] = drill::CompactAttempts(attempts);
    d.report = full.dump();
    std::string history = DrillHistoryPath(plan_, o_.agents_dir);
    std::string own = state::EmbeddedStorePath(plan_, dir_ + "/" + plan_.regions[0].name);
    std::string said;
    for (const std::string& path : std::set<std::string>{history, own}) {
      auto st = [&]() -> Status {
        LB_RETURN_IF_ERROR(EnsureWritableDir(std::filesystem::path(path).parent_path().string()));
        LB_ASSIGN_OR_RETURN(auto store, state::SqliteStore::Open(path));
        return drill::RecordDrill(*store, d);
      }();
      if (path == history) {
        said = st.ok() ? "Recorded as drill " + d.id + " in " + path + " (lifeboat drill report " + d.id + ")"
                       : "The drill could not be recorded in " + path + ": " + st.error().message();
      }
    }
    return said;
  }

  static std::string StepNames(const Json& run) {
    std::string names;
    for (const auto& step : json::Arr(run, "steps")) names += (names.empty() ? "" : ", ") + json::Str(step, "name");
    return names.empty() ? "none seen" : names;
  }

  // The driver killed mid-failover, and whether the run went on without
  // it: the run's final owner is another agent (or the same one restarted),
  // or the step it died in was attempted again. null when nothing was killed.
  Json CrashJson(const Phase& p) {
    std::optional<Crash> crash;
    {
      std::lock_guard lock(kill_mu_);
      crash = crash_;
    }
    if (!crash) return Json();
    int attempts = 0;
    for (const auto& step : json::Arr(p.run, "steps")) {
      if (json::Str(step, "name") == crash->step) attempts = static_cast<int>(json::I64(step, "attempts"));
    }
    std::string owner = json::Str(p.run, "owner");
    return {{"agent", crash->owner},
            {"pid", crash->pid},
            {"chosen_step", o_.crash_at},
            {"step", crash->step},
            {"at", FormatUtc(crash->at)},
            {"restarted_at", crash->restarted ? Json(FormatUtc(*crash->restarted)) : Json()},
            {"run_owner_after", owner},
            {"step_attempts", attempts},
            {"resumed", (!owner.empty() && owner != crash->owner) || attempts >= 2}};
  }

  // The replication link and its lag over the drill: every sample, the
  // highest lag of the primary's stream to the standby, and how long it was
  // over the RPO objective (the condition of LifeboatReplicationLagOverRPO).
  Json ReplicationJson() {
    std::lock_guard lock(lag_mu_);
    Json samples = Json::array();
    double max = 0, over = 0;
    std::optional<double> objective;
    if (plan_.objectives.rpo) objective = SecondsOf(*plan_.objectives.rpo);
    std::optional<Clock::TimePoint> previous;
    for (const auto& l : lag_) {
      samples.push_back({{"at", FormatUtc(l.at)}, {"from", l.from}, {"to", l.to}, {"seconds", l.seconds},
                         {"state", l.state}});
      if (l.from != s_.primary->name || l.to != s_.standby->name) continue;
      max = std::max(max, l.seconds);
      if (previous && objective && l.seconds > *objective) over += SecondsOf(l.at - *previous);
      previous = l.at;
    }
    Json link = Json();
    if (proxy_) {
      auto st = proxy_->stats();
      link = {{"from", s_.primary->name},
              {"to", s_.standby->name},
              {"via", proxy_->address().ToString()},
              {"upstream", proxy_->upstream().ToString()},
              {"delay_seconds", o_.scenario == Scenario::kSlowLink ? Json(SecondsOf(o_.link_delay)) : Json()},
              {"rate_bytes_per_second", o_.scenario == Scenario::kSlowLink ? Json(o_.link_rate) : Json()},
              {"healed_at", healed_ ? Json(FormatUtc(*healed_)) : Json()},
              {"connections", st.connections},
              {"bytes_up", st.bytes_up},
              {"bytes_down", st.bytes_down}};
    }
    return {{s_.database ? "database" : "volume", s_.database ? s_.database->name : s_.volume->name},
            {"link", link},
            {"max_lag_seconds", max},
            {"over_objective_seconds", objective ? Json(over) : Json()},
            {"lag", samples}};
  }

  // A phase's figures: the report's top level holds the first phase's,
  // "failback" the second's.
  Json PhaseJson(const Phase& p, const std::vector<drill::Attempt>& attempts) const {
    auto opt_seconds = [](const std::optional<Duration>& d) { return d ? Json(SecondsOf(*d)) : Json(); };
    auto opt_time = [](const std::optional<Clock::TimePoint>& t) { return t ? Json(FormatUtc(*t)) : Json(); };
    Json detection;  // the fault to the run's start, as the run's clock wrote it
    if (auto started = ParseUtc(json::Str(p.run, "started_at")); started && *started >= p.at) {
      detection = SecondsOf(*started - p.at);
    }
    Json steps = Json::array();
    for (const auto& step : json::Arr(p.run, "steps")) {
      auto a = ParseUtc(json::Str(step, "started_at")), b = ParseUtc(json::Str(step, "ended_at"));
      steps.push_back({{"name", json::Str(step, "name")},
                       {"state", json::Str(step, "state")},
                       {"started_at", json::Str(step, "started_at")},
                       {"ended_at", json::Str(step, "ended_at")},
                       {"seconds", a && b && *b >= *a ? Json(SecondsOf(*b - *a)) : Json()},
                       {"output", json::Str(step, "output")}});
    }
    std::string first_error;
    for (const auto& a : attempts) {
      if (!a.acked && a.end >= p.at) {
        first_error = a.error;
        break;
      }
    }
    return {{"fault", {{"at", FormatUtc(p.at)}, {"region", p.from}, {"what", p.what}}},
            {"rto_seconds", opt_seconds(p.recovery.rto)},
            {"rpo_seconds", SecondsOf(p.loss.rpo)},
            {"detection_seconds", p.planned ? Json() : detection},
            {"client",
             {{"name", s_.record->name},
              {"attempts", attempts.size()},
              {"acknowledged", p.loss.acked},
              {"failed_after_fault", p.recovery.failed},
              {"first_failure", opt_time(p.recovery.first_failure)},
              {"first_error", first_error},
              {"recovered", opt_time(p.recovery.recovered)},
              {"recovered_at", p.recovery.recovered_at}}},
            {"two_primaries",
             {{"writes", p.overlap.writes}, {"first", p.overlap.first ? Json(FormatUtc(*p.overlap.first)) : Json()}}},
            {"loss",
             {{"missing", p.loss.missing},
              {"first_missing", p.loss.first_missing},
              {"all_missing", p.loss.missing_numbers},
              {"oldest", opt_time(p.loss.oldest)},
              {"newest", opt_time(p.loss.newest)}}},
            {"failover",
             {{"primary", json::Str(p.failover, "primary")},
              {"epoch", json::U64(p.failover, "epoch")},
              {"planned", p.planned},
              {"run_state", json::Str(p.run, "state")},
              {"run_started_at", json::Str(p.run, "started_at")},
              {"steps", steps}}}};
  }

  Json Report(const std::vector<Phase>& phases, const std::vector<drill::Attempt>& attempts,
              const drill::Verdict& verdict) const {
    auto opt_seconds = [](const std::optional<Duration>& d) { return d ? Json(SecondsOf(*d)) : Json(); };
    Json objectives = {{"rto_seconds", opt_seconds(plan_.objectives.rto)},
                       {"rpo_seconds", opt_seconds(plan_.objectives.rpo)}};
    Json r = {{"scenario", Name(o_.scenario)},
              {"plan", plan_.name},
              {"verdict", verdict.pass ? "pass" : "fail"},
              {"missed", verdict.missed},
              {"objectives", objectives}};
    r.update(PhaseJson(phases[0], attempts));
    if (phases.size() > 1) r["failback"] = PhaseJson(phases[1], attempts);
    r["data_dir"] = dir_;
    return r;
  }

  void PrintSummary(const Json& r, const drill::Verdict& verdict, const std::string& path) const {
    auto figure = [](const Json& v) {
      return v.is_number()
                 ? drill::FormatSeconds(v.get<double>())
                 : std::string("-");
    };
    std::cout << "\n";
    Table t({"MEASURE", "VALUE", "OBJECTIVE"});
    const auto& obj = r["objectives"];
    auto rows = [&](const Json& p, const std::string& prefix) {
      t.Add({prefix + "RTO (from the first write not served as before to the next acknowledged)",
             p["rto_seconds"].is_null() ? "never recovered" : figure(p["rto_seconds"]), figure(obj["rto_seconds"])});
      t.Add({prefix + "RPO (acknowledged writes lost, as time before the fault)", figure(p["rpo_seconds"]),
             p["failover"]["planned"].get<bool>() ? "nothing lost (planned)" : figure(obj["rpo_seconds"])});
      t.Add({prefix + "records lost", std::to_string(p["loss"]["missing"].get<uint64_t>()) + " of " +
                                          std::to_string(p["client"]["acknowledged"].get<uint64_t>()) + " acknowledged",
             ""});
      if (!p["detection_seconds"].is_null()) {
        t.Add({prefix + "detection (the fault to the failover's start)", figure(p["detection_seconds"]), ""});
      }
      for (const auto& s : p["failover"]["steps"]) {
        t.Add({prefix + "  step " + s["name"].get<std::string>() + " (" + s["state"].get<std::string>() + ")",
               figure(s["seconds"]), ""});
      }
    };
    rows(r, "");
    if (r.contains("failback")) rows(r["failback"], "failback: ");
    if (r.contains("crash")) {
      const Json& c = r["crash"];
      t.Add({"driver killed (" + json::Str(c, "agent") + ") at step", json::Str(c, "step"),
             "chosen: " + json::Str(c, "chosen_step")});
      t.Add({"  run resumed by", json::Str(c, "run_owner_after") + " (step attempts " +
                                     std::to_string(json::I64(c, "step_attempts")) + ")",
             ""});
    }
    const Json& rep = r["replication"];
    t.Add({"replication lag of " + s_.standby->name + ", highest", figure(rep["max_lag_seconds"]), ""});
    if (!rep["over_objective_seconds"].is_null()) {
      t.Add({"  over the RPO objective for (LifeboatReplicationLagOverRPO fires after 1m)",
             figure(rep["over_objective_seconds"]), ""});
    }
    std::cout << t.Render();
    const Json& last = r.contains("failback") ? r["failback"] : r;
    std::cout << "\nprimary now: " << last["failover"]["primary"].get<std::string>() << " (epoch "
              << last["failover"]["epoch"].get<uint64_t>() << "); "
              << (last["rto_seconds"].is_null() ? std::string("the client never recovered")
                  : last["client"]["recovered_at"].get<std::string>().empty()
                      ? std::string("the client never lost service")
                      : "the client writes to " + last["client"]["recovered_at"].get<std::string>())
              << "\n";
    if (verdict.pass) {
      std::cout << "PASS: within the plan's objectives.";
    } else {
      std::cout << "FAIL:";
      for (const auto& m : verdict.missed) std::cout << " " << m << ";";
    }
    std::cout << " Report: " << path << " and " << dir_ << "/drill.html\n";
  }

  const plan::Plan& plan_;
  Clock::TimePoint started_;
  Setup s_;
  DrillConfig o_;
  std::string dir_, plan_path_, token_;
  sigset_t sigs_{};
  std::vector<Child> children_;
  std::map<std::string, std::vector<std::string>> args_;  // child name -> its command line
  std::mutex kill_mu_;
  std::set<pid_t> killed_;                   // guarded by kill_mu_
  std::map<std::string, pid_t> agent_pids_;  // by region; guarded by kill_mu_
  // agent-crash-mid-failover: the driver killed, by the store's thread.
  struct Crash {
    Clock::TimePoint at;
    std::string owner, region, step;
    pid_t pid = 0;
    std::optional<Clock::TimePoint> restarted;
  };
  std::optional<Crash> crash_;  // guarded by kill_mu_
  uint64_t crash_epoch_ = 0;    // the run to crash: the epoch it moves to; 0: none yet
  std::unique_ptr<state::Store> store_;             // the drill's agents' store, read only
  std::unique_ptr<drill::StoreTimeline> timeline_;  // destroyed before store_
  std::vector<std::string> killed_names_;
  std::set<std::string> dark_;  // regions whose agent the drill killed
  std::map<std::string, Address> dns_;
  std::unique_ptr<drill::FaultProxy> proxy_;  // the replication link's, for the link scenarios
  std::optional<Clock::TimePoint> healed_;     // when a partition ended
  struct LagSample {
    Clock::TimePoint at;
    std::string from, to;
    double seconds;
    std::string state;
  };
  std::mutex lag_mu_;
  std::vector<LagSample> lag_;  // guarded by lag_mu_
  std::atomic<bool> stop_sampling_{false};
  std::thread sampler_;
};

}  // namespace

std::string DrillHistoryPath(const plan::Plan& plan, const std::string& agents_dir) {
  std::string dir = agents_dir.empty() ? "/var/lib/lifeboat/" + plan.name : agents_dir;
  return state::EmbeddedStorePath(plan, dir + "/" + plan.regions[0].name);
}

Status CheckDrillable(const plan::Plan& plan, const DrillConfig& config) {
  auto s = Choose(plan, config);
  if (!s.ok()) return s.error();
  return Ok();
}

int RunDrill(const plan::Plan& plan, const DrillConfig& config, const std::string& data_dir,
             const std::string& plan_path) {
  auto setup = Choose(plan, config);
  if (!setup.ok()) return Fail(setup.error());
  std::error_code ec;
  if (std::filesystem::exists(data_dir + "/" + plan.name + "-state.db", ec)) {
    return Fail("--data-dir " + data_dir + " holds an earlier run's state; give the drill a new directory",
                kExitInvalid);
  }
  DrillConfig c = config;
  if (setup->database && !c.failback && c.scenario != Scenario::kReplicationPartition) {
    // A database drill leaves the servers as it found them.
    c.failback = true;
  }
  Drill drill(plan, *setup, c, data_dir, plan_path);
  return drill.Run();
}

}  // namespace lifeboat::cli
