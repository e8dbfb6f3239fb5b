// lifeboat replicate status | verify | promote | reverse
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/common.h"
#include "core/units.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;  // keys print in the order written

struct ReplicateOptions {
  std::string plan_file, volume, region, output = "table", token;
  bool wait = false;
  std::string timeout = "1h";
};

struct AgentView {
  std::string region;
  Json volume;  // this agent's view of the volume, or null
  std::string error;
};

// Asks every agent holding a copy of `volume` (all volumes when empty).
std::vector<AgentView> Collect(const plan::Plan& plan, const std::string& volume) {
  std::vector<AgentView> out;
  for (const auto& r : plan.regions) {
    if (!r.serves()) continue;
    auto res = net::Fetch("GET", net::BaseUrl(r.agent) + "/v1/replication", 3s);
    if (!res.ok() || res->status != 200) {
      std::string why = !res.ok()             ? res.error().message()
                        : res->status == 404 ? "answers, but replicates no volume (another plan, or not an agent?)"
                                             : "HTTP " + std::to_string(res->status);
      out.push_back({r.name, nullptr, why});
      continue;
    }
    auto j = Json::parse(res->body, nullptr, false);
    if (j.is_discarded()) continue;
    for (auto& v : j["volumes"]) {
      if (volume.empty() || v["volume"] == volume) out.push_back({r.name, v, ""});
    }
  }
  return out;
}

std::string Bytes(uint64_t n) { return HumanBytes(n); }

// Two regions that both call themselves the source of a volume (after a
// promote, until the old source is reversed) is the moment an operator needs
// a warning: the targets follow the newer epoch, the older source's changes
// go nowhere.
void WarnOfSplitSources(const std::vector<AgentView>& views) {
  std::map<std::string, std::vector<std::pair<uint64_t, std::string>>> sources;  // volume -> (epoch, region)
  for (const auto& a : views) {
    if (a.volume.is_null() || a.volume["role"] != "source") continue;
    sources[a.volume["volume"].get<std::string>()].emplace_back(a.volume["epoch"].get<uint64_t>(), a.region);
  }
  for (auto& [volume, list] : sources) {
    if (list.size() < 2) continue;
    std::sort(list.begin(), list.end());
    std::string names;
    for (const auto& [epoch, region] : list) {
      names += (names.empty() ? "" : ", ") + region + " (epoch " + std::to_string(epoch) + ")";
    }
    std::cerr << "warning: volume " << volume << " has " << list.size() << " sources: " << names << "; "
              << list.back().second << " is the current one. Make the others follow it: lifeboat replicate reverse "
              << volume << " --region " << list.front().second << " --plan ...\n";
  }
}

std::string ProgressLine(const Json& t) {
  const auto& p = t["progress"];
  uint64_t fd = p["files_done"], ft = p["files_total"], bd = p["bytes_done"], bt = p["bytes_total"];
  double rate = t["rate_bytes_per_second"], eta = p["eta_seconds"].is_number() ? p["eta_seconds"].get<double>() : -1;
  std::string line = t["target"].get<std::string>() + ": " + t["state"].get<std::string>() + "  files " +
                     std::to_string(fd) + "/" + std::to_string(ft) + "  " + Bytes(bd) + "/" + Bytes(bt) + "  " +
                     Bytes(static_cast<uint64_t>(rate)) + "/s";
  if (eta >= 0) line += "  ETA " + ShortDuration(eta);
  return line;
}

