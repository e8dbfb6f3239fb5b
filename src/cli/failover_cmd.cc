// lifeboat failover --to REGION [--planned]: a manual failover through an
// agent's /v1/failover, followed step by step until the run ends.
// lifeboat failback: the old primary resyncs from the current one, then a
// planned failover moves everything back.
#include <unistd.h>

#include <chrono>
#include <map>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/agent_api.h"
#include "cli/common.h"
#include "core/clock.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

struct FailoverOptions {
  std::string plan_file, to, token, output = "table";
  bool force = false, yes = false, no_wait = false, planned = false;
  int timeout_seconds = 300;
};

Result<std::string> Token(const FailoverOptions& o) {
  std::string token = AdminToken(o.token);
  if (token.empty()) return InvalidArgument("this needs the admin token: --token or LIFEBOAT_TOKEN");
  return token;
}

// Asks for confirmation at a terminal; elsewhere only --yes confirms.
Status Confirm(const FailoverOptions& o, const std::string& question) {
  if (o.yes) return Ok();
  if (!::isatty(STDIN_FILENO)) return InvalidArgument(question + " Confirm with --yes when not at a terminal.");
  std::cout << question << " [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "y" && answer != "Y" && answer != "yes") return Aborted("not confirmed; nothing was changed");
  return Ok();
}

std::string Who() {
  const char* user = std::getenv("USER");
  return std::string(user ? user : "unknown") + "@" + Hostname();
}

// Asks the agents in turn to fail over; follows the run it accepted until it
// ends (unless --no-wait). The exit code.
int RequestAndFollow(const plan::Plan& plan, const FailoverOptions& o, const std::string& token) {
  auto accepted = RequestFailover(plan, {o.to, Who(), token, o.planned, o.force},
                                  [](const std::string& line) { std::cerr << line << "\n"; });
  if (!accepted.ok()) return Fail(accepted.error());
  const plan::Region* agent = accepted->agent;
  uint64_t epoch = accepted->epoch;
  if (!Structured(o.output)) {
    std::cout << (o.planned ? "planned failover from " : "failover from ") << accepted->from << " to " << o.to
              << " (epoch " << epoch << ") accepted by " << agent->name << "'s agent\n";
  }
  if (o.no_wait) return kExitOk;

  // Follow the run in the agent's status until it ends.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_seconds);
  std::map<std::string, std::string> printed;  // step -> state last printed
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    auto status = GetAgentJson(*agent, "/v1/status");
    if (!status.ok() || !status->contains("failover")) continue;
    const Json& f = (*status)["failover"];
    auto req = (*status)["services"].value("failover", Json::object()).value("last_request", Json());
    if (req.is_object() && req.value("state", "") == "refused" && req.value("to", "") == o.to) {
      return Fail("the failover was refused: " + req.value("error", std::string("unknown reason")));
    }
    if (!f.contains("run") || !f["run"].is_object() || f["run"].value("epoch", uint64_t{0}) != epoch) continue;
    const Json& run = f["run"];
    if (!Structured(o.output)) {
      for (const auto& st : run["steps"]) {
        std::string name = st.value("name", ""), state = st.value("state", "");
        if (state == "pending" || printed[name] == state) continue;
        printed[name] = state;
        std::cout << "  " << name << ": " << state;
        if (state != "running" && !st.value("output", "").empty()) std::cout << ": " << st.value("output", "");
        std::cout << "\n" << std::flush;
      }
    }
    std::string state = run.value("state", "");
    if (state == "running") continue;
    if (Structured(o.output)) PrintDocument(run, o.output);
    if (state == "done") {
      if (!Structured(o.output)) std::cout << o.to << " is primary at epoch " << epoch << "\n";
      return kExitOk;
    }
    return Fail("the failover failed; see `lifeboat status` and the agents' logs");
  }
  return Fail("the failover did not end within " + std::to_string(o.timeout_seconds) +
              " s; it goes on in the agents: follow it with `lifeboat status`");
}

int Failover(const FailoverOptions& o) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  auto region = plan->RequireRegion(o.to);
  if (!region.ok()) return Fail(region.error());
  if (!(*region)->serves()) return Fail("region '" + o.to + "' is a witness; it cannot become primary", kExitInvalid);
  auto token = Token(o);
  if (!token.ok()) return Fail(token.error());
  std::string question =
      o.planned ? "Switch over to " + o.to + "? The current primary's traffic goes off, then " + o.to +
                      " takes over once every volume is in sync there."
                : "Fail over to " + o.to + "? The current primary is fenced (its traffic off, its replication "
                  "refused) and " + o.to + " takes the data and the traffic.";
  if (auto c = Confirm(o, question); !c.ok()) return Fail(c.error());
  return RequestAndFollow(*plan, o, *token);
}

