// The agent: runs one region's part of the plan. It owns the event loop, the
// admin HTTP API (/healthz, /v1/status, /metrics and the services' routes),
// the state store and the metrics registry, and hosts the services of
// DefaultServices() (agent/services.cc) through the seam of agent/service.h.
// See docs/ARCHITECTURE.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/capabilities.h"
#include "agent/service.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/result.h"
#include "metrics/registry.h"
#include "net/http.h"
#include "plan/plan.h"
#include "state/keys.h"
#include "state/store.h"

namespace lifeboat::agent {

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
  // Where this agent connects instead of an address the plan names, for
  // replication to other regions ("127.0.0.2:7770" -> a tunnel's or a
  // drill's proxy's address), as curl's --connect-to.
  std::map<std::string, Address> connect_to;
  // Where the admin API listens instead of the region's agent address.
  std::optional<Address> admin_listen;
  // A standalone L4 proxy (lifeboat proxy serve), not the region's agent: it
  // serves no DNS and leaves the region's agent records (starts) alone.
  bool proxy_only = false;
};

// For a process that runs alone (an agent, a node agent): a write to a
// closed socket or pipe reports EPIPE instead of killing it, and SIGINT or
// SIGTERM calls `stop` on the event loop (logged). Keep the result while
// the loop runs.
std::unique_ptr<boost::asio::signal_set> StopOnSignals(boost::asio::io_context& io, std::function<void()> stop);

// The default data dir for a region: /var/lib/lifeboat/<plan>/<region>.
std::string DefaultDataDir(const plan::Plan& plan, const std::string& region);

// The services every agent runs (each decides from the plan and region
// whether it has work here), in start order: agent/services.cc.
std::vector<ServiceFactory> DefaultServices();

// One region's agent. Create, then Run on one thread; Stop may be called from
// any thread.
class Agent final : public PrimaryView {
 public:
  // InvalidArgument for a region not in the plan; PermissionDenied or
  // FailedPrecondition for a data dir that cannot be used (not writable, or
  // locked by another agent); errors of the state store and of the services'
  // creation as they come.
  static Result<std::unique_ptr<Agent>> Create(plan::Plan plan, AgentOptions options,
                                               std::vector<ServiceFactory> services = DefaultServices());
  ~Agent();

  // Binds the admin API and serves until Stop() or a signal. Returns the
  // error that kept it from serving (address taken, ...).
  Status Run();
  void Stop();

  const plan::Plan& plan() const { return plan_; }
  const AgentOptions& options() const { return options_; }
  const plan::Region& region() const { return *region_; }
  metrics::Registry& metrics() { return metrics_; }
  state::Store& store() { return *store_; }
  boost::asio::io_context& io() { return io_; }

  // The document served at /v1/status.
  nlohmann::ordered_json StatusJson();

  // PrimaryView, which the agent provides to its services.
  std::optional<state::PrimaryRecord> Primary() const override;
  void OnChange(std::function<void()> fn) override;

 private:
  Agent(plan::Plan plan, AgentOptions options, FileLock lock);
  Status Init();
  Status MigrateOwnStore();
  nlohmann::ordered_json FailoverJson();
  net::HttpResponse Handle(const net::HttpRequest& req);
  // Reads what status shows of the shared state and watches for changes.
  Status FollowShared();
  void OnShared(const state::Event& e);

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
  std::string token_;

  Router router_;
  Capabilities caps_;
  std::unique_ptr<ServiceContext> context_;
  std::vector<std::unique_ptr<Service>> services_;  // in start order; stopped in reverse by ~Agent

  // What /v1/status and /metrics show of the shared state, kept by a watch
  // (FollowShared) so that no handler on the event loop waits on the store.
  struct Shared {
    int64_t revision = 0;  // of the last change seen
    std::optional<state::PrimaryRecord> primary;
    std::optional<state::FailoverRun> run;
    std::string error;  // why they could not be read, when not
  };
  mutable std::mutex shared_mu_;
  std::vector<std::function<void()>> on_primary_;  // set before the services start
  Shared shared_;                                                   // guarded by shared_mu_
  std::vector<std::unique_ptr<state::WatchHandle>> shared_watches_;  // the last is live; guarded by shared_mu_
};

}  // namespace lifeboat::agent