int Status(const ReplicateOptions& o) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  if (!o.volume.empty() && plan->FindVolume(o.volume) == nullptr) {
    return Fail("the plan has no volume '" + o.volume + "'", kExitInvalid);
  }
  if (std::none_of(plan->volumes.begin(), plan->volumes.end(), [](const plan::Volume& v) {
        return v.replication.mode == plan::ReplicationMode::kContinuous;
      })) {
    return Fail("the plan has no volume with continuous replication (volumes.NAME.replication.mode)", kExitInvalid);
  }
  auto timeout = ParseDuration(o.timeout);
  if (!timeout.ok()) return Fail(timeout.error().Wrap("--timeout").message(), kExitInvalid);
  auto deadline = std::chrono::steady_clock::now() + *timeout;
  bool tty = ::isatty(1);
  while (true) {
    auto views = Collect(*plan, o.volume);
    if (std::none_of(views.begin(), views.end(), [](const AgentView& a) { return a.error.empty(); })) {
      for (const auto& a : views) std::cerr << a.region << ": " << a.error << "\n";
      return Fail("no agent answered for the plan's replicated volumes");
    }
    bool all_in_sync = true, any_source = false;
    for (const auto& a : views) {
      if (a.volume.is_null()) continue;
      if (a.volume["role"] == "source") {
        any_source = true;
        for (const auto& t : a.volume["targets"]) all_in_sync = all_in_sync && t["in_sync"].get<bool>();
      }
    }
    bool done = !o.wait || (any_source && all_in_sync);
    if (o.wait && !done) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "\n";
        return Fail("not in sync after " + o.timeout);
      }
      if (tty) {
        std::string line;
        for (const auto& a : views) {
          if (a.volume.is_null() || a.volume["role"] != "source") continue;
          for (const auto& t : a.volume["targets"]) line += ProgressLine(t) + "   ";
        }
        std::cerr << "\r\033[K" << line << std::flush;
      }
      std::this_thread::sleep_for(200ms);
      continue;
    }
    if (o.wait && tty) std::cerr << "\r\033[K";
    WarnOfSplitSources(views);
    if (Structured(o.output)) {
      Json out = Json::array();
      for (const auto& a : views) {
        out.push_back(a.error.empty() ? Json{{"region", a.region}, {"volume", a.volume}}
                                      : Json{{"region", a.region}, {"error", a.error}});
      }
      PrintDocument(out, o.output);
      return kExitOk;
    }
    Table t({"VOLUME", "REGION", "ROLE", "EPOCH", "PEER", "STATE", "RPO", "PENDING", "SENT/RECEIVED", "VERIFIED"});
    for (const auto& a : views) {
      if (!a.error.empty()) {
        t.Add({o.volume.empty() ? "-" : o.volume, a.region, "?", "", "", "unreachable: " + a.error, "", "", "", ""});
        continue;
      }
      const auto& v = a.volume;
      std::string name = v["volume"], role = v["role"], epoch = std::to_string(v["epoch"].get<uint64_t>());
      if (v.contains("problem")) {
        t.Add({name, a.region, role, epoch, "", "not replicating: " + v["problem"].get<std::string>(), "", "", "", ""});
        continue;
      }
      if (role == "source") {
        for (const auto& s : v["targets"]) {
          std::string state = s["state"];
          if (s["last_error"].is_string()) state += " (" + s["last_error"].get<std::string>() + ")";
          const auto& diffs = s["last_verify_differences"];
          t.Add({name, a.region, role, epoch, "-> " + s["target"].get<std::string>(), state,
                 ShortDuration(s["rpo_seconds"].get<double>()),
                 std::to_string(s["pending_files"].get<uint64_t>()) + " files",
                 Bytes(s["bytes_sent"].get<uint64_t>()),
                 diffs.is_number() ? std::to_string(diffs.get<int64_t>()) + " repaired" : "never"});
        }
      } else {
        const auto& r = v["receiver"];
        bool connected = r.is_object() && r["connected"].get<bool>();
        t.Add({name, a.region, role, epoch, "<- " + v["source"].get<std::string>(),
               connected ? "receiving" : "waiting for the source", "", "",
               r.is_object() ? Bytes(r["bytes_written"].get<uint64_t>()) : "", ""});
      }
    }
    std::cout << t.Render();
    return kExitOk;
  }
}

int Verify(const ReplicateOptions& o) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  if (plan->FindVolume(o.volume) == nullptr) return Fail("the plan has no volume '" + o.volume + "'", kExitInvalid);
  const plan::Region* source = nullptr;
  for (const auto& a : Collect(*plan, o.volume)) {
    if (!a.volume.is_null() && a.volume["role"] == "source") source = plan->FindRegion(a.region);
  }
  if (source == nullptr) return Fail("no agent answered as the source of '" + o.volume + "'");
  std::string token = AdminToken(o.token);
  if (token.empty()) return Fail("verify needs a token: --token or LIFEBOAT_TOKEN", kExitInvalid);
  std::string url = net::BaseUrl(source->agent) + "/v1/replication/" + o.volume + "/verify";
  auto res = net::Fetch("POST", url, 5s, "", {"Authorization: Bearer " + token});
  if (!res.ok()) return Fail(res.error());
  if (res->status != 202) return Fail("agent " + source->name + " refused (HTTP " + std::to_string(res->status) + "): " + res->body);
  if (::isatty(2)) std::cerr << "verifying " << o.volume << " from " << source->name << " (hashing both sides)..." << std::flush;
  Json j;
  while (true) {
    std::this_thread::sleep_for(200ms);
    auto r = net::Fetch("GET", url, 5s);
    if (!r.ok()) return Fail(r.error());
    j = Json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["state"] != "running") break;
  }
  if (::isatty(2)) std::cerr << "\r\033[K";
  size_t total = 0;
  bool failed = j.is_discarded() || j["state"] != "done";
  if (Structured(o.output)) {
    PrintDocument(j, o.output);
    for (const auto& t : j["result"]) total += t.contains("differences") ? t["differences"].size() : 0;
    return failed || total > 0 ? kExitFailure : kExitOk;
  }
  for (const auto& t : j["result"]) {
    std::string target = t["target"];
    if (t.contains("error")) {
      std::cout << target << ": could not verify: " << t["error"].get<std::string>() << "\n";
      continue;
    }
    const auto& d = t["differences"];
    total += d.size();
    for (const auto& x : d) {
      std::cout << target << "  " << x["kind"].get<std::string>() << "  " << x["path"].get<std::string>() << "  ("
                << x["detail"].get<std::string>() << ")\n";
    }
    std::cout << target << ": " << d.size() << " difference(s) in " << ShortDuration(t["duration_seconds"].get<double>()) << "\n";
  }
  return failed || total > 0 ? kExitFailure : kExitOk;
}