// Failback: the region a failover left behind follows the primary again
// (its fenced copies are overwritten with the primary's data), catches up,
// and then becomes primary again by a planned failover.
int Failback(FailoverOptions o) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) return Fail(plan.error());
  auto token = Token(o);
  if (!token.ok()) return Fail(token.error());

  // Who is primary, and who was, from the first agent that answers.
  Json failover;
  for (const auto& r : plan->regions) {
    auto st = GetAgentJson(r, "/v1/status");
    if (st.ok() && st->contains("failover") && (*st)["failover"].value("primary", Json()).is_string()) {
      failover = (*st)["failover"];
      break;
    }
  }
  if (failover.is_null()) return Fail("no agent of the plan answered; nothing was changed");
  std::string primary = failover["primary"];
  uint64_t epoch = failover.value("epoch", uint64_t{0});
  if (o.to.empty()) {
    const Json& run = failover.value("run", Json());
    if (!run.is_object() || run.value("to", "") != primary) {
      return Fail("no failover to " + primary + " is recorded; name the region to fail back to with --to", kExitInvalid);
    }
    o.to = run.value("from", "");
  }
  auto back = plan->RequireRegion(o.to);
  if (!back.ok()) return Fail(back.error());
  if (o.to == primary) return Fail(o.to + " is already the primary (epoch " + std::to_string(epoch) + ")", kExitInvalid);
  const plan::Region* source = plan->FindRegion(primary);
  if (source == nullptr) return Fail("the store names " + primary + " as primary, and the plan has no such region");
  if (auto c = Confirm(o, "Fail back to " + o.to + "? Its copies are overwritten with " + primary +
                              "'s data (what only it held since epoch " + std::to_string(epoch) +
                              " began is lost), then traffic and data move to it by a planned failover.");
      !c.ok()) {
    return Fail(c.error());
  }

  // 1. Every copy at the old primary follows the current primary.
  auto say = [&o](const std::string& line) {
    if (!Structured(o.output)) std::cout << line << "\n" << std::flush;
  };
  auto names = FollowPrimary(**back, primary, epoch, *token, say);
  if (!names.ok()) return Fail(names.error());

  // 2. Until every copy has caught up: its stream made its full pass. The
  // planned failover then waits for the last changes with traffic off.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_seconds);
  auto last_print = std::chrono::steady_clock::now();
  for (const auto& name : *names) {
    for (;;) {
      AgentJson target = StreamTo(*source, name, o.to);
      if (StreamCaughtUp(target)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        return Fail(o.to + " did not catch up on " + name + " within " + std::to_string(o.timeout_seconds) +
                    " s; it goes on replicating: run failback again when `lifeboat replicate status` shows it streaming");
      }
      if (std::chrono::steady_clock::now() - last_print > 2s) {
        last_print = std::chrono::steady_clock::now();
        say(name + ": catching up" +
            (target.is_object() ? ", " + std::to_string(target.value("pending_bytes", uint64_t{0})) + " bytes pending"
                                : std::string(" (not connected yet)")));
      }
      std::this_thread::sleep_for(200ms);
    }
    say(name + ": " + o.to + " has caught up with " + primary);
  }

  // 3. A planned failover back.
  o.planned = true;
  o.force = false;
  return RequestAndFollow(*plan, o, *token);
}

}  // namespace

void AddFailoverCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<FailoverOptions>();
  auto* cmd = app.add_subcommand("failover", "Make another region the primary now (manual failover)");
  cmd->add_option("--to", o->to, "The region to make primary")->required();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--token", o->token, "Admin token (default: LIFEBOAT_TOKEN)");
  cmd->add_flag("--planned", o->planned,
                "Switch the current primary's traffic off and wait until every volume is in sync at the target "
                "before moving (RPO 0); the old primary then follows the new one");
  cmd->add_flag("--force", o->force,
                "Fail over even when the target looks unfit: no view from its agent, a fenced (stale) copy, or its "
                "endpoints failing in most regions");
  cmd->add_flag("--yes,-y", o->yes, "Do not ask for confirmation");
  cmd->add_flag("--no-wait", o->no_wait, "Return once an agent has accepted the failover");
  cmd->add_option("--timeout", o->timeout_seconds, "Seconds to follow the run before giving up following it")
      ->check(CLI::PositiveNumber);
  AddOutputFlag(*cmd, o->output);
  cmd->footer(
      "The run (fence, promote, hooks, switch-traffic, verify: failover.steps) is driven by an agent and\n"
      "recorded in the state store; if that agent dies, another resumes it at the same step.\n\n"
      "Examples:\n  LIFEBOAT_TOKEN=... lifeboat failover --to us-west --plan shop.yaml --yes\n"
      "  LIFEBOAT_TOKEN=... lifeboat failover --to us-west --planned --plan shop.yaml   # RPO 0");
  cmd->callback([&exit_code, o] { exit_code = Failover(*o); });

  auto b = std::make_shared<FailoverOptions>();
  auto* fb = app.add_subcommand("failback", "Bring the primary back to the region a failover left: resync, then switch");
  fb->add_option("--to", b->to, "The region to fail back to (default: where the last failover came from)");
  AddPlanFlag(*fb, b->plan_file);
  fb->add_option("--token", b->token, "Admin token (default: LIFEBOAT_TOKEN)");
  fb->add_flag("--yes,-y", b->yes, "Do not ask for confirmation");
  fb->add_option("--timeout", b->timeout_seconds, "Seconds to wait for the resync, and then to follow the switch")
      ->check(CLI::PositiveNumber);
  AddOutputFlag(*fb, b->output);
  fb->footer(
      "1. the old primary's volume copies follow the current primary (what only they held is overwritten);\n"
      "2. waits until every copy is in sync; 3. a planned failover back (RPO 0).\n\n"
      "Example:\n  LIFEBOAT_TOKEN=... lifeboat failback --plan shop.yaml --yes");
  fb->callback([&exit_code, b] { exit_code = Failback(*b); });
}

}  // namespace lifeboat::cli
