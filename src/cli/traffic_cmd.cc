// lifeboat traffic show | on REGION | off REGION
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

#include "cli/common.h"
#include "core/clock.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;

struct TrafficOptions {
  std::string plan_file, output = "table", token, region;
  bool force = false;
};

// The agents that hold routing controls: those of serving regions.
std::vector<const plan::Region*> ControlAgents(const plan::Plan& p) {
  std::vector<const plan::Region*> out;
  for (const auto& r : p.regions) {
    if (r.serves()) out.push_back(&r);
  }
  return out;
}

int Show(const TrafficOptions& o) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  nlohmann::ordered_json all = nlohmann::ordered_json::object();
  std::optional<nlohmann::ordered_json> first;
  bool disagree = false;
  for (const auto* r : ControlAgents(*plan)) {
    auto res = net::Fetch("GET", net::BaseUrl(r->agent) + "/v1/routing-controls", 2s);
    if (!res.ok() || res->status != 200) {
      all[r->name] = {{"error", res.ok() ? "HTTP " + std::to_string(res->status) : res.error().message()}};
      continue;
    }
    auto j = nlohmann::ordered_json::parse(res->body, nullptr, false);
    if (j.is_discarded()) continue;
    // Agents agree when every region is on in both or off in both; "by" and
    // "at" differ after every change (each agent records its own write).
    auto states = [](const nlohmann::ordered_json& view) {
      std::map<std::string, bool> on;
      if (view.contains("regions") && view["regions"].is_object()) {
        for (const auto& [name, c] : view["regions"].items()) on[name] = c.value("on", true);
      }
      return on;
    };
    if (!first) first = j;
    else if (states(j) != states(*first)) disagree = true;
    all[r->name] = j;
  }
  if (Structured(o.output)) {
    PrintDocument(nlohmann::ordered_json{{"agents", all}, {"agree", !disagree}}, o.output);
    return first ? kExitOk : kExitFailure;
  }
  if (!first) return Fail("no agent answered; is the plan's DNS running (lifeboat status --plan ...)?");
  Table t({"REGION", "STATE", "SET BY", "AT"});
  for (const auto& [name, c] : (*first)["regions"].items()) {
    t.Add({name, c["on"].get<bool>() ? "on" : "off", c.value("by", ""), c.value("at", "")});
  }
  std::cout << t.Render() << "safety: at least " << (*first)["min_on"].get<int>() << " region(s) on\n";
  for (const auto& [agent, j] : all.items()) {
    if (j.contains("error")) std::cout << "note: agent " << agent << " did not answer: " << j["error"].get<std::string>() << "\n";
  }
  if (disagree) std::cout << "warning: agents disagree; run 'lifeboat traffic show -o json' to see each one's view\n";
  return kExitOk;
}

int Switch(const TrafficOptions& o, bool on) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  auto region = plan->RequireRegion(o.region);
  if (!region.ok()) return Fail(region.error());
  if ((*region)->role == plan::Role::kWitness) {
    return Fail("region '" + o.region + "' is a witness; it serves no traffic to switch", kExitInvalid);
  }
  std::string token = AdminToken(o.token);
  if (token.empty()) return Fail("changing a routing control needs a token: --token or LIFEBOAT_TOKEN", kExitInvalid);
  const char* user = std::getenv("USER");
  nlohmann::json body = {{"on", on}, {"force", o.force}, {"by", std::string(user ? user : "unknown") + "@" + Hostname()}};
  int applied = 0, failed = 0;
  for (const auto* r : ControlAgents(*plan)) {
    auto res = net::Fetch("PUT", net::BaseUrl(r->agent) + "/v1/routing-controls/" + o.region, 3s, body.dump(),
                          {"Authorization: Bearer " + token, "Content-Type: application/json"});
    if (!res.ok()) {
      std::cout << r->name << ": not reachable (" << res.error().message() << "); it keeps its old setting\n";
      continue;
    }
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    std::string msg = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : res->body;
    if (res->status == 200) {
      ++applied;
      std::cout << r->name << ": " << o.region << " switched " << (on ? "on" : "off") << "\n";
    } else {
      ++failed;
      std::cerr << r->name << ": refused (HTTP " << res->status << "): " << msg << "\n";
      if (res->status == 409 || res->status == 404 || res->status == 400) break;  // every agent answers alike
    }
  }
  if (failed > 0) return kExitFailure;
  if (applied == 0) return Fail("no agent answered; nothing was changed");
  return kExitOk;
}

}  // namespace

void AddTrafficCommands(CLI::App& app, int& exit_code) {
  auto* traffic = app.add_subcommand("traffic", "Routing controls: switch a region's traffic on or off");
  traffic->require_subcommand(1);
  auto o = std::make_shared<TrafficOptions>();
  auto* show = traffic->add_subcommand("show", "Each region's routing control");
  AddPlanFlag(*show, o->plan_file);
  AddOutputFlag(*show, o->output);
  show->footer("Example:\n  lifeboat traffic show --plan examples/shop.yaml");
  show->callback([&exit_code, o] { exit_code = Show(*o); });
  for (bool on : {true, false}) {
    auto* cmd = traffic->add_subcommand(on ? "on" : "off", on ? "Send traffic to a region again" : "Take traffic away from a region");
    cmd->add_option("REGION", o->region, "The region")->required();
    AddPlanFlag(*cmd, o->plan_file);
    cmd->add_option("--token", o->token, "Bearer token (default: LIFEBOAT_TOKEN)");
    if (!on) cmd->add_flag("--force", o->force, "Switch off even if the safety rule (routing_controls.safety.min_on) refuses");
    cmd->footer(std::string("Applied through every reachable primary and standby agent (/v1/routing-controls).\n\n") +
                "Example:\n  LIFEBOAT_TOKEN=... lifeboat traffic " + (on ? "on" : "off") + " us-east --plan shop.yaml");
    cmd->callback([&exit_code, o, on] { exit_code = Switch(*o, on); });
  }
}

}  // namespace lifeboat::cli
