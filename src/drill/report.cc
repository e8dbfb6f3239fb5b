#include "drill/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <cstdio>
#include <optional>
#include <set>

#include "core/clock.h"
#include "core/json_read.h"
#include "core/strings.h"

namespace lifeboat::drill {
namespace {

using Json = nlohmann::ordered_json;

// An acknowledged write that took longer than this is drawn as a wait (its
// resolver waiting out a dead DNS server, say): the client had no service.
constexpr auto kSlow = std::chrono::milliseconds(250);

std::string Fixed(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Figure(const Json& seconds) {
  if (!seconds.is_number()) return "&ndash;";
  double s = seconds.get<double>();
  return s < 1 ? Fixed(s * 1000, 0) + " ms" : Fixed(s, 2) + " s";
}

// Maps times onto the timeline's x axis.
struct Axis {
  Clock::TimePoint from, to;
  double left = 150, width = 800;
  double X(Clock::TimePoint t) const {
    double span = std::chrono::duration<double>(to - from).count();
    double at = std::chrono::duration<double>(t - from).count();
    return left + std::clamp(span > 0 ? at / span : 0.0, 0.0, 1.0) * width;
  }
};

std::string Line(double x, double y1, double y2, const char* cls, const std::string& label, double label_y) {
  return "<line class=\"" + std::string(cls) + "\" x1=\"" + Fixed(x) + "\" x2=\"" + Fixed(x) + "\" y1=\"" +
         Fixed(y1) + "\" y2=\"" + Fixed(y2) + "\"/>\n<text class=\"mark\" x=\"" + Fixed(x + 3) + "\" y=\"" +
         Fixed(label_y) + "\">" + HtmlEscape(label) + "</text>\n";
}

// The replication lag of each stream over time (the drill's samples), as
// lines in a lane from `top` down `height`, with the RPO objective dashed.
std::string LagLane(const Json& lag, const Json& objectives, const Axis& axis, double top, double height) {
  double max = 0;
  std::map<std::string, std::vector<std::pair<Clock::TimePoint, double>>> lines;  // "from -> to"
  for (const auto& l : lag) {
    auto at = ParseUtc(json::Str(l, "at"));
    auto v = json::Num(l, "seconds");
    if (!at || !v || *v < 0) continue;
    lines[json::Str(l, "from") + " \u2192 " + json::Str(l, "to")].push_back({*at, *v});
    max = std::max(max, *v);
  }
  auto objective = json::Num(objectives, "rpo_seconds");
  double scale = std::max({max, objective.value_or(0), 0.1}) * 1.1;
  auto y = [&](double v) { return top + height - v / scale * height; };
  std::string svg = "<text class=\"row\" x=\"8\" y=\"" + Fixed(top + 12) + "\">replication lag</text>\n";
  svg += "<text class=\"tick\" x=\"8\" y=\"" + Fixed(top + 28) + "\">max " + Figure(Json(max)) + "</text>\n";
  svg += "<line class=\"axis\" x1=\"" + Fixed(axis.left) + "\" x2=\"" + Fixed(axis.left + axis.width) + "\" y1=\"" +
         Fixed(top + height) + "\" y2=\"" + Fixed(top + height) + "\"/>\n";
  if (objective) {
    svg += "<line class=\"objective\" x1=\"" + Fixed(axis.left) + "\" x2=\"" + Fixed(axis.left + axis.width) +
           "\" y1=\"" + Fixed(y(*objective)) + "\" y2=\"" + Fixed(y(*objective)) + "\"/>\n<text class=\"mark\" x=\"" +
           Fixed(axis.left + axis.width - 90) + "\" y=\"" + Fixed(y(*objective) - 3) + "\">RPO objective</text>\n";
  }
  int n = 0;
  for (const auto& [name, points] : lines) {
    std::string pts;
    for (const auto& [t, v] : points) pts += Fixed(axis.X(t)) + "," + Fixed(y(v)) + " ";
    svg += "<polyline class=\"lag lag" + std::to_string(n % 3) + "\" points=\"" + pts + "\"><title>" +
           HtmlEscape(name) + "</title></polyline>\n";
    svg += "<text class=\"label\" x=\"" + Fixed(axis.left + 4) + "\" y=\"" + Fixed(top + 12 + 14.0 * n) + "\">" +
           HtmlEscape(name) + "</text>\n";
    ++n;
  }
  return svg;
}

// What each agent saw, a row per observer: its health of each endpoint
// (green up, red failing), its vote on the primary (a triangle: down, or up
// again), and its view vanishing (its agent gone). From the report's events.
std::string ViewsLane(const Json& events, const Axis& axis, double top, const std::vector<std::string>& observers) {
  std::string svg;
  for (size_t i = 0; i < observers.size(); ++i) {
    double y = top + 22.0 * static_cast<double>(i);
    svg += "<text class=\"row\" x=\"8\" y=\"" + Fixed(y + 13) + "\">" + HtmlEscape(observers[i]) + " sees</text>\n";
    for (const auto& e : events) {
      if (json::Str(e, "observer") != observers[i]) continue;
      auto at = ParseUtc(json::Str(e, "at"));
      if (!at) continue;
      double x = axis.X(*at);
      std::string kind = json::Str(e, "kind");
      if (kind == "health") {
        bool up = json::Bool(e, "healthy");
        svg += "<rect class=\"" + std::string(up ? "seen-up" : "seen-down") + "\" x=\"" + Fixed(x - 2) + "\" y=\"" +
               Fixed(y + 2) + "\" width=\"4\" height=\"14\"><title>" +
               HtmlEscape(json::Str(e, "endpoint") + (up ? " healthy" : " failing") + " from " + observers[i]) +
               "</title></rect>\n";
      } else if (kind == "vote") {
        bool down = json::Bool(e, "down");
        std::string pts = down ? Fixed(x - 6) + "," + Fixed(y + 3) + " " + Fixed(x + 6) + "," + Fixed(y + 3) + " " +
                                     Fixed(x) + "," + Fixed(y + 15)
                               : Fixed(x - 6) + "," + Fixed(y + 15) + " " + Fixed(x + 6) + "," + Fixed(y + 15) + " " +
                                     Fixed(x) + "," + Fixed(y + 3);
        svg += "<polygon class=\"" + std::string(down ? "vote-down" : "vote-up") + "\" points=\"" + pts +
               "\"><title>" +
               HtmlEscape(observers[i] + (down ? " votes the primary down: " : " sees the primary up: ") +
                          json::Str(e, "reason")) +
               "</title></polygon>\n";
      } else if (kind == "observer" && !json::Bool(e, "present")) {
        svg += "<text class=\"gone\" x=\"" + Fixed(x + 2) + "\" y=\"" + Fixed(y + 13) + "\">view gone<title>" +
               HtmlEscape(observers[i] + "'s agent left no view: dead, or cut off from the store") +
               "</title></text>\n";
      }
    }
  }
  return svg;
}

std::string Timeline(const Json& report, const std::vector<Attempt>& attempts) {
  if (attempts.empty()) return "<p>The client made no attempt.</p>";
  Axis axis{attempts.front().start, attempts.back().end};
  auto fault = ParseUtc(json::Str(json::Obj(report, "fault"), "at"));
  const Json& failover = json::Obj(report, "failover");
  const Json& client = json::Obj(report, "client");
  // The RTO objective, drawn from the first failure: the axis reaches it.
  std::optional<Clock::TimePoint> rto_limit;
  auto first_failure = ParseUtc(json::Str(client, "first_failure"));
  if (auto o = json::Obj(report, "objectives"); first_failure && o.contains("rto_seconds") && o["rto_seconds"].is_number() &&
                                                 o["rto_seconds"].get<double>() >= 0 && o["rto_seconds"].get<double>() < 1e7) {
    rto_limit = *first_failure + std::chrono::duration_cast<Clock::TimePoint::duration>(
                                     std::chrono::duration<double>(o["rto_seconds"].get<double>()));
    axis.to = std::max(axis.to, *rto_limit + std::chrono::milliseconds(200));
  }
  std::set<uint64_t> lost;
  for (const auto& n : json::Arr(json::Obj(report, "loss"), "all_missing")) {
    if (n.is_number_integer() && n.get<int64_t>() >= 0) lost.insert(n.get<uint64_t>());
  }
  std::string before;  // the target acknowledging just before the fault
  for (const auto& a : attempts) {
    if (fault && a.end < *fault && a.acked) before = a.target;
  }
  const auto& steps = json::Arr(failover, "steps");
  const auto& lag = json::Arr(json::Obj(report, "replication"), "lag");
  double steps_top = 120, steps_end = steps_top + 24.0 * static_cast<double>(std::max<size_t>(steps.size(), 1));
  const auto& events = json::Arr(report, "events");
  std::vector<std::string> observers;
  for (const auto& e : events) {
    std::string o = json::Str(e, "observer");
    if (!o.empty() && std::find(observers.begin(), observers.end(), o) == observers.end()) observers.push_back(o);
  }
  std::sort(observers.begin(), observers.end());
  double views_top = steps_end + 12, views_end = views_top + 22.0 * static_cast<double>(observers.size());
  double lag_top = views_end + 24, lag_height = lag.empty() ? 0 : 80;
  double height = views_end + (lag.empty() ? 0 : lag_height + 40) + 40;
  std::string svg = "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 1000 " + Fixed(height, 0) +
                    "\" width=\"1000\" height=\"" + Fixed(height, 0) + "\" role=\"img\" aria-label=\"drill timeline\">\n";
  svg += "<text class=\"row\" x=\"8\" y=\"64\">client writes</text>\n";
  svg += "<text class=\"row\" x=\"8\" y=\"" + Fixed(steps_top - 8) + "\">failover run</text>\n";
  for (const auto& a : attempts) {
    const char* cls = !a.acked                  ? "fail"
                      : lost.count(a.seq)         ? "lost"
                      : a.end - a.start > kSlow   ? "slow"
                      : a.target == before        ? "old"
                                                  : "new";
    svg += "<rect class=\"" + std::string(cls) + "\" x=\"" + Fixed(axis.X(a.start)) + "\" y=\"48\" width=\"" +
           Fixed(std::max(1.0, axis.X(a.end) - axis.X(a.start))) + "\" height=\"24\"><title>record " +
           std::to_string(a.seq) + " " + HtmlEscape(a.acked ? "acknowledged by " + a.target : a.error) +
           "</title></rect>\n";
  }
  double y = steps_top;
  for (const auto& s : steps) {
    auto a = ParseUtc(json::Str(s, "started_at")), b = ParseUtc(json::Str(s, "ended_at"));
    if (a && b) {
      double x1 = axis.X(*a), x2 = std::max(axis.X(*b), x1 + 2);
      svg += "<rect class=\"step\" x=\"" + Fixed(x1) + "\" y=\"" + Fixed(y) + "\" width=\"" + Fixed(x2 - x1) +
             "\" height=\"18\"><title>" + HtmlEscape(json::Str(s, "output")) + "</title></rect>\n";
      svg += "<text class=\"label\" x=\"" + Fixed(x2 + 4) + "\" y=\"" + Fixed(y + 13) + "\">" +
             HtmlEscape(json::Str(s, "name")) + " " + Figure(s.contains("seconds") ? s["seconds"] : Json()) +
             "</text>\n";
    }
    y += 24;
  }
  svg += ViewsLane(events, axis, views_top, observers);
  if (!lag.empty()) svg += LagLane(lag, json::Obj(report, "objectives"), axis, lag_top, lag_height);
  double bottom = height - 20;
  for (const auto& e : events) {
    auto at = ParseUtc(json::Str(e, "at"));
    if (!at || json::Str(e, "kind") != "epoch") continue;
    svg += Line(axis.X(*at), 84, bottom, "epoch",
                "epoch " + std::to_string(json::U64(e, "epoch")) + ": " + json::Str(e, "primary"), 94);
  }
  if (auto t = ParseUtc(json::Str(json::Obj(report, "crash"), "at"))) {
    svg += Line(axis.X(*t), 110, bottom, "fault", "driver killed", views_top - 2);
  }
  if (fault) svg += Line(axis.X(*fault), 20, bottom, "fault", "fault", 16);
  if (auto t = ParseUtc(json::Str(failover, "run_started_at"))) svg += Line(axis.X(*t), 90, bottom, "run", "run begins", 104);
  if (auto t = ParseUtc(json::Str(client, "recovered"))) svg += Line(axis.X(*t), 30, bottom, "back", "recovered", 28);
  if (rto_limit) svg += Line(axis.X(*rto_limit), 30, bottom, "objective", "RTO objective", 40);
  // The time axis: seconds from the first write.
  double span = std::chrono::duration<double>(axis.to - axis.from).count();
  // About ten ticks at 1, 2 or 5 times a power of ten seconds, whatever the
  // span (a report's times come from a store: it may span centuries).
  double step = 1;
  while (span / step > 12) {
    double m = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    step *= m < 1.5 ? 2 : m < 3 ? 2.5 : 2;
  }
  for (double t = 0; t <= span; t += step) {
    double x = axis.left + (span > 0 ? t / span : 0) * axis.width;
    svg += "<text class=\"tick\" x=\"" + Fixed(x) + "\" y=\"" + Fixed(height - 4) + "\">" + Fixed(t, 0) + "s</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

constexpr const char* kStyle = R"(
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1040px; color: #1d232a; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
.verdict { padding: .8em 1em; border-radius: 6px; font-weight: 600; margin: 1em 0; }
.verdict.pass { background: #e3f5e6; color: #185c24; }
.verdict.fail { background: #fbe3e1; color: #8a1c12; }
.verdict ul { margin: .3em 0 0; font-weight: 400; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { padding: .3em .9em; border-bottom: 1px solid #dde2e6; text-align: left; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -.1em; }
svg { border: 1px solid #dde2e6; border-radius: 6px; background: #fbfcfd; }
svg .old, .legend .old { fill: #7fa7cf; background: #7fa7cf; }
svg .new, .legend .new { fill: #3f9a5a; background: #3f9a5a; }
svg .fail, .legend .fail { fill: #d6453b; background: #d6453b; }
svg .lost, .legend .lost { fill: #1d232a; background: #1d232a; }
svg .slow, .legend .slow { fill: #c9b8e8; background: #c9b8e8; }
svg .step { fill: #e6a23c; }
svg line { stroke-width: 1.5; }
svg .fault { stroke: #d6453b; } svg .run { stroke: #e6a23c; } svg .back { stroke: #3f9a5a; }
svg .objective { stroke: #8a1c12; stroke-dasharray: 5 4; }
svg .axis { stroke: #dde2e6; }
svg .epoch { stroke: #3f6fb0; stroke-dasharray: 2 3; }
svg .seen-up { fill: #3f9a5a; } svg .seen-down { fill: #d6453b; }
svg .vote-down, .legend .vote-down { fill: #d6453b; background: #d6453b; }
svg .vote-up, .legend .vote-up { fill: #7fa7cf; background: #7fa7cf; } svg .gone { fill: #6b7680; font-style: italic; }
svg .lag { fill: none; stroke-width: 2; } svg .lag0 { stroke: #3f6fb0; } svg .lag1 { stroke: #3f9a5a; } svg .lag2 { stroke: #b05a3f; }
svg text { font: 12px system-ui, sans-serif; fill: #1d232a; }
svg .tick { fill: #6b7680; }
pre { white-space: pre-wrap; background: #f3f5f7; padding: .5em; border-radius: 4px; }
)";

// The figures of one phase (the report's top level, or its failback)
// beside the objectives; a planned move's objective is to lose nothing.
std::string Figures(const Json& phase, const Json& objectives) {
  auto num = [](const Json& j, const char* k) { return j.contains(k) ? j[k] : Json(); };
  const Json& client = json::Obj(phase, "client");
  const Json& loss = json::Obj(phase, "loss");
  const Json& failover = json::Obj(phase, "failover");
  bool planned = json::Bool(failover, "planned");
  std::string h = "<table>\n<tr><th>measure</th><th>value</th><th>objective</th></tr>\n";
  h += "<tr><td>RTO</td><td>" +
       (num(phase, "rto_seconds").is_null() ? std::string("never recovered") : Figure(num(phase, "rto_seconds"))) +
       "</td><td>" + Figure(num(objectives, "rto_seconds")) + "</td></tr>\n";
  h += "<tr><td>RPO</td><td>" + Figure(num(phase, "rpo_seconds")) + "</td><td>" +
       (planned ? std::string("nothing lost (planned)") : Figure(num(objectives, "rpo_seconds"))) + "</td></tr>\n";
  h += "<tr><td>records lost</td><td>" + std::to_string(json::U64(loss, "missing")) + " of " +
       std::to_string(json::U64(client, "acknowledged")) + " acknowledged</td><td></td></tr>\n";
  if (!num(phase, "detection_seconds").is_null()) {
    h += "<tr><td>detection</td><td>" + Figure(num(phase, "detection_seconds")) + "</td><td></td></tr>\n";
  }
  h += "<tr><td>primary after</td><td>" + HtmlEscape(json::Str(failover, "primary")) + " (epoch " +
       std::to_string(json::U64(failover, "epoch")) + ")</td><td></td></tr>\n</table>\n";
  return h;
}

// The runbook steps of one phase's failover run, and the client's first error.
std::string Steps(const Json& phase) {
  auto num = [](const Json& j, const char* k) { return j.contains(k) ? j[k] : Json(); };
  std::string h = "<table>\n<tr><th>step</th><th>state</th><th>took</th><th>output</th></tr>\n";
  for (const auto& s : json::Arr(json::Obj(phase, "failover"), "steps")) {
    h += "<tr><td>" + HtmlEscape(json::Str(s, "name")) + "</td><td>" + HtmlEscape(json::Str(s, "state")) + "</td><td>" +
         Figure(num(s, "seconds")) + "</td><td><pre>" + HtmlEscape(json::Str(s, "output")) + "</pre></td></tr>\n";
  }
  h += "</table>\n";
  const Json& client = json::Obj(phase, "client");
  if (!json::Str(client, "first_error").empty()) {
    h += "<p>The client's first error after the fault: <code>" + HtmlEscape(json::Str(client, "first_error")) +
         "</code></p>\n";
  }
  return h;
}

}  // namespace

std::string RenderHtml(const Json& report, const std::vector<Attempt>& attempts) {
  bool pass = json::Str(report, "verdict") == "pass";
  const Json& objectives = json::Obj(report, "objectives");
  std::string title = "lifeboat drill: " + json::Str(report, "scenario") + " on " + json::Str(report, "plan");
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" + HtmlEscape(title) +
                  "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";
  h += "<h1>" + HtmlEscape(title) + "</h1>\n<div>fault at " + HtmlEscape(json::Str(json::Obj(report, "fault"), "at")) +
       ": " + HtmlEscape(json::Str(json::Obj(report, "fault"), "region")) + ", " +
       HtmlEscape(json::Str(json::Obj(report, "fault"), "what")) + "</div>\n";
  h += std::string("<div class=\"verdict ") + (pass ? "pass\">PASS: within the plan's objectives" : "fail\">FAIL");
  if (!pass) {
    h += "<ul>";
    for (const auto& m : json::Arr(report, "missed")) h += "<li>" + HtmlEscape(m.is_string() ? m.get<std::string>() : "") + "</li>";
    h += "</ul>";
  }
  h += "</div>\n";
  h += Figures(report, objectives);
  h += "<h2>Timeline</h2>\n<div class=\"legend\"><span><i class=\"old\"></i>acknowledged by the old primary</span>"
       "<span><i class=\"new\"></i>acknowledged elsewhere</span><span><i class=\"fail\"></i>failed</span>"
       "<span><i class=\"lost\"></i>acknowledged, then lost</span>"
       "<span><i class=\"slow\"></i>answered after a wait of over 250 ms</span>"
       "<span><i class=\"vote-down\"></i>an agent votes the primary down</span>"
       "<span><i class=\"vote-up\"></i>and up again</span></div>\n";
  h += Timeline(report, attempts);
  h += "<h2>Runbook steps</h2>\n" + Steps(report);
  if (report.contains("failback") && report["failback"].is_object()) {
    const Json& back = report["failback"];
    h += "<h2>Failback</h2>\n<div>" + HtmlEscape(json::Str(json::Obj(back, "fault"), "what")) + " from " +
         HtmlEscape(json::Str(json::Obj(back, "fault"), "region")) + " at " +
         HtmlEscape(json::Str(json::Obj(back, "fault"), "at")) + "</div>\n";
    h += Figures(back, objectives) + Steps(back);
  }
  h += "</body></html>\n";
  return h;
}

Json CompactAttempts(const std::vector<Attempt>& attempts) {
  Json out = {{"t0", ""}, {"targets", Json::array()}, {"errors", Json::array()}, {"rows", Json::array()}};
  if (attempts.empty()) return out;
  Clock::TimePoint t0 = attempts.front().start;
  for (const auto& a : attempts) t0 = std::min(t0, a.start);
  t0 = std::chrono::floor<std::chrono::milliseconds>(t0);  // as FormatUtc writes it
  out["t0"] = FormatUtc(t0);
  std::map<std::string, int> targets, errors;
  auto index = [&](std::map<std::string, int>& seen, const char* list, const std::string& v) {
    if (v.empty()) return -1;
    auto [it, added] = seen.emplace(v, static_cast<int>(seen.size()));
    if (added) out[list].push_back(v);
    return it->second;
  };
  auto us = [&](Clock::TimePoint t) { return std::chrono::duration_cast<std::chrono::microseconds>(t - t0).count(); };
  for (const auto& a : attempts) {
    out["rows"].push_back({a.seq, us(a.start), us(a.end), index(targets, "targets", a.target), a.acked ? 1 : 0,
                           index(errors, "errors", a.error)});
  }
  return out;
}

std::vector<Attempt> ExpandAttempts(const Json& compact) {
  std::vector<Attempt> out;
  auto t0 = ParseUtc(json::Str(compact, "t0"));
  if (!t0) return out;
  const Json& targets = json::Arr(compact, "targets");
  const Json& errors = json::Arr(compact, "errors");
  auto text = [](const Json& list, const Json& i) {
    if (!i.is_number_integer()) return std::string();
    int64_t n = i.get<int64_t>();
    return n >= 0 && static_cast<size_t>(n) < list.size() && list[n].is_string() ? list[n].get<std::string>()
                                                                                   : std::string();
  };
  for (const auto& row : json::Arr(compact, "rows")) {
    if (!row.is_array() || row.size() != 6 || !row[0].is_number_unsigned() || !row[1].is_number_integer() ||
        !row[2].is_number_integer() || !row[4].is_number_integer()) {
      continue;
    }
    // Offsets from t0 in microseconds; within a year, or the conversion to
    // the time point's nanoseconds could overflow.
    constexpr int64_t kYearUs = 366LL * 24 * 3600 * 1000000;
    auto offset_ok = [&](const Json& v) { int64_t x = v.get<int64_t>(); return x > -kYearUs && x < kYearUs; };
    if (!offset_ok(row[1]) || !offset_ok(row[2])) continue;
    Attempt a;
    a.seq = row[0].get<uint64_t>();
    a.start = *t0 + std::chrono::microseconds(row[1].get<int64_t>());
    a.end = *t0 + std::chrono::microseconds(row[2].get<int64_t>());
    a.target = text(targets, row[3]);
    a.acked = row[4].get<int64_t>() == 1;
    a.error = text(errors, row[5]);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace lifeboat::drill
