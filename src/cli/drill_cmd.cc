// lifeboat drill run SCENARIO: runs the plan's regions on this machine (an
// agent per region, the sample application on each endpoint of the drill's
// DNS record), writes numbered records through the name with the drill
// client, makes the scenario's fault, and measures what the client lived:
// RTO, RPO, detection and each runbook step (drill/measure.h).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/common.h"
#include "cli/local_processes.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "drill/client.h"
#include "drill/report.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kScenarios = "region-outage";

struct DrillOptions {
  std::string scenario, plan_file, data_dir, duration = "60s", warmup = "3s", record, volume, output = "table";
};

// What the drill runs and writes to, chosen from the plan.
struct Setup {
  const plan::Record* record = nullptr;
  const plan::Volume* volume = nullptr;
  const plan::Region* primary = nullptr;
  std::vector<const plan::Endpoint*> endpoints;  // the record's, primary first
};

Result<Setup> Choose(const plan::Plan& plan, const DrillOptions& o) {
  auto invalid = [](std::string m) { return Error(Code::kInvalidArgument, std::move(m)); };
  if (plan.state.store != plan::StoreKind::kEmbedded || !plan.state.path.empty()) {
    return invalid(
        "a drill runs the plan's regions afresh on this machine and moves its primary; it needs the embedded "
        "store at its default place (no state.path, no etcd), so that it can never touch a shared store");
  }
  if (plan.failover.mode != plan::FailoverMode::kAutomatic) {
    return invalid("region-outage waits for the agents to fail over on their own: set failover.mode: automatic");
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
  for (const auto& v : plan.volumes) {
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
  if (s.volume == nullptr) {
    return invalid(o.volume.empty() ? "the plan replicates no volume for the sample application's records"
                                    : "--volume: the plan has no volume '" + o.volume + "'");
  }
  for (const auto* e : s.endpoints) {
    if (!s.volume->path.count(e->region)) {
      return invalid("volume " + s.volume->name + " has no path in " + e->region + ", where endpoint " + e->name +
                     " runs the sample application");
    }
  }
  if (s.endpoints.empty() || s.endpoints[0]->region != s.primary->name) {
    return invalid("the record " + s.record->name + "'s primary endpoint is not in the primary region " +
                   s.primary->name);
  }
  return s;
}

// A port on 127.0.0.1 free for both UDP and TCP at this moment.
Result<uint16_t> FreePort() {
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
    if (ok) return ntohs(a.sin_port);
  }
  return Error(Code::kResourceExhausted, "no port on 127.0.0.1 is free for both UDP and TCP");
}

double SecondsOf(Duration d) { return std::chrono::duration<double>(d).count(); }

class Drill {
 public:
  Drill(const plan::Plan& plan, Setup setup, DrillOptions o, std::string data_dir, std::string plan_path)
      : plan_(plan), s_(setup), o_(std::move(o)), dir_(std::move(data_dir)), plan_path_(std::move(plan_path)) {}

  int Run(Duration duration, Duration warmup) {
    sigs_ = BlockStopSignals();
    int rc = RunInner(duration, warmup);
    if (!children_.empty()) {
      Say("Stopping every process the drill started");
      StopAll(children_);
    }
    return rc;
  }

 private:
  void Say(const std::string& line) {
    if (!Structured(o_.output)) std::cout << line << "\n" << std::flush;
  }

  Status StartChild(const std::string& name, std::vector<std::string> args, const std::string& log) {
    auto pid = Spawn(args, log);
    if (!pid.ok()) return pid.error();
    children_.push_back({name, log, *pid});
    return Ok();
  }

  // Fails when a child the drill did not kill has died: a drill that lost
  // a process by accident measures nothing.
  Status CheckChildren() {
    if (Child* died = Reap(children_)) {
      if (!killed_.count(died->pid)) {
        return Error(Code::kUnavailable, died->name + " exited (" + DescribeExit(died->status) + "); the end of " +
                                             died->log + ":\n" + Tail(died->log, 5));
      }
    }
    return Ok();
  }

  Status StartAll() {
    const std::string exe = SelfExe();
    for (const auto& r : plan_.regions) {
      std::string dir = dir_ + "/" + r.name;
      if (auto st = EnsureWritableDir(dir); !st.ok()) return st;
      auto port = FreePort();
      if (!port.ok()) return port.error();
      Address dns{"127.0.0.1", *port};
      dns_[r.name] = dns;
      if (auto st = StartChild(r.name + " agent",
                               {exe, "--log-format", "json", "agent", "--plan", plan_path_, "--region", r.name,
                                "--data-dir", dir, "--dns-listen", dns.ToString()},
                               dir + "/agent.log");
          !st.ok()) {
        return st;
      }
      for (const auto* e : s_.endpoints) {
        if (e->region != r.name) continue;
        if (auto st = StartChild(r.name + " app",
                                 {exe, "--log-format", "json", "app", "serve", "--dir", s_.volume->path.at(r.name),
                                  "--listen", e->address.ToString(), "--region", r.name},
                                 dir + "/app.log");
            !st.ok()) {
          return st;
        }
      }
      std::string apps;
      for (const auto* e : s_.endpoints) {
        if (e->region == r.name) apps += ", the sample application on " + e->address.ToString();
      }
      Say("  started " + r.name + " (" + plan::Name(r.role) + "): agent on " + r.agent.ToString() + ", DNS on " +
          dns.ToString() + apps);
    }
    return Ok();
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

  std::optional<Address> EndpointOf(const std::string& ip) const {
    for (const auto* e : s_.endpoints) {
      if (e->address.host == ip) return e->address;
    }
    return std::nullopt;
  }

  // Waits until the primary's agent streams the volume to `target` (a full
  // pass done): a drill of a plan whose replication does not run would
  // only measure that. The error says what the primary's agent reports.
  Status WaitReplicating(const std::string& target, Duration limit) {
    std::string url = net::BaseUrl(s_.primary->agent) + "/v1/replication/" + s_.volume->name;
    std::string why = "no answer from " + url;
    auto st = WaitFor("replication of " + s_.volume->name + " to " + target, limit, [&] {
      auto got = net::Fetch("GET", url, 1s);
      if (!got.ok()) return false;
      auto j = Json::parse(got->body, nullptr, false);
      if (j.is_discarded()) return false;
      why = json::Str(j, "problem");
      for (const auto& t : json::Arr(j, "targets")) {
        if (json::Str(t, "target") != target) continue;
        std::string state = json::Str(t, "state");
        if (json::Bool(t, "in_sync") || state == "streaming" || state == "verifying") return true;
        why = "its stream to " + target + " is " + state +
              (json::Str(t, "last_error").empty() ? "" : ": " + json::Str(t, "last_error"));
      }
      if (why.empty()) why = "the primary's agent reports no stream to " + target;
      return false;
    });
    if (!st.ok() && st.error().code() == Code::kDeadlineExceeded) {
      return Error(Code::kFailedPrecondition, "volume " + s_.volume->name + " does not replicate from " +
                                                  s_.primary->name + " to " + target + " (" + why +
                                                  "); a drill would only measure that. Logs: " + dir_);
    }
    return st;
  }

  // The failover run as a surviving agent reports it.
  Json SurvivorFailover() const {
    for (const auto& r : plan_.regions) {
      if (r.name == s_.primary->name) continue;
      auto got = net::Fetch("GET", net::BaseUrl(r.agent) + "/v1/status", 1s);
      if (!got.ok() || got->status != 200) continue;
      auto j = Json::parse(got->body, nullptr, false);
      if (!j.is_discarded()) return json::Obj(j, "failover");
    }
    return Json::object();
  }

  int RunInner(Duration duration, Duration warmup) {
    Say("lifeboat drill: " + o_.scenario + " on plan '" + plan_.name + "'; the primary " + s_.primary->name +
        " will go dark. Logs and the report: " + dir_);
    if (auto st = StartAll(); !st.ok()) return Fail(st.error());
    auto healthy = [](const Address& a) {
      auto r = net::Fetch("GET", net::BaseUrl(a) + "/healthz", 500ms);
      return r.ok() && r->status == 200;
    };
    auto st = WaitFor("every agent and application to answer", 20s, [&] {
      for (const auto& r : plan_.regions) {
        if (!healthy(r.agent)) return false;
      }
      for (const auto* e : s_.endpoints) {
        if (!healthy(e->address)) return false;
      }
      return true;
    });
    if (!st.ok()) return Fail(st.error());
    // The client asks the regions' DNS servers, the primary's first, as a
    // resolver configured with every region's would.
    std::vector<Address> servers = {dns_.at(s_.primary->name)};
    for (const auto& [region, a] : dns_) {
      if (region != s_.primary->name && servers.size() < 3) servers.push_back(a);
    }
    auto resolver = drill::Resolver::Create(servers);
    if (!resolver.ok()) return Fail(resolver.error());
    const std::string primary_app = s_.endpoints[0]->address.ToString();
    st = WaitFor("the DNS name " + s_.record->name + " to answer the primary's endpoint", 20s, [&] {
      auto probe = drill::Resolver::Create(servers);
      auto a = probe->Resolve(s_.record->name);
      return a.ok() && EndpointOf(a->addresses.front()) && EndpointOf(a->addresses.front())->ToString() == primary_app;
    });
    if (!st.ok()) return Fail(st.error());
    if (s_.endpoints.size() > 1) {
      st = WaitReplicating(s_.endpoints[1]->region, duration);
      if (!st.ok()) return Fail(st.error());
    }
    drill::Client client({s_.record->name, [this](const std::string& ip) { return EndpointOf(ip); }, 10ms, 1s,
                          drill::FirstRecordNumber()},
                         std::move(*resolver));
    client.Start();
    Say("Every region answers and " + s_.volume->name + " replicates. The client writes a numbered record to " + s_.record->name + " every 10ms; warming up for " +
        FormatDuration(warmup) + ".");
    auto warm_end = SteadyClock::now() + warmup;
    st = WaitFor("the warm-up", warmup + 30s, [&] { return SteadyClock::now() >= warm_end && client.acked() > 0; });
    if (!st.ok()) return Fail(st.error());

    // The fault: every process of the primary region, at once.
    auto fault = Clock::Real().Now();
    for (auto& c : children_) {
      if (c.name.rfind(s_.primary->name + " ", 0) == 0) {
        killed_.insert(c.pid);
        KillNow(c);
      }
    }
    Say("Region " + s_.primary->name + " went dark at " + FormatUtc(fault) + " (its agent and application killed, " +
        std::to_string(client.acked()) + " records acknowledged so far). Waiting for the others to fail over...");
    Json run;
    auto outage_end = SteadyClock::now() + duration;
    st = WaitFor("the failover and the client's recovery", duration + 1s, [&] {
      if (SteadyClock::now() > outage_end) return true;  // measured as not recovered
      auto attempts = client.Attempts();
      bool back = !attempts.empty() && attempts.back().acked && attempts.back().target != primary_app;
      if (!back) return false;
      run = json::Obj(SurvivorFailover(), "run");
      std::string state = json::Str(run, "state");
      return state == "done" || state == "failed";
    });
    if (!st.ok()) {
      client.Stop();
      return Fail(st.error());
    }
    std::this_thread::sleep_for(1s);  // writes after the recovery, counted too
    client.Stop();
    Json failover = SurvivorFailover();
    run = json::Obj(failover, "run");

    auto attempts = client.Attempts();
    auto recovery = drill::MeasureRecovery(attempts, fault);
    std::string new_app = recovery.recovered_at.empty() ? (s_.endpoints.size() > 1 ? s_.endpoints[1]->address.ToString() : "")
                                                        : recovery.recovered_at;
    std::set<uint64_t> found;
    std::string readback_error;
    if (auto where = ParseAddress(new_app); where.ok()) {
      auto got = drill::ReadBack(*where, 5s);
      if (got.ok()) {
        found = std::move(*got);
      } else {
        readback_error = got.error().message();
      }
    }
    auto loss = drill::MeasureLoss(attempts, found, fault);
    auto verdict = drill::Judge(plan_.objectives, recovery, loss);
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
    Json report = Report(fault, failover, run, attempts, recovery, loss, verdict);
    std::string path = dir_ + "/drill.json";
    if (auto w = WriteFileAtomic(path, report.dump(2) + "\n"); !w.ok()) return Fail(w.error());
    if (auto w = WriteFileAtomic(dir_ + "/drill.html", drill::RenderHtml(report, attempts)); !w.ok()) {
      return Fail(w.error());
    }
    if (Structured(o_.output)) {
      PrintDocument(report, o_.output);
    } else {
      PrintSummary(report, verdict, path);
    }
    return verdict.pass ? kExitOk : kExitFailure;
  }

  Json Report(Clock::TimePoint fault, const Json& failover, const Json& run, const std::vector<drill::Attempt>& attempts,
              const drill::Recovery& recovery, const drill::Loss& loss, const drill::Verdict& verdict) const {
    auto opt_seconds = [](const std::optional<Duration>& d) { return d ? Json(SecondsOf(*d)) : Json(); };
    auto opt_time = [](const std::optional<Clock::TimePoint>& t) { return t ? Json(FormatUtc(*t)) : Json(); };
    Json detection;  // the fault to the run's start, as the run's clock wrote it
    if (auto started = ParseUtc(json::Str(run, "started_at")); started && *started >= fault) {
      detection = SecondsOf(*started - fault);
    }
    Json steps = Json::array();
    for (const auto& step : json::Arr(run, "steps")) {
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
      if (!a.acked && a.end >= fault) {
        first_error = a.error;
        break;
      }
    }
    Json objectives = {{"rto_seconds", opt_seconds(plan_.objectives.rto)},
                       {"rpo_seconds", opt_seconds(plan_.objectives.rpo)}};
    return {{"scenario", o_.scenario},
            {"plan", plan_.name},
            {"verdict", verdict.pass ? "pass" : "fail"},
            {"missed", verdict.missed},
            {"objectives", objectives},
            {"fault", {{"at", FormatUtc(fault)}, {"region", s_.primary->name}, {"what", "agent and application killed"}}},
            {"rto_seconds", opt_seconds(recovery.rto)},
            {"rpo_seconds", SecondsOf(loss.rpo)},
            {"detection_seconds", detection},
            {"client",
             {{"name", s_.record->name},
              {"attempts", attempts.size()},
              {"acknowledged", loss.acked},
              {"failed_after_fault", recovery.failed},
              {"first_failure", opt_time(recovery.first_failure)},
              {"first_error", first_error},
              {"recovered", opt_time(recovery.recovered)},
              {"recovered_at", recovery.recovered_at}}},
            {"loss",
             {{"missing", loss.missing},
              {"first_missing", loss.first_missing},
              {"all_missing", loss.missing_numbers},
              {"oldest", opt_time(loss.oldest)},
              {"newest", opt_time(loss.newest)}}},
            {"failover",
             {{"primary", json::Str(failover, "primary")},
              {"epoch", json::U64(failover, "epoch")},
              {"run_state", json::Str(run, "state")},
              {"run_started_at", json::Str(run, "started_at")},
              {"steps", steps}}},
            {"data_dir", dir_}};
  }

  void PrintSummary(const Json& r, const drill::Verdict& verdict, const std::string& path) const {
    auto figure = [](const Json& v) {
      return v.is_number() ? drill::FormatMs(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(v.get<double>())))
                           : std::string("-");
    };
    std::cout << "\n";
    Table t({"MEASURE", "VALUE", "OBJECTIVE"});
    const auto& obj = r["objectives"];
    t.Add({"RTO (from the first write not served as before to the next acknowledged)",
           r["rto_seconds"].is_null() ? "never recovered" : figure(r["rto_seconds"]), figure(obj["rto_seconds"])});
    t.Add({"RPO (acknowledged writes lost, as time before the fault)", figure(r["rpo_seconds"]),
           figure(obj["rpo_seconds"])});
    t.Add({"records lost", std::to_string(r["loss"]["missing"].get<uint64_t>()) + " of " +
                               std::to_string(r["client"]["acknowledged"].get<uint64_t>()) + " acknowledged",
           ""});
    t.Add({"detection (the fault to the failover's start)", figure(r["detection_seconds"]), ""});
    for (const auto& s : r["failover"]["steps"]) {
      t.Add({"  step " + s["name"].get<std::string>() + " (" + s["state"].get<std::string>() + ")", figure(s["seconds"]),
             ""});
    }
    std::cout << t.Render();
    std::cout << "\nprimary now: " << r["failover"]["primary"].get<std::string>() << " (epoch "
              << r["failover"]["epoch"].get<uint64_t>() << "); "
              << (r["rto_seconds"].is_null() ? std::string("the client never recovered")
                  : r["client"]["recovered_at"].get<std::string>().empty()
                      ? std::string("the client never lost service")
                      : "the client recovered at " + r["client"]["recovered_at"].get<std::string>())
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
  Setup s_;
  DrillOptions o_;
  std::string dir_, plan_path_;
  sigset_t sigs_{};
  std::vector<Child> children_;
  std::set<pid_t> killed_;
  std::map<std::string, Address> dns_;
};

int RunDrillCommand(DrillOptions o) {
  if (o.scenario != "region-outage") {
    return Fail("unknown scenario '" + o.scenario + "'; the scenarios are: " + kScenarios, kExitInvalid);
  }
  auto duration = ParseDuration(o.duration);
  if (!duration.ok()) return Fail("--duration: " + duration.error().message(), kExitInvalid);
  auto warmup = ParseDuration(o.warmup);
  if (!warmup.ok()) return Fail("--warmup: " + warmup.error().message(), kExitInvalid);
  auto text = ReadFile(o.plan_file, plan::kMaxPlanBytes + 1);
  if (!text.ok()) return Fail("--plan: " + text.error().message(), kExitInvalid);
  auto loaded = plan::LoadPlanText(*text, o.plan_file);
  std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
  if (!loaded.plan) return kExitInvalid;
  auto setup = Choose(*loaded.plan, o);
  if (!setup.ok()) return Fail(setup.error());
  auto made = MakeDataDir(o.data_dir, "drill");
  if (!made.ok()) return Fail(made.error());
  const std::string dir = *made;
  std::error_code ec;
  if (std::filesystem::exists(dir + "/" + loaded.plan->name + "-state.db", ec)) {
    return Fail("--data-dir " + dir + " holds an earlier run's state; give the drill a new directory", kExitInvalid);
  }
  std::string plan_path = dir + "/plan.yaml";
  if (auto s = WriteFileAtomic(plan_path, *text); !s.ok()) return Fail(s.error());
  Drill drill(*loaded.plan, *setup, o, dir, plan_path);
  return drill.Run(*duration, *warmup);
}

}  // namespace

void AddDrillCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("drill", "Prove the plan: make a fault on this machine and measure RTO and RPO");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand("run", "Run the plan's regions here, make SCENARIO's fault, measure, report");
  auto o = std::make_shared<DrillOptions>();
  cmd->add_option("scenario", o->scenario, std::string("What goes wrong: ") + kScenarios)->required();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--duration", o->duration,
                  "How long to wait for the volume's first full sync, and after the fault for recovery")
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "How long the client writes before the fault")->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "A new directory for the agents' state, logs and the report (default: a new /tmp/lifeboat-drill-*)");
  cmd->add_option("--record", o->record, "The failover A record the client writes through (default: the plan's only one)");
  cmd->add_option("--volume", o->volume, "The volume the sample application keeps records in (default: the only replicated one)");
  AddOutputFlag(*cmd, o->output);
  cmd->footer(
      "region-outage: starts an agent per region (each with its own DNS server on loopback) and the\n"
      "sample application (lifeboat app serve) on each endpoint of the record, in the volume's path\n"
      "of that region; a client writes a numbered record through the DNS name every 10ms; then every\n"
      "process of the primary region is killed. RTO runs from the first write after the fault that the\n"
      "old primary did not acknowledge to the next acknowledged one; RPO is how far before the fault\n"
      "the oldest acknowledged record that the new primary lacks was written. The data dir keeps\n"
      "drill.json, drill.html (the report, with a timeline) and attempts.jsonl.\n"
      "Exits 1 when the plan's objectives are missed, naming the figures; 130 on Ctrl-C.\n"
      "The plan must use the embedded store at its default place: a drill never touches a shared store.\n\n"
      "Examples:\n"
      "  lifeboat drill run region-outage --plan shop-local.yaml\n"
      "  lifeboat drill run region-outage --plan shop-local.yaml -o json | jq .rto_seconds");
  cmd->callback([&exit_code, o] { exit_code = RunDrillCommand(*o); });
}

}  // namespace lifeboat::cli
