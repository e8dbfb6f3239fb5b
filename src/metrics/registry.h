// Metrics and their Prometheus text exposition (format 0.0.4). Services
// register families once at start-up and update them from any thread;
// /metrics renders the whole registry.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lifeboat::metrics {

// A value that only goes up. Thread-safe.
class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Dec(double v = 1) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into buckets by upper bound (Prometheus histogram:
// cumulative _bucket{le=...}, _sum, _count). Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // sorted upper bounds; +Inf is implied
  void Observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), then +Inf
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Bucket bounds for durations: 5 ms to about 1 h, a factor of about 2.5 apart.
std::vector<double> DurationBuckets();

using Labels = std::vector<std::string>;  // values, in the order of the family's label names

// All series of one metric name. Thread-safe; the references it returns stay
// valid for the life of the registry.
template <typename M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<M>()> make = [] { return std::make_unique<M>(); })
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The series with these label values, created on first use. The number of
  // values must match the family's label names.
  M& With(const Labels& values) {
    std::lock_guard lock(mu_);
    auto& slot = series_[values];
    if (!slot) slot = make_();
    return *slot;
  }
  M& Get() { return With({}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Snapshot of (labels, value), sorted by labels.
  auto Collect() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<Labels, decltype(Read(std::declval<const M&>()))>> out;
    for (const auto& [labels, m] : series_) out.emplace_back(labels, Read(*m));
    return out;
  }

 private:
  static double Read(const Counter& c) { return c.value(); }
  static double Read(const Gauge& g) { return g.value(); }
  static Histogram::Snapshot Read(const Histogram& h) { return h.Read(); }

  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<M>()> make_;
  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<M>> series_;  // guarded by mu_
};

// Owns every family. Registration and rendering are thread-safe.
class Registry {
 public:
  // Counter names end in _total (as promtool expects).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);
  // A gauge computed when scraped (uptime, queue depths owned elsewhere).
  // `fn` runs on the scraping thread and must be safe there.
  void AddGaugeCallback(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                        std::function<std::vector<std::pair<Labels, double>>()> fn);

  // A counter computed when scraped, for hot paths that count in their own
  // per-thread cells. The values must never decrease.
  void AddCounterCallback(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                          std::function<std::vector<std::pair<Labels, double>>()> fn);

  // The Prometheus text exposition of every family, in registration order.
  std::string Render() const;

 private:
  using Collect = std::function<std::vector<std::pair<Labels, double>>()>;
  struct Entry {
    std::string type;  // "counter", "gauge" or "histogram"
    std::string name, help;
    std::vector<std::string> label_names;
    Collect collect;                                // counters and gauges
    std::function<void(std::string&)> render = {};  // histograms: the series lines
  };
  void Add(Entry entry);

  mutable std::mutex mu_;
  std::vector<Entry> entries_;                                 // guarded by mu_
  std::vector<std::unique_ptr<Family<Counter>>> counters_;     // guarded by mu_
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;         // guarded by mu_
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;  // guarded by mu_
};

// Helpers shared with tests: exposition escaping and number formatting.
std::string EscapeLabelValue(const std::string& v);
std::string FormatValue(double v);

}  // namespace lifeboat::metrics
