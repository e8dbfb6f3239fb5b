// lifeboat status --plan PLAN
#include <iostream>

#include "cli/common.h"
#include "cli/status.h"
#include "plan/load.h"

namespace lifeboat::cli {

void AddStatusCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("status", "Ask every region's agent how it is");
  struct Options {
    std::string plan_file, output = "table", timeout = "2s";
  };
  auto o = std::make_shared<Options>();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--timeout", o->timeout, "How long to wait for each agent")->capture_default_str();
  AddOutputFlag(*cmd, o->output);
  cmd->footer(
      "An agent that does not answer is shown as down with the reason; that is not an error of the command.\n\n"
      "Examples:\n"
      "  lifeboat status --plan examples/local.yaml\n"
      "  lifeboat status --plan shop.yaml -o json | jq '.regions[] | select(.state == \"down\")'");
  cmd->callback([&exit_code, o] {
    auto timeout = ParseDuration(o->timeout);
    if (!timeout.ok()) {
      exit_code = Fail("--timeout: " + timeout.error().message(), kExitInvalid);
      return;
    }
    auto plan = plan::LoadPlanOrError(o->plan_file);
    if (!plan.ok()) {
      exit_code = Fail(plan.error());
      return;
    }
    auto regions = CollectStatus(*plan, *timeout);
    if (Structured(o->output)) {
      PrintDocument(StatusJson(*plan, regions), o->output);
    } else {
      std::cout << PrimaryLine(regions, Clock::Real().Now()) << StatusTable(regions);
      if (auto lags = VolumeLags(*plan, regions); !lags.empty()) std::cout << "\n" << VolumeLagTable(lags);
      if (auto dbs = DatabaseTable(regions); !dbs.empty()) std::cout << "\n" << dbs;
      if (auto proxies = ProxyTable(regions); !proxies.empty()) std::cout << "\n" << proxies;
    }
  });
}

}  // namespace lifeboat::cli
