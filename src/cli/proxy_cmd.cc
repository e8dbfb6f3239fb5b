// lifeboat proxy serve: the L4 proxy alone, beside (or instead of) a region's agent.
#include <iostream>

#include "cli/agent_cmd.h"
#include "agent/services/proxy/proxy_service.h"
#include "agent/services/traffic/traffic_service.h"
#include "cli/common.h"
#include "plan/load.h"

namespace lifeboat::cli {

Status OverrideProxyListen(plan::Plan& plan, const std::vector<std::string>& pairs, const std::string& flag) {
  for (const auto& pair : pairs) {
    auto eq = pair.find('=');
    auto addr = ParseAddress(eq == std::string::npos ? "" : pair.substr(eq + 1));
    if (eq == std::string::npos || !addr.ok()) {
      return InvalidArgument(flag + " '" + pair + "': want LISTENER=HOST:PORT");
    }
    std::string name = pair.substr(0, eq);
    plan::ProxyListener* found = nullptr;
    std::string names;
    if (plan.proxy) {
      for (auto& l : plan.proxy->listeners) {
        if (l.name == name) found = &l;
        names += (names.empty() ? "" : ", ") + l.name;
      }
    }
    if (found == nullptr) {
      return InvalidArgument(flag + " '" + pair + "': the plan has no proxy listener '" + name + "'" +
                             (names.empty() ? " (it has no proxy section)" : " (it has: " + names + ")"));
    }
    found->listen = *addr;
  }
  return Ok();
}

void AddProxyCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("proxy", "The L4 proxy: a fixed entry address that follows the failover at once");
  group->require_subcommand(1);

  auto* serve = group->add_subcommand("serve", "Run the plan's proxy listeners without the rest of an agent");
  struct Options {
    std::string plan_file, region, data_dir, admin = "127.0.0.1:0";
    std::vector<std::string> listen;
    int threads = 0;
  };
  auto o = std::make_shared<Options>();
  AddPlanFlag(*serve, o->plan_file);
  serve->add_option("--region", o->region,
                    "The region this proxy runs in: its health checks are this region's view (a primary or standby)")
      ->required();
  serve->add_option("--admin", o->admin, "Address of its admin API (/healthz, /v1/status, /metrics)")
      ->capture_default_str();
  serve->add_option("--data-dir", o->data_dir,
                    "Its lock; the embedded state store is the parent's, shared with the agents there "
                    "(default /var/lib/lifeboat/PLAN/proxy-REGION)");
  serve->add_option("--listen", o->listen, "LISTENER=ADDR: listen on ADDR instead of the plan's; repeatable")
      ->type_name("NAME=HOST:PORT");
  serve->add_option("--threads", o->threads, "Event loops (default: the plan's proxy.threads, else one per core)");
  serve->footer(
      "Forwards each listener of the plan's proxy section to the endpoints its policy chooses:\n"
      "  failover  the failover epoch's primary region's up endpoints, then the next region's\n"
      "  weighted  among the up endpoints by weight\n"
      "  nearest   the up endpoint with the lowest measured connect time\n"
      "'Up' is the same as for the DNS answers: healthy by its check and its region switched on\n"
      "(lifeboat traffic). The routing controls and the epoch come from the plan's state store;\n"
      "the health checks are this proxy's own. On a change, new connections move at once,\n"
      "connections to a failing endpoint are reset and those to a healthy one that is no longer\n"
      "chosen are drained (closed after the listener's drain time).\n"
      "An agent whose plan has a proxy section runs the same listeners itself; use this where the\n"
      "entry point runs on other machines than the agents. Stops cleanly on SIGTERM or SIGINT.\n\n"
      "Examples:\n"
      "  lifeboat proxy serve --plan /etc/lifeboat/shop.yaml --region us-east --admin 127.0.0.1:7711\n"
      "  lifeboat proxy serve --plan shop.yaml --region us-west --listen web=0.0.0.0:8443 --threads 4");
  serve->callback([&exit_code, o] {
    auto plan = plan::LoadPlanOrError(o->plan_file);
    if (!plan.ok()) {
      exit_code = Fail(plan.error());
      return;
    }
    if (!plan->proxy) {
      exit_code = Fail(plan->source + " has no proxy section: nothing to serve (see docs/operations.md, 'proxy')",
                       kExitInvalid);
      return;
    }
    auto region = plan->RequireRegion(o->region);
    if (!region.ok()) {
      exit_code = Fail(region.error());
      return;
    }
    if (!(*region)->serves()) {
      exit_code = Fail("region " + o->region + " is a witness: it checks no endpoint; run the proxy with a primary "
                       "or standby region",
                       kExitInvalid);
      return;
    }
    if (auto s = OverrideProxyListen(*plan, o->listen, "--listen"); !s.ok()) {
      exit_code = Fail(s.error());
      return;
    }
    if (o->threads < 0) {
      exit_code = Fail("--threads: want 0 or more", kExitInvalid);
      return;
    }
    if (o->threads > 0) plan->proxy->threads = o->threads;
    auto admin = ParseAddress(o->admin);
    if (!admin.ok()) {
      exit_code = Fail(admin.error().Wrap("--admin"));
      return;
    }
    agent::AgentOptions options;
    options.region = o->region;
    options.data_dir = o->data_dir.empty() ? "/var/lib/lifeboat/" + plan->name + "/proxy-" + o->region : o->data_dir;
    options.admin_listen = *admin;
    options.proxy_only = true;
    options.handle_signals = true;
    exit_code = RunAgent(std::move(*plan), options, {agent::MakeTrafficService, agent::MakeProxyService});
  });
}

}  // namespace lifeboat::cli
