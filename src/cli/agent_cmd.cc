// lifeboat agent --plan PLAN --region NAME
#include "cli/agent_cmd.h"

#include <cstdlib>

#include "agent/auth.h"
#include "agent/node_agent.h"
#include "cli/common.h"
#include "plan/load.h"

namespace lifeboat::cli {

namespace {

struct Options {
  std::string plan_file, region, data_dir;
  std::vector<std::string> dns_listen, connect_to, proxy_listen;
  bool node = false;
  std::string listen = "0.0.0.0:7790", kubelet_root = "/var/lib/kubelet", node_name;
  int max_jobs = 2;
};

int RunNodeAgent(const plan::Plan& plan, const Options& o) {
  if (!o.region.empty()) return Fail("--node and --region go apart: a node agent serves every region's cluster jobs", kExitInvalid);
  auto listen = ParseAddress(o.listen);
  if (!listen.ok()) return Fail("--listen: " + listen.error().message(), kExitInvalid);
  auto token = agent::LoadToken(plan);
  if (!token.ok()) return Fail(token.error());
  if (token->empty()) {
    return Fail("a node agent needs the admin token (LIFEBOAT_TOKEN or routing_controls.token_file): it writes into volumes",
                kExitInvalid);
  }
  agent::NodeAgentOptions options;
  options.listen = *listen;
  options.kubelet_root = o.kubelet_root;
  options.node_name = o.node_name;
  if (options.node_name.empty()) {
    if (const char* env = std::getenv("NODE_NAME"); env != nullptr) options.node_name = env;
  }
  options.token = *token;
  options.max_jobs = o.max_jobs;
  options.handle_signals = true;
  agent::NodeAgent node(plan, options);
  Status s = node.Run();
  return s.ok() ? kExitOk : Fail(s.error().message(), kExitFailure);
}

}  // namespace

void AddAgentCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("agent", "Run this region's part of the plan");
  auto o = std::make_shared<Options>();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--region", o->region, "The region this agent runs (a key of the plan's regions); not with --node");
  cmd->add_option("--data-dir", o->data_dir, "State store and locks (default /var/lib/lifeboat/PLAN/REGION)");
  cmd->add_option("--dns-listen", o->dns_listen, "DNS address(es) for this agent instead of the plan's dns.listen");
  cmd->add_option("--proxy-listen", o->proxy_listen,
                  "NAME=ADDR: the proxy listener NAME listens on ADDR instead of the plan's; repeatable")
      ->type_name("NAME=HOST:PORT");
  cmd->add_option("--connect-to", o->connect_to,
                  "PLAN_ADDR=ADDR: replicate to ADDR where the plan names PLAN_ADDR (a tunnel, a proxy); repeatable")
      ->type_name("HOST:PORT=HOST:PORT");
  auto* node = cmd->add_option_group("node agent", "One per Kubernetes node (a DaemonSet): volume files for cluster backups");
  node->add_flag("--node", o->node,
                 "Run as a node agent: back up and restore the files of the volumes pods on this node mount");
  node->add_option("--listen", o->listen, "The node agent's address (default 0.0.0.0:7790)")->type_name("HOST:PORT");
  node->add_option("--kubelet-root", o->kubelet_root, "The kubelet's directory, with pods/ (default /var/lib/kubelet)");
  node->add_option("--node-name", o->node_name, "This node's name, for status and logs (default $NODE_NAME)");
  node->add_option("--max-jobs", o->max_jobs, "Volume backups and restores run at once (default 2)")
      ->check(CLI::Range(1, 64));
  cmd->footer(
      "Serves the admin API on the region's agent address: GET /healthz, /v1/status, /metrics.\n"
      "With a dns section in the plan, a primary or standby agent also health-checks every endpoint\n"
      "and serves the zone; routing controls are at /v1/routing-controls (see 'lifeboat traffic').\n"
      "With a proxy section, it also runs the L4 proxy's listeners (see 'lifeboat proxy serve --help').\n"
      "Stops cleanly on SIGTERM or SIGINT.\n\n"
      "With --node it is a node agent instead (deploy/kubernetes runs one per node): it serves\n"
      "POST /v1/node/backups and /v1/node/restores (the admin token required) for cluster backups\n"
      "with volume data (see docs/kubernetes.md), reading the kubelet's pods/UID/volumes/.\n\n"
      "Examples:\n"
      "  lifeboat agent --plan /etc/lifeboat/shop.yaml --region us-east\n"
      "  lifeboat agent --plan examples/local.yaml --region us-west --data-dir /tmp/us-west --log-format json\n"
      "  lifeboat agent --plan shop.yaml --region us-east --connect-to 10.1.0.5:7770=127.0.0.1:17770\n"
      "  lifeboat agent --plan /etc/lifeboat/plan/plan.yaml --node --node-name \"$NODE_NAME\" --kubelet-root /host/kubelet");
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
    if (o->node) {
      exit_code = RunNodeAgent(*plan, *o);
      return;
    }
    if (o->region.empty()) {
      exit_code = Fail("--region is required (or --node for a node agent)", kExitInvalid);
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
