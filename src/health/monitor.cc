#include "health/monitor.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "core/clock.h"
#include "core/log.h"

namespace lifeboat::health {

namespace asio = boost::asio;

struct Monitor::State {
  const plan::Endpoint* endpoint;
  const plan::Check* check;  // nullptr: no check, always healthy
  std::unique_ptr<asio::steady_timer> timer;
  std::chrono::steady_clock::time_point next;
  std::atomic<bool> healthy{true};
  int successes = 0, failures = 0;
  double latency_seconds = 0;
  std::string reason = "no probe yet";  // guarded by mu
  std::string since;                    // guarded by mu
  mutable std::mutex mu;
};

Monitor::Monitor(asio::io_context& io, const plan::Plan& plan, metrics::Registry& metrics)
    : io_(io), plan_(plan), alive_(std::make_shared<std::atomic<bool>>(true)) {
  healthy_g_ = &metrics.AddGauge("lifeboat_health_healthy", "1 when the endpoint is healthy.", {"endpoint", "check"});
  successes_g_ = &metrics.AddGauge("lifeboat_health_consecutive_successes", "Consecutive passing probes.", {"endpoint"});
  failures_g_ = &metrics.AddGauge("lifeboat_health_consecutive_failures", "Consecutive failing probes.", {"endpoint"});
  latency_g_ = &metrics.AddGauge("lifeboat_health_probe_latency_seconds", "Duration of the last probe.", {"endpoint"});
  latency_h_ = &metrics.AddHistogram("lifeboat_health_probe_duration_seconds", "Probe durations.", {"endpoint"},
                                     {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  probes_c_ = &metrics.AddCounter("lifeboat_health_probes_total", "Probes by endpoint and result.", {"endpoint", "result"});
  transitions_c_ = &metrics.AddCounter("lifeboat_health_transitions_total", "Health changes by endpoint and new state.",
                                       {"endpoint", "to"});
  std::string now = FormatUtc(Clock::Real().Now());
  for (const auto& ep : plan_.endpoints) {
    auto s = std::make_unique<State>();
    s->endpoint = &ep;
    s->check = ep.check.empty() ? nullptr : plan_.FindCheck(ep.check);
    s->since = now;
    healthy_g_->With({ep.name, ep.check}).Set(1);
    by_name_[ep.name] = s.get();
    states_.push_back(std::move(s));
  }
}

Monitor::~Monitor() {
  *alive_ = false;
  for (auto& s : states_) {
    if (s->timer) s->timer->cancel();
  }
}

void Monitor::Start() {
  asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    auto now = std::chrono::steady_clock::now();
    for (auto& s : states_) {
      if (!s->check || s->check->type == plan::CheckType::kCalculated) continue;
      s->timer = std::make_unique<asio::steady_timer>(io_);
      s->next = now;
      Schedule(*s);
    }
  });
}

void Monitor::Stop() {
  asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    for (auto& s : states_) {
      if (s->timer) s->timer->cancel();
    }
  });
}

void Monitor::Schedule(State& s) {
  s.timer->expires_at(s.next);
  s.timer->async_wait([this, &s, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    // The next probe is due one interval after this one was due, not after it
    // ends: a fixed cadence, whatever the probes cost.
    s.next += s.check->interval;
    auto now = std::chrono::steady_clock::now();
    if (s.next < now) s.next = now + s.check->interval;  // we fell behind (a stalled loop); skip, do not burst
    Probe(
        io_, tls_, *s.check, s.endpoint->address,
        [this, &s, alive](ProbeResult r) {
          if (*alive) OnResult(s, r);
        },
        plan_.FindDatabase(s.check->database));
    Schedule(s);
  });
}

