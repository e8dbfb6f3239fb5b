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

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  assert(name.size() > 6 && name.substr(name.size() - 6) == "_total");
  auto e = std::make_unique<Entry>();
  e->type = "counter";
  e->counter = std::make_unique<Family<Counter>>(name, help, std::move(label_names));
  auto& ref = *e->counter;
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(e));
  return ref;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  auto e = std::make_unique<Entry>();
  e->type = "gauge";
  e->gauge = std::make_unique<Family<Gauge>>(name, help, std::move(label_names));
  auto& ref = *e->gauge;
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(e));
  return ref;
}

void Registry::AddGaugeCallback(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names,
                                std::function<std::vector<std::pair<Labels, double>>()> fn) {
  auto e = std::make_unique<Entry>();
  e->type = "gauge";
  e->name = name;
  e->help = help;
  e->label_names = std::move(label_names);
  e->callback = std::move(fn);
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(e));
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& e : entries_) {
    const std::string& name = e->counter ? e->counter->name() : e->gauge ? e->gauge->name() : e->name;
    const std::string& help = e->counter ? e->counter->help() : e->gauge ? e->gauge->help() : e->help;
    const auto& label_names =
        e->counter ? e->counter->label_names() : e->gauge ? e->gauge->label_names() : e->label_names;
    out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
    out += "# TYPE " + name + " " + e->type + "\n";
    if (e->counter) {
      RenderSeries(out, name, label_names, e->counter->Collect());
    } else if (e->gauge) {
      RenderSeries(out, name, label_names, e->gauge->Collect());
    } else {
      RenderSeries(out, name, label_names, e->callback());
    }
  }
  return out;
}

}  // namespace lifeboat::metrics
