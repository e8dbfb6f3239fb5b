// lifeboat dns serve | dns zone | lifeboat check run
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <thread>

#include "cli/common.h"
#include "dns/server.h"
#include "health/monitor.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

int ServeDns(const std::string& plan_file, const std::vector<std::string>& listen_text, int workers) {
  auto plan = plan::LoadPlanOrError(plan_file);
  if (!plan.ok()) return Fail(plan.error());
  if (!plan->dns) return Fail("plan " + plan_file + " has no dns section", kExitInvalid);
  dns::DnsServerOptions o;
  o.workers = workers;
  auto listen = ParseAddresses(listen_text, "--listen");
  if (!listen.ok()) return Fail(listen.error());
  o.listen = listen->empty() ? plan->dns->listen : *listen;
  boost::asio::io_context io;
  metrics::Registry metrics;
  health::Monitor monitor(io, *plan, metrics);
  dns::DnsServer server(o, metrics);
  auto rebuild = [&] {
    auto s = server.Republish(*plan, [&](const std::string& ep) { return monitor.Healthy(ep); });
    if (!s.ok()) spdlog::error("dns: cannot build answers, keeping the old ones: {}", s.error().message());
  };
  monitor.OnChange(rebuild);
  rebuild();
  if (auto s = server.Start(); !s.ok()) return Fail(s.error());
  std::string where;
  for (const auto& a : server.bound()) where += (where.empty() ? "" : ", ") + a.ToString();
  spdlog::info("dns: serving {} on {} (UDP and TCP), {} endpoints health-checked", plan->dns->zone, where,
               plan->endpoints.size());
  monitor.Start();
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    spdlog::info("stopping");
    monitor.Stop();
    io.stop();
  });
  io.run();
  server.Stop();
  return kExitOk;
}

int PrintZone(const std::string& plan_file, const std::vector<std::string>& down) {
  auto plan = plan::LoadPlanOrError(plan_file);
  if (!plan.ok()) return Fail(plan.error());
  if (!plan->dns) return Fail("plan " + plan_file + " has no dns section", kExitInvalid);
  for (const auto& d : down) {
    if (plan->FindEndpoint(d) == nullptr) return Fail("--down: the plan has no endpoint '" + d + "'", kExitInvalid);
  }
  auto up = [&](const std::string& ep) { return std::find(down.begin(), down.end(), ep) == down.end(); };
  auto snap = dns::Snapshot::Build(*plan->dns, *plan, up, 1);
  if (!snap.ok()) return Fail(snap.error());
  std::cout << (*snap)->MasterFile();
  return kExitOk;
}

int RunCheck(const std::string& plan_file, const std::string& name, const std::string& output) {
  auto plan = plan::LoadPlanOrError(plan_file);
  if (!plan.ok()) return Fail(plan.error());
  std::vector<const plan::Endpoint*> targets;
  if (const plan::Endpoint* ep = plan->FindEndpoint(name)) {
    targets.push_back(ep);
  } else if (plan->FindCheck(name)) {
    for (const auto& ep : plan->endpoints) {
      if (ep.check == name) targets.push_back(&ep);
    }
    if (targets.empty()) return Fail("check '" + name + "' is used by no endpoint; nothing to probe", kExitInvalid);
  } else {
    return Fail("'" + name + "' is neither an endpoint nor a check of plan " + plan_file, kExitInvalid);
  }
  bool all_ok = true;
  nlohmann::ordered_json doc = nlohmann::ordered_json::array();
  Table table({"ENDPOINT", "ADDRESS", "CHECK", "RESULT", "REASON", "LATENCY"});
  for (const auto* ep : targets) {
    const plan::Check* c = plan->FindCheck(ep->check);
    std::string check = ep->check.empty() ? "none" : ep->check;
    if (c && c->type == plan::CheckType::kCalculated) {
      doc.push_back({{"endpoint", ep->name}, {"address", ep->address.ToString()}, {"check", check},
                     {"healthy", nullptr}, {"reason", "calculated"}, {"detail", "derived from other endpoints; probe those"},
                     {"latency_seconds", nullptr}});
      table.Add({ep->name, ep->address.ToString(), check, "-", "calculated: probe the endpoints it derives from", "-"});
      continue;
    }
    health::ProbeResult r = health::ProbeOnce(*plan, *ep);
    all_ok = all_ok && r.ok();
    double seconds = std::chrono::duration<double>(r.latency).count();
    std::string reason = health::ReasonName(r.reason);
    doc.push_back({{"endpoint", ep->name}, {"address", ep->address.ToString()}, {"check", check}, {"healthy", r.ok()},
                   {"reason", reason}, {"detail", r.detail.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(r.detail)},
                   {"latency_seconds", seconds}});
    table.Add({ep->name, ep->address.ToString(), check, r.ok() ? "healthy" : "unhealthy",
               reason + (r.detail.empty() ? "" : ": " + r.detail),
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(r.latency).count()) + " ms"});
  }
  if (Structured(output)) {
    PrintDocument(doc, output);
  } else {
    std::cout << table.Render();
  }
  return all_ok ? kExitOk : kExitFailure;
}

}  // namespace