// Asks the region's agent for a role change (promote, reverse), then follows
// it to its end: the agent runs it on a worker and reports its step in the
// volume's "change". Prints each step on stderr and the outcome on stdout.
int RunChange(const plan::Region& r, const ReplicateOptions& o, const std::string& action, const std::string& token,
              const std::string& body) {
  auto timeout = ParseDuration(o.timeout);
  if (!timeout.ok()) return Fail(timeout.error().Wrap("--timeout").message(), kExitInvalid);
  std::string base = net::BaseUrl(r.agent) + "/v1/replication/" + o.volume;
  auto res = net::Fetch("POST", base + "/" + action, 10s, body,
                        {"Authorization: Bearer " + token, "Content-Type: application/json"});
  if (!res.ok()) return Fail(res.error().Wrap("agent " + r.name));
  if (res->status != 202) {
    auto j = Json::parse(res->body, nullptr, false);
    std::string msg = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : res->body;
    return Fail(r.name + " refused (HTTP " + std::to_string(res->status) + "): " + msg);
  }
  auto deadline = std::chrono::steady_clock::now() + *timeout;
  std::string last_step;
  for (;;) {
    auto got = net::Fetch("GET", base, 5s);
    Json v = got.ok() && got->status == 200 ? Json::parse(got->body, nullptr, false) : Json();
    if (v.is_object() && v["change"].is_object() && v["change"]["action"] == action) {
      const Json& c = v["change"];
      std::string step = c["step"];
      if (step != last_step && c["state"] == "running") std::cerr << r.name << ": " << action << " " << o.volume << ": " << step << "\n";
      last_step = step;
      if (c["state"] == "failed") {
        return Fail(r.name + ": " + action + " of " + o.volume + " failed while " + step + ": " +
                    c["error"].get<std::string>());
      }
      if (c["state"] == "done") {
        if (Structured(o.output)) {
          PrintDocument(v, o.output);
        } else if (v["role"] == "source") {
          std::cout << r.name << ": now the source of " << o.volume << " (epoch " << v["epoch"] << ")\n";
        } else {
          std::cout << r.name << ": now follows " << v["source"].get<std::string>() << " for " << o.volume
                    << " (epoch " << v["epoch"] << ")\n";
        }
        return kExitOk;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail(r.name + ": the " + action + " of " + o.volume + " did not finish within " + o.timeout +
                  " (last step: " + (last_step.empty() ? "none reported" : last_step) +
                  "); see lifeboat replicate status");
    }
    std::this_thread::sleep_for(100ms);
  }
}

// What promote and reverse share: the plan, the region holding a copy of the
// volume, and the token. Exits (with its code) in `exit_code` when it cannot.
struct Change {
  plan::Plan plan;
  const plan::Region* region = nullptr;
  std::string token;
};
std::optional<Change> PrepareChange(const ReplicateOptions& o, const std::string& verb, int& exit_code) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) {
    exit_code = Fail(plan.error());
    return std::nullopt;
  }
  const plan::Volume* v = plan->FindVolume(o.volume);
  if (v == nullptr) {
    exit_code = Fail("the plan has no volume '" + o.volume + "'", kExitInvalid);
    return std::nullopt;
  }
  if (plan->FindRegion(o.region) == nullptr || !v->path.count(o.region)) {
    exit_code = Fail("region '" + o.region + "' holds no copy of " + o.volume, kExitInvalid);
    return std::nullopt;
  }
  std::string token = AdminToken(o.token);
  if (token.empty()) {
    exit_code = Fail(verb + " needs a token: --token or LIFEBOAT_TOKEN", kExitInvalid);
    return std::nullopt;
  }
  Change c{std::move(*plan), nullptr, std::move(token)};
  c.region = c.plan.FindRegion(o.region);  // points into c.plan, after the move
  return c;
}

