// lifeboat agent --plan PLAN --region NAME
#include "agent/agent.h"
#include "cli/common.h"
#include "plan/load.h"

namespace lifeboat::cli {

void AddAgentCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("agent", "Run this region's part of the plan");
  struct Options {
    std::string plan_file, region, data_dir;
    std::vector<std::string> dns_listen;
  };
  auto o = std::make_shared<Options>();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--region", o->region, "The region this agent runs (a key of the plan's regions)")->required();
  cmd->add_option("--data-dir", o->data_dir, "State store and locks (default /var/lib/lifeboat/PLAN/REGION)");
  cmd->add_option("--dns-listen", o->dns_listen, "DNS address(es) for this agent instead of the plan's dns.listen");
  cmd->footer(
      "Serves the admin API on the region's agent address: GET /healthz, /v1/status, /metrics.\n"
      "With a dns section in the plan, a primary or standby agent also health-checks every endpoint\n"
      "and serves the zone; routing controls are at /v1/routing-controls (see 'lifeboat traffic').\n"
      "Stops cleanly on SIGTERM or SIGINT.\n\n"
      "Examples:\n"
      "  lifeboat agent --plan /etc/lifeboat/shop.yaml --region us-east\n"
      "  lifeboat agent --plan examples/local.yaml --region us-west --data-dir /tmp/us-west --log-format json");
  cmd->callback([&exit_code, o] {
    auto plan = plan::LoadPlanOrError(o->plan_file);
    if (!plan.ok()) {
      exit_code = Fail(plan.error());
      return;
    }
    agent::AgentOptions options;
    options.region = o->region;
    options.data_dir = o->data_dir;
    auto dns_listen = ParseAddresses(o->dns_listen, "--dns-listen");
    if (!dns_listen.ok()) {
      exit_code = Fail(dns_listen.error());
      return;
    }
    options.dns_listen = std::move(*dns_listen);
    options.handle_signals = true;
    auto a = agent::Agent::Create(std::move(*plan), options);
    if (!a.ok()) {
      exit_code = Fail(a.error());
      return;
    }
    Status s = (*a)->Run();
    if (!s.ok()) exit_code = Fail(s.error().message(), kExitFailure);
  });
}

}  // namespace lifeboat::cli