void AddDnsCommands(CLI::App& app, int& exit_code) {
  auto* dns = app.add_subcommand("dns", "The authoritative DNS server on its own");
  dns->require_subcommand(1);
  auto* serve = dns->add_subcommand("serve", "Health-check the plan's endpoints and serve its zone");
  struct ServeOptions {
    std::string plan_file;
    std::vector<std::string> listen;
    int workers = 0;
  };
  auto so = std::make_shared<ServeOptions>();
  AddPlanFlag(*serve, so->plan_file);
  serve->add_option("--listen", so->listen, "Address(es) instead of the plan's dns.listen");
  serve->add_option("--workers", so->workers, "UDP worker threads (default: one per core)");
  serve->footer(
      "Answers over UDP and TCP from a table of answers rebuilt on every health change. Routing controls\n"
      "live in the agent's state store; this command treats every region as switched on.\n\n"
      "Examples:\n"
      "  lifeboat dns serve --plan examples/shop.yaml\n"
      "  lifeboat dns serve --plan shop.yaml --listen 127.0.0.1:5353 && dig @127.0.0.1 -p 5353 shop.example.com");
  serve->callback([&exit_code, so] { exit_code = ServeDns(so->plan_file, so->listen, so->workers); });

  auto* zone = dns->add_subcommand("zone", "Print the zone as a master file, as the server answers it");
  struct ZoneOptions {
    std::string plan_file;
    std::vector<std::string> down;
  };
  auto zo = std::make_shared<ZoneOptions>();
  AddPlanFlag(*zone, zo->plan_file);
  zone->add_option("--down", zo->down, "Answer as if these endpoints were unhealthy (repeatable)");
  zone->footer(
      "Every endpoint counts as healthy unless named with --down. Policy records are resolved as the\n"
      "server would; a weighted record lists every record it picks from. Load it into another server\n"
      "(a secondary, an audit) or check it with nsd-checkzone or named-checkzone.\n\n"
      "Examples:\n"
      "  lifeboat dns zone --plan examples/shop.yaml > shop.zone\n"
      "  lifeboat dns zone --plan shop.yaml --down web-east | grep shop\n");
  zone->callback([&exit_code, zo] { exit_code = PrintZone(zo->plan_file, zo->down); });

  auto* check = app.add_subcommand("check", "Health checks");
  check->require_subcommand(1);
  auto* run = check->add_subcommand("run", "Probe an endpoint (or every endpoint of a check) once, now");
  struct RunOptions {
    std::string plan_file, name, output = "table";
  };
  auto ro = std::make_shared<RunOptions>();
  AddOutputFlag(*run, ro->output);
  run->add_option("NAME", ro->name, "An endpoint, or a check (probes each endpoint using it)")->required();
  AddPlanFlag(*run, ro->plan_file);
  run->footer(
      "Exit code: 0 when every probe passed, 1 when one failed, 2 for bad input.\n\n"
      "Examples:\n"
      "  lifeboat check run web-east --plan examples/shop.yaml\n"
      "  lifeboat check run web --plan examples/shop.yaml -o json");
  run->callback([&exit_code, ro] { exit_code = RunCheck(ro->plan_file, ro->name, ro->output); });
}

}  // namespace lifeboat::cli