int Promote(const ReplicateOptions& o) {
  int exit_code = kExitOk;
  auto c = PrepareChange(o, "promote", exit_code);
  if (!c) return exit_code;
  return RunChange(*c->region, o, "promote", c->token, "{}");
}

int Reverse(const ReplicateOptions& o) {
  int exit_code = kExitOk;
  auto c = PrepareChange(o, "reverse", exit_code);
  if (!c) return exit_code;
  // The new source: the source with the highest epoch other than this region.
  std::string source;
  uint64_t epoch = 0;
  for (const auto& a : Collect(c->plan, o.volume)) {
    if (a.volume.is_null() || a.region == o.region || a.volume["role"] != "source") continue;
    if (a.volume["epoch"].get<uint64_t>() > epoch) {
      epoch = a.volume["epoch"];
      source = a.region;
    }
  }
  if (source.empty()) return Fail("no other region answered as a source of '" + o.volume + "'; promote one first");
  return RunChange(*c->region, o, "reverse", c->token, Json{{"source", source}, {"epoch", epoch}}.dump());
}

}  // namespace

void AddReplicateCommands(CLI::App& app, int& exit_code) {
  auto* rep = app.add_subcommand("replicate", "Continuous volume replication: status, verify, promote, reverse");
  rep->require_subcommand(1);
  auto o = std::make_shared<ReplicateOptions>();
  auto* status = rep->add_subcommand("status", "Each volume's role, lag (RPO), pending changes and progress");
  status->add_option("VOLUME", o->volume, "Only this volume");
  AddPlanFlag(*status, o->plan_file);
  status->add_flag("--wait", o->wait, "Wait until every target is in sync, showing progress on a terminal");
  status->add_option("--timeout", o->timeout, "With --wait: give up after this long (default 1h)");
  AddOutputFlag(*status, o->output);
  status->footer("Examples:\n  lifeboat replicate status --plan shop.yaml\n"
                 "  lifeboat replicate status uploads --plan shop.yaml --wait   # initial sync progress, then the table\n");
  status->callback([&exit_code, o] { exit_code = Status(*o); });

  auto* verify = rep->add_subcommand("verify", "Compare source and targets by content; list every difference");
  verify->add_option("VOLUME", o->volume, "The volume")->required();
  AddPlanFlag(*verify, o->plan_file);
  verify->add_option("--token", o->token, "Bearer token (default: LIFEBOAT_TOKEN)");
  AddOutputFlag(*verify, o->output);
  verify->footer("Runs at the source's agent over a read-only session; hashes every file on both sides.\n"
                 "Kinds: missing, extra, type, content, metadata, link. Exit 1 when there is any difference.\n\n"
                 "Example:\n  lifeboat replicate verify uploads --plan shop.yaml\n");
  verify->callback([&exit_code, o] { exit_code = Verify(*o); });

  auto* promote = rep->add_subcommand("promote", "Make a target region the volume's source (failover)");
  promote->add_option("VOLUME", o->volume, "The volume")->required();
  promote->add_option("--region", o->region, "The region to promote")->required();
  AddPlanFlag(*promote, o->plan_file);
  promote->add_option("--token", o->token, "Bearer token (default: LIFEBOAT_TOKEN)");
  promote->add_option("--timeout", o->timeout, "Give up waiting for the agent after this long (default 1h)");
  AddOutputFlag(*promote, o->output);
  promote->footer("The region stops receiving and starts sending to the others, under a new epoch. The agent\n"
                  "does it in the background; this command shows its steps and waits for the outcome.\n\n"
                  "Example:\n  LIFEBOAT_TOKEN=... lifeboat replicate promote uploads --region us-west --plan shop.yaml\n");
  promote->callback([&exit_code, o] { exit_code = Promote(*o); });

  auto* reverse = rep->add_subcommand("reverse", "Make a former source follow the new one (failback)");
  reverse->add_option("VOLUME", o->volume, "The volume")->required();
  reverse->add_option("--region", o->region, "The former source, which becomes a target")->required();
  AddPlanFlag(*reverse, o->plan_file);
  reverse->add_option("--token", o->token, "Bearer token (default: LIFEBOAT_TOKEN)");
  reverse->add_option("--timeout", o->timeout, "Give up waiting for the agent after this long (default 1h)");
  AddOutputFlag(*reverse, o->output);
  reverse->footer("The region is resynced from the current source, sending only differing chunks; its own\n"
                  "changes since the promotion are replaced by the source's.\n\n"
                  "Example:\n  LIFEBOAT_TOKEN=... lifeboat replicate reverse uploads --region us-east --plan shop.yaml\n");
  reverse->callback([&exit_code, o] { exit_code = Reverse(*o); });
}

}  // namespace lifeboat::cli
