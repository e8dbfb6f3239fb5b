#include "metrics/registry.h"

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
    RenderSeries(out, e.name, e.label_names, e.collect());
  }
  return out;
}

}  // namespace lifeboat::metrics
