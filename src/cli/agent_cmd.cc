// lifeboat agent --plan PLAN --region NAME
#include "cli/agent_cmd.h"
#include "cli/common.h"
#include "plan/load.h"

namespace lifeboat::cli {

void AddAgentCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("agent", "Run this region's part of the plan");
  struct Options {
    std::string plan_file, region, data_dir;
    std::vector<std::string> dns_listen, connect_to, proxy_listen;
  };
  auto o = std::make_shared<Options>();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--region", o->region, "The region this agent runs (a key of the plan's regions)")->required();
  cmd->add_option("--data-dir", o->data_dir, "State store and locks (default /var/lib/lifeboat/PLAN/REGION)");
  cmd->add_option("--dns-listen", o->dns_listen, "DNS address(es) for this agent instead of the plan's dns.listen");
  cmd->add_option("--proxy-listen", o->proxy_listen,
                  "NAME=ADDR: the proxy listener NAME listens on ADDR instead of the plan's; repeatable")
      ->type_name("NAME=HOST:PORT");
  cmd->add_option("--connect-to", o->connect_to,
                  "PLAN_ADDR=ADDR: replicate to ADDR where the plan names PLAN_ADDR (a tunnel, a proxy); repeatable")
      ->type_name("HOST:PORT=HOST:PORT");
  cmd->footer(
      "Serves the admin API on the region's agent address: GET /healthz, /v1/status, /metrics.\n"
      "With a dns section in the plan, a primary or standby agent also health-checks every endpoint\n"
      "and serves the zone; routing controls are at /v1/routing-controls (see 'lifeboat traffic').\n"
      "With a proxy section, it also runs the L4 proxy's listeners (see 'lifeboat proxy serve --help').\n"
      "Stops cleanly on SIGTERM or SIGINT.\n\n"
      "Examples:\n"
      "  lifeboat agent --plan /etc/lifeboat/shop.yaml --region us-east\n"
      "  lifeboat agent --plan examples/local.yaml --region us-west --data-dir /tmp/us-west --log-format json\n"
      "  lifeboat agent --plan shop.yaml --region us-east --connect-to 10.1.0.5:7770=127.0.0.1:17770");
  cmd->callback([&exit_code, o] {
    auto plan = plan::LoadPlanOrError(o->plan_file);
    if (!plan.ok()) {
      exit_code = Fail(plan.error());
      return;
    }
    if (auto s = OverrideProxyListen(*plan, o->proxy_listen, "--proxy-listen"); !s.ok()) {
      exit_code = Fail(s.error());
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
    for (const auto& pair : o->connect_to) {
      auto eq = pair.find('=');
      auto from = ParseAddress(pair.substr(0, eq == std::string::npos ? 0 : eq));
      auto to = ParseAddress(eq == std::string::npos ? "" : pair.substr(eq + 1));
      if (eq == std::string::npos || !from.ok() || !to.ok()) {
        exit_code = Fail("--connect-to '" + pair + "': want PLAN_HOST:PORT=HOST:PORT", kExitInvalid);
        return;
      }
      options.connect_to[from->ToString()] = *to;
    }
    options.handle_signals = true;
    exit_code = RunAgent(std::move(*plan), options);
  });
}

int RunAgent(plan::Plan plan, const agent::AgentOptions& options, std::vector<agent::ServiceFactory> services) {
  auto a = agent::Agent::Create(std::move(plan), options, std::move(services));
  if (!a.ok()) return Fail(a.error());
  Status s = (*a)->Run();
  return s.ok() ? kExitOk : Fail(s.error().message(), kExitFailure);
}

}  // namespace lifeboat::cli
