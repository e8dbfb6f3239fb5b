#include "metrics/registry.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

namespace lifeboat::metrics {
namespace {

std::string EscapeHelp(const std::string& h) {
  std::string out;
  for (char c : h) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void RenderSeries(std::string& out, const std::string& name, const std::vector<std::string>& label_names,
                  const std::vector<std::pair<Labels, double>>& series) {
  for (const auto& [labels, value] : series) {
    out += name;
    if (!labels.empty()) {
      out += '{';
      for (size_t i = 0; i < labels.size() && i < label_names.size(); ++i) {
        if (i) out += ',';
        out += label_names[i] + "=\"" + EscapeLabelValue(labels[i]) + "\"";
      }
      out += '}';
    }
    out += ' ' + FormatValue(value) + '\n';
  }
}

}  // namespace

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  s.count = running;  // consistent with the buckets even while observations land
  return s;
}

std::vector<double> DurationBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 150, 300, 600, 1800, 3600};
}

void Registry::Add(Entry entry) {
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(entry));
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  assert(name.size() > 6 && name.substr(name.size() - 6) == "_total");
  auto family = std::make_unique<Family<Counter>>(name, help, label_names);
  auto& ref = *family;
  Add({"counter", name, help, std::move(label_names), [&ref] { return ref.Collect(); }});
  std::lock_guard lock(mu_);
  counters_.push_back(std::move(family));
  return ref;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  auto family = std::make_unique<Family<Gauge>>(name, help, label_names);
  auto& ref = *family;
  Add({"gauge", name, help, std::move(label_names), [&ref] { return ref.Collect(); }});
  std::lock_guard lock(mu_);
  gauges_.push_back(std::move(family));
  return ref;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names, std::vector<double> bounds) {
  auto family = std::make_unique<Family<Histogram>>(name, help, label_names,
                                                    [bounds] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *family;
  Entry e{"histogram", name, help, label_names, nullptr};
  e.render = [&ref, name, label_names](std::string& out) {
    for (const auto& [labels, snap] : ref.Collect()) {
      std::string base;
      for (size_t i = 0; i < labels.size() && i < label_names.size(); ++i) {
        base += label_names[i] + "=\"" + EscapeLabelValue(labels[i]) + "\",";
      }
      for (size_t i = 0; i <= snap.bounds.size(); ++i) {
        std::string le = i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf";
        out += name + "_bucket{" + base + "le=\"" + le + "\"} " + FormatValue(static_cast<double>(snap.cumulative[i])) + "\n";
      }
      std::string braces = base.empty() ? "" : "{" + base.substr(0, base.size() - 1) + "}";
      out += name + "_sum" + braces + " " + FormatValue(snap.sum) + "\n";
      out += name + "_count" + braces + " " + FormatValue(static_cast<double>(snap.count)) + "\n";
    }
  };
  Add(std::move(e));
  std::lock_guard lock(mu_);
  histograms_.push_back(std::move(family));
  return ref;
}

void Registry::AddGaugeCallback(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, Collect fn) {
  Add({"gauge", name, help, std::move(label_names), std::move(fn)});
}

void Registry::AddCounterCallback(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, Collect fn) {
  assert(name.size() > 6 && name.substr(name.size() - 6) == "_total");
  Add({"counter", name, help, std::move(label_names), std::move(fn)});
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& e : entries_) {
    out += "# HELP " + e.name + " " + EscapeHelp(e.help) + "\n";
    out += "# TYPE " + e.name + " " + e.type + "\n";
    if (e.render) {
      e.render(out);
    } else {
      RenderSeries(out, e.name, e.label_names, e.collect());
    }
  }
  return out;
}

}  // namespace lifeboat::metrics
