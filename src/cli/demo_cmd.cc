// lifeboat demo: the whole story on one machine. For now: start the agents of
// the embedded plan (examples/local.yaml) as child processes, wait until they
// answer, show their status, and stop them cleanly on Ctrl-C or --duration.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/common.h"
#include "cli/embedded_plan.h"
#include "cli/local_processes.h"
#include "cli/status.h"
#include "core/fs.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct DemoOptions {
  std::string plan_file, data_dir, duration;
};

// Stops the others and reports the agent that died, with the end of its log.
int FailWithChild(std::vector<Child>& children, const Child& died) {
  std::cerr << "lifeboat: error: the agent of " << died.name << " exited (" << DescribeExit(died.status)
            << "); the end of " << died.log << ":\n"
            << Tail(died.log, 5);
  StopAll(children);
  return kExitFailure;
}

// Polls every agent's /healthz until all answer; nullopt when they do,
// else the exit code of the failure.
std::optional<int> WaitUntilReady(const plan::Plan& plan, std::vector<Child>& children, const std::string& data_dir) {
  auto deadline = Clock::now() + 15s;
  std::vector<bool> up(plan.regions.size(), false);
  size_t ready = 0;
  while (ready < plan.regions.size()) {
    if (Child* died = Reap(children)) return FailWithChild(children, *died);
    if (Clock::now() > deadline) {
      std::cerr << "lifeboat: error: agents did not answer within 15s; see the logs under " << data_dir << "\n";
      StopAll(children);
      return kExitFailure;
    }
    for (size_t i = 0; i < plan.regions.size(); ++i) {
      if (up[i]) continue;
      auto r = net::Fetch("GET", net::BaseUrl(plan.regions[i].agent) + "/healthz", 500ms);
      if (r.ok() && r->status == 200) {
        up[i] = true;
        ++ready;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

int RunDemo(DemoOptions o) {
  std::optional<Duration> duration;
  if (!o.duration.empty()) {
    auto d = ParseDuration(o.duration);
    if (!d.ok()) return Fail("--duration: " + d.error().message(), kExitInvalid);
    duration = *d;
  }
  std::string plan_text;
  if (o.plan_file.empty()) {
    plan_text = kEmbeddedLocalPlan;
  } else {
    auto text = ReadFile(o.plan_file, plan::kMaxPlanBytes + 1);
    if (!text.ok()) return Fail("--plan: " + text.error().message(), kExitInvalid);
    plan_text = std::move(*text);
  }
  plan::LoadResult loaded =
      plan::LoadPlanText(plan_text, o.plan_file.empty() ? "examples/local.yaml (embedded)" : o.plan_file);
  std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
  if (!loaded.plan) return kExitInvalid;
  const plan::Plan& plan = *loaded.plan;

  auto made = MakeDataDir(o.data_dir, "demo");
  if (!made.ok()) return Fail(made.error());
  const std::string data_dir = *made;
  const std::string plan_path = data_dir + "/plan.yaml";
  if (auto s = WriteFileAtomic(plan_path, plan_text); !s.ok()) return Fail(s.error());

  sigset_t sigs = BlockStopSignals();
  std::cout << "lifeboat demo: plan '" << plan.name << "' (" << plan::Name(plan.pattern) << "), "
            << plan.regions.size() << " regions, data in " << data_dir << "\n";
  std::vector<Child> children;
  const std::string exe = SelfExe();
  for (const auto& r : plan.regions) {
    Child c;
    c.name = r.name;
    std::string dir = data_dir + "/" + r.name;
    c.log = dir + "/agent.log";
    if (auto s = EnsureWritableDir(dir); !s.ok()) {
      StopAll(children);
      return Fail(s.error());
    }
    auto pid = Spawn(
        {exe, "--log-format", "json", "agent", "--plan", plan_path, "--region", r.name, "--data-dir", dir}, c.log);
    if (!pid.ok()) {
      StopAll(children);
      return Fail(pid.error());
    }
    c.pid = *pid;
    std::cout << "  started " << r.name << " (" << plan::Name(r.role) << ") on " << r.agent.ToString() << ", pid "
              << c.pid << "\n";
    children.push_back(c);
  }
  if (auto failed = WaitUntilReady(plan, children, data_dir)) return *failed;

  std::cout << "\n" << StatusTable(CollectStatus(plan, 2s)) << "\n";
  std::cout << (duration ? "Running for " + FormatDuration(*duration) + " (Ctrl-C stops sooner)" : "Running until Ctrl-C")
            << ". Try, in another shell:\n"
            << "  " << exe << " status --plan " << plan_path << "\n"
            << "  curl -s http://" << plan.regions[0].agent.ToString() << "/metrics\n"
            << std::flush;

  auto end = duration ? Clock::now() + *duration : Clock::time_point::max();
  timespec tick{0, 100'000'000};
  while (Clock::now() < end) {
    int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cout << "\n" << (sig == SIGINT ? "Interrupted" : "Terminated") << "; stopping the agents\n";
      break;
    }
    if (Child* died = Reap(children)) return FailWithChild(children, *died);
  }
  StopAll(children);
  bool clean = true;
  for (const auto& c : children) {
    clean = clean && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0;
    std::cout << "  stopped " << c.name << " (" << DescribeExit(c.status) << ")\n";
  }
  std::cout << (clean ? "All agents stopped cleanly." : "Some agents did not stop cleanly; see their logs.")
            << " Logs and state: " << data_dir << "\n";
  return clean ? kExitOk : kExitFailure;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("demo", "Run two regions and a witness on this machine");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--plan", o->plan_file, "Plan to run instead of the embedded examples/local.yaml");
  cmd->add_option("--data-dir", o->data_dir, "Where the agents keep state and logs (default: a new /tmp/lifeboat-demo-*)");
  cmd->add_option("--duration", o->duration, "Stop after this long (default: run until Ctrl-C)");
  cmd->footer(
      "Starts one agent process per region of the plan, on loopback, waits until each answers,\n"
      "prints their status and keeps them running until Ctrl-C (or --duration), then stops\n"
      "them cleanly. Each agent's log is DATA_DIR/REGION/agent.log.\n\n"
      "Examples:\n"
      "  lifeboat demo\n"
      "  lifeboat demo --duration 30s --data-dir /tmp/lb");
  cmd->callback([&exit_code, o] { exit_code = RunDemo(*o); });
}

}  // namespace lifeboat::cli
