// The agent: runs one region's part of the plan. Today it owns the admin HTTP
// API (/healthz, /v1/status, /metrics), the state store and the metrics
// registry; the services of later capabilities (health checks, DNS,
// replication, backups, failover) are created by it and register a status
// section and their metrics here. See docs/ARCHITECTURE.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/fs.h"
#include "core/result.h"
#include "metrics/registry.h"
#include "net/http.h"
#include "plan/plan.h"
#include "state/store.h"

namespace lifeboat::agent {

class TrafficService;
class ReplicationService;
class BackupService;

struct AgentOptions {
  std::string region;
  // Where the state store and locks live; created if missing.
  std::string data_dir;
  // Stop on SIGTERM and SIGINT (the CLI sets it; tests do not).
  bool handle_signals = false;
  // Threads running the event loop.
  int threads = 1;
  // Overrides the plan's dns.listen for this agent (several agents on one host).
  std::vector<Address> dns_listen;
};

// The default data dir for a region: /var/lib/lifeboat/<plan>/<region>.
std::string DefaultDataDir(const plan::Plan& plan, const std::string& region);

// One region's agent. Create, then Run on one thread; Stop may be called from
// any thread. Service registration (AddStatusSection, metrics()) happens
// before Run.
class Agent {
 public:
  // InvalidArgument for a region not in the plan; PermissionDenied or
  // FailedPrecondition for a data dir that cannot be used (not writable, or
  // locked by another agent); errors of the state store as they come.
  static Result<std::unique_ptr<Agent>> Create(plan::Plan plan, AgentOptions options);
  ~Agent();

  // Binds the admin API and serves until Stop() or a signal. Returns the
  // error that kept it from serving (address taken, ...).
  Status Run();
  void Stop();

  using Route = std::function<net::HttpResponse(const net::HttpRequest&)>;
  // Serves `prefix` and everything below it ("/v1/routing-controls",
  // "/v1/routing-controls/east") with `handler`, on the event loop.
  void AddRoute(const std::string& prefix, Route handler);

  using StatusSection = std::function<nlohmann::ordered_json()>;
  // Adds "services": { name: fn() } to /v1/status. fn runs on the event loop.
  void AddStatusSection(const std::string& name, StatusSection fn);

  const plan::Plan& plan() const { return plan_; }
  const AgentOptions& options() const { return options_; }
  const plan::Region& region() const { return *region_; }
  metrics::Registry& metrics() { return metrics_; }
  state::Store& store() { return *store_; }
  boost::asio::io_context& io() { return io_; }

  // The document served at /v1/status.
  nlohmann::ordered_json StatusJson();

 private:
  Agent(plan::Plan plan, AgentOptions options, FileLock lock);
  Status Init();
  net::HttpResponse Handle(const net::HttpRequest& req);

  plan::Plan plan_;
  AgentOptions options_;
  const plan::Region* region_ = nullptr;  // points into plan_
  FileLock lock_;
  std::unique_ptr<state::Store> store_;
  metrics::Registry metrics_;
  metrics::Family<metrics::Counter>* requests_ = nullptr;
  boost::asio::io_context io_;
  std::unique_ptr<net::HttpServer> server_;
  Clock::TimePoint started_at_;
  std::chrono::steady_clock::time_point started_steady_;
  int64_t starts_ = 0;
  std::string first_started_at_;

  std::vector<std::pair<std::string, Route>> routes_;  // set before Run
  std::unique_ptr<TrafficService> traffic_;             // when the plan has dns
  std::unique_ptr<BackupService> backups_;              // when the plan has backup schedules
  std::unique_ptr<ReplicationService> replication_;     // when this region holds replicated volumes

  std::mutex sections_mu_;
  std::vector<std::pair<std::string, StatusSection>> sections_;  // guarded by sections_mu_
};

}  // namespace lifeboat::agent
