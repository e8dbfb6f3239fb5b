// Health of every endpoint of the plan: a probe per endpoint on its check's
// interval (no drift: probes are scheduled on a fixed cadence), fall/rise
// state machines, calculated checks over other endpoints, transitions logged
// once and counted, state in metrics and in /v1/status.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "health/probe.h"
#include "metrics/registry.h"
#include "plan/plan.h"

namespace lifeboat::health {

// Runs on one io_context (its thread does all probing and state changes);
// Healthy() and StatusJson() may be called from any thread.
class Monitor {
 public:
  // `plan` must outlive the monitor.
  Monitor(boost::asio::io_context& io, const plan::Plan& plan, metrics::Registry& metrics);
  ~Monitor();

  // `fn` runs on the io thread after any endpoint changes state.
  void OnChange(std::function<void()> fn) { on_change_ = std::move(fn); }
  // Starts probing (from any thread; the work is posted to the io_context).
  void Start();
  void Stop();

  // Whether `endpoint` is healthy now; endpoints without a check always are.
  // Endpoints start healthy and turn unhealthy after `fall` failures.
  bool Healthy(const std::string& endpoint) const;
  nlohmann::ordered_json StatusJson() const;

 private:
  struct State;
  void Schedule(State& s);
  void OnResult(State& s, const ProbeResult& r);
  void Recalculate();
  void SetHealthy(State& s, bool healthy, const std::string& reason);
  // Records a change of state: flag, reason, time, metrics, one log line.
  void Transition(State& s, bool healthy, const std::string& reason);

  boost::asio::io_context& io_;
  const plan::Plan& plan_;
  ClientTls tls_;
  std::vector<std::unique_ptr<State>> states_;
  std::unordered_map<std::string, State*> by_name_;
  std::function<void()> on_change_;
  std::shared_ptr<std::atomic<bool>> alive_;

  metrics::Family<metrics::Gauge>* healthy_g_;
  metrics::Family<metrics::Gauge>* successes_g_;
  metrics::Family<metrics::Gauge>* failures_g_;
  metrics::Family<metrics::Gauge>* latency_g_;
  metrics::Family<metrics::Histogram>* latency_h_;
  metrics::Family<metrics::Counter>* probes_c_;
  metrics::Family<metrics::Counter>* transitions_c_;
};

// Probes `endpoint` once with its check, blocking; for `lifeboat check run`.
ProbeResult ProbeOnce(const plan::Plan& plan, const plan::Endpoint& endpoint);

}  // namespace lifeboat::health