void Monitor::OnResult(State& s, const ProbeResult& r) {
  bool pass = r.ok() != s.check->invert;
  const std::string& name = s.endpoint->name;
  probes_c_->With({name, ReasonName(r.reason)}).Inc();
  s.latency_seconds = std::chrono::duration<double>(r.latency).count();
  latency_g_->With({name}).Set(s.latency_seconds);
  latency_h_->With({name}).Observe(s.latency_seconds);
  if (pass) {
    ++s.successes;
    s.failures = 0;
  } else {
    ++s.failures;
    s.successes = 0;
  }
  successes_g_->With({name}).Set(s.successes);
  failures_g_->With({name}).Set(s.failures);
  std::string reason = std::string(ReasonName(r.reason)) + (r.detail.empty() ? "" : ": " + r.detail);
  if (s.check->invert) reason = "inverted, " + reason;
  {
    std::lock_guard lock(s.mu);
    s.reason = reason;
  }
  bool healthy = s.healthy.load();
  if (healthy && s.failures >= s.check->fall) {
    SetHealthy(s, false, reason + " (" + std::to_string(s.failures) + " in a row)");
  } else if (!healthy && s.successes >= s.check->rise) {
    SetHealthy(s, true, reason + " (" + std::to_string(s.successes) + " in a row)");
  }
}

void Monitor::Transition(State& s, bool healthy, const std::string& reason) {
  s.healthy = healthy;
  {
    std::lock_guard lock(s.mu);
    s.reason = reason;
    s.since = FormatUtc(Clock::Real().Now());
  }
  healthy_g_->With({s.endpoint->name, s.endpoint->check}).Set(healthy ? 1 : 0);
  transitions_c_->With({s.endpoint->name, healthy ? "healthy" : "unhealthy"}).Inc();
  Log(healthy ? spdlog::level::info : spdlog::level::warn,
      {{"endpoint", s.endpoint->name}, {"region", s.endpoint->region}, {"check", s.endpoint->check}, {"reason", reason}},
      "endpoint {} is {}: {}", s.endpoint->name, healthy ? "healthy" : "unhealthy", reason);
}

void Monitor::SetHealthy(State& s, bool healthy, const std::string& reason) {
  Transition(s, healthy, reason);
  Recalculate();
  if (on_change_) on_change_();
}

// Calculated checks: healthy when at least min_healthy of their children
// are. Repeats until stable, since one may depend on another.
void Monitor::Recalculate() {
  for (size_t pass = 0; pass <= states_.size(); ++pass) {
    bool changed = false;
    for (auto& s : states_) {
      if (!s->check || s->check->type != plan::CheckType::kCalculated) continue;
      int up = 0;
      for (const auto& child : s->check->children) up += Healthy(child);
      int need = s->check->min_healthy == 0 ? static_cast<int>(s->check->children.size()) : s->check->min_healthy;
      bool healthy = (up >= need) != s->check->invert;
      if (healthy != s->healthy.load()) {
        Transition(*s, healthy, std::to_string(up) + " of " + std::to_string(s->check->children.size()) +
                                    " children healthy, " + std::to_string(need) + " needed");
        changed = true;
      }
    }
    if (!changed) break;
  }
}

bool Monitor::Healthy(const std::string& endpoint) const {
  auto it = by_name_.find(endpoint);
  return it == by_name_.end() || it->second->healthy.load();
}

nlohmann::ordered_json Monitor::StatusJson() const {
  auto out = nlohmann::ordered_json::object();
  for (const auto& s : states_) {
    nlohmann::ordered_json j;
    j["check"] = s->endpoint->check;
    j["address"] = s->endpoint->address.ToString();
    j["healthy"] = s->healthy.load();
    {
      std::lock_guard lock(s->mu);
      j["reason"] = s->check ? s->reason : "no check";
      j["since"] = s->since;
    }
    out[s->endpoint->name] = j;
  }
  return out;
}

ProbeResult ProbeOnce(const plan::Plan& plan, const plan::Endpoint& endpoint) {
  const plan::Check* check = plan.FindCheck(endpoint.check);
  ProbeResult result;
  if (!check) {
    result.detail = "no check; always healthy";
    return result;
  }
  asio::io_context io;
  ClientTls tls;
  Probe(io, tls, *check, endpoint.address, [&](ProbeResult r) { result = std::move(r); },
        plan.FindDatabase(check->database));
  io.run();
  if (check->invert) {
    bool ok = !result.ok();
    result.detail = "inverted: " + std::string(ReasonName(result.reason)) + ", " + result.detail;
    result.reason = ok ? Reason::kOk : Reason::kBadStatus;
  }
  return result;
}

}  // namespace lifeboat::health
