#include "agent/status_page.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "core/json_read.h"
#include "core/strings.h"
#include "core/units.h"

namespace lifeboat::agent {
namespace {

using Json = nlohmann::ordered_json;
using json::Arr;
using json::Obj;
using json::Str;

std::string E(std::string_view s) { return HtmlEscape(s); }

// "1.2s", "340ms", "3m20s": a duration to a tenth of a second.
std::string Took(double seconds) {
  if (!(seconds >= 0)) return "?";
  auto tenths = std::chrono::milliseconds(std::llround(seconds * 10) * 100);
  if (seconds < 1) tenths = std::chrono::milliseconds(std::llround(seconds * 1000));
  return FormatDuration(std::chrono::duration_cast<Duration>(tenths));
}

std::string Since(const std::string& utc, Clock::TimePoint now) {
  auto t = ParseUtc(utc);
  if (!t || *t > now) return "";
  return Took(std::chrono::duration<double>(now - *t).count());
}

std::string Pill(const char* cls, const std::string& text) {
  return std::string("<span class=\"pill ") + cls + "\">" + E(text) + "</span>";
}

constexpr const char* kStyle = R"(
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #1d232a; padding: 0 1em; }
h1 { font-size: 1.4em; margin: 0; } h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
.sub { color: #5b6670; }
.banner { padding: .8em 1em; border-radius: 6px; margin: 1em 0; font-weight: 600; background: #e8eef5; }
.banner.running { background: #fff3d6; color: #6b4a00; }
.banner.failed { background: #fbe3e1; color: #8a1c12; }
table { border-collapse: collapse; }
td, th { padding: .3em .8em; border-bottom: 1px solid #dde2e6; text-align: left; vertical-align: top; }
.pill { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: .9em; }
.ok { background: #e3f5e6; color: #185c24; } .bad { background: #fbe3e1; color: #8a1c12; }
.warn { background: #fff3d6; color: #6b4a00; } .none { background: #eef1f3; color: #5b6670; }
footer { margin-top: 2em; color: #5b6670; font-size: .9em; }
)";

std::string Banner(const Json& failover, Clock::TimePoint now) {
  std::string primary = Str(failover, "primary");
  std::string h = "<div class=\"banner";
  const Json& run = Obj(failover, "run");
  std::string state = Str(run, "state");
  std::string text = primary.empty() ? "the primary is not known (the state store did not answer)"
                                     : "primary: " + primary + " (epoch " + std::to_string(json::U64(failover, "epoch")) + ")";
  if (state == "running") {
    std::string step = "?";
    size_t done = 0, all = Arr(run, "steps").size();
    for (const auto& s : Arr(run, "steps")) {
      if (Str(s, "state") == "done") {
        ++done;
      } else if (step == "?") {
        step = Str(s, "name", "?");
      }
    }
    std::string took = Since(Str(run, "started_at"), now);
    h += " running\" id=\"failover\">";
    h += E(text) + " &mdash; failover to " + E(Str(run, "to", "?")) + " running" + (took.empty() ? "" : " for " + took) +
         ": step " + E(step) + " (" + std::to_string(done) + " of " + std::to_string(all) + " done), driven by " +
         E(Str(run, "owner", "?"));
  } else if (state == "failed") {
    h += " failed\" id=\"failover\">" + E(text) + " &mdash; the last failover (to " + E(Str(run, "to", "?")) +
         ") failed; see its steps below";
  } else {
    h += "\" id=\"failover\">" + E(text);
  }
  return h + "</div>\n";
}

std::string Steps(const Json& run, Clock::TimePoint now) {
  if (Arr(run, "steps").empty()) return "";
  std::string h = "<h2>Failover run " + E(Str(run, "id")) + " (" + E(Str(run, "from", "?")) + " to " +
                  E(Str(run, "to", "?")) + ", " + E(Str(run, "state")) +
                  ")</h2>\n<table id=\"steps\"><tr><th>step</th><th>state</th><th>took</th><th>output</th></tr>\n";
  for (const auto& s : Arr(run, "steps")) {
    std::string state = Str(s, "state");
    const char* cls = state == "done" ? "ok" : state == "failed" ? "bad" : state == "running" ? "warn" : "none";
    std::string took;
    auto a = ParseUtc(Str(s, "started_at")), b = ParseUtc(Str(s, "ended_at"));
    if (a && b && *b >= *a) {
      took = Took(std::chrono::duration<double>(*b - *a).count());
    } else if (a && state == "running") {
      took = Since(Str(s, "started_at"), now) + " so far";
    }
    h += "<tr><td>" + E(Str(s, "name")) + "</td><td>" + Pill(cls, state) + "</td><td>" + E(took) + "</td><td>" +
         E(Str(s, "output")) + "</td></tr>\n";
  }
  return h + "</table>\n";
}

std::string Regions(const Json& status, const Json& views, const std::string& primary) {
  std::string h = "<h2>Regions</h2>\n<table id=\"regions\"><tr><th>region</th><th>role in the plan</th><th>agent</th>"
                  "<th>sees the primary</th></tr>\n";
  for (const auto& r : Arr(status, "regions")) {
    std::string name = Str(r, "name");
    const Json* view = nullptr;
    for (const auto& v : views) {
      if (Str(v, "observer") == name) view = &v;
    }
    std::string agent = view ? Pill("ok", "reporting") : Pill("bad", "no view: agent down or cut off");
    std::string sees = "&ndash;";
    if (view && name != primary) {
      int64_t down_ms = json::I64(*view, "down_for_ms");
      if (json::Bool(*view, "primary_down")) {
        sees = Pill("bad", "DOWN for " + Took(static_cast<double>(down_ms) / 1000)) + " " + E(Str(*view, "reason"));
      } else if (down_ms > 0) {
        sees = Pill("warn", "failing for " + Took(static_cast<double>(down_ms) / 1000)) + " " + E(Str(*view, "reason"));
      } else {
        sees = Pill("ok", "up");
      }
    } else if (name == primary) {
      sees = Pill("none", "is the primary");
    }
    h += "<tr><td>" + E(name) + "</td><td>" + E(Str(r, "role")) + "</td><td>" + agent + "</td><td>" + sees +
         "</td></tr>\n";
  }
  return h + "</table>\n";
}

std::string Health(const Json& views, const Json& combined) {
  std::set<std::string> endpoints;
  for (const auto& v : views) {
    for (const auto& [ep, ok] : Obj(v, "endpoints").items()) endpoints.insert(ep);
  }
  if (endpoints.empty()) return "";
  std::string h = "<h2>Endpoint health from each region</h2>\n<table id=\"health\"><tr><th>endpoint</th>";
  for (const auto& v : views) h += "<th>from " + E(Str(v, "observer")) + "</th>";
  h += "<th>combined</th></tr>\n";
  for (const auto& ep : endpoints) {
    h += "<tr><td>" + E(ep) + "</td>";
    for (const auto& v : views) {
      const Json& e = Obj(v, "endpoints");
      auto it = e.find(ep);
      h += "<td>" + (it == e.end() || !it->is_boolean() ? Pill("none", "-")
                     : it->get<bool>()                  ? Pill("ok", "healthy")
                                                        : Pill("bad", "failing")) +
           "</td>";
    }
    auto c = combined.is_object() ? combined.find(ep) : combined.end();
    h += "<td>" + (!combined.is_object() || c == combined.end() || !c->is_boolean() ? Pill("none", "by its own probe")
                   : c->get<bool>()                                                 ? Pill("ok", "healthy")
                                                                                    : Pill("bad", "failing")) +
         "</td></tr>\n";
  }
  return h + "</table>\n";
}

std::string Replication(const Json& views) {
  std::string rows;
  for (const auto& v : views) {
    for (const auto& s : Arr(v, "sending")) {
      std::string lag = json::Bool(s, "in_sync") ? Pill("ok", "in sync")
                        : s.contains("lag_ms") && s["lag_ms"].is_number_integer()
                            ? Pill("warn", Took(static_cast<double>(s["lag_ms"].get<int64_t>()) / 1000) + " behind")
                            : Pill("bad", "not streaming");
      rows += "<tr><td>" + E(Str(s, "volume")) + "</td><td>" + E(Str(v, "observer")) + "</td><td>" + E(Str(s, "target")) +
              "</td><td>" + lag + "</td></tr>\n";
    }
    for (const auto& c : Arr(v, "copies")) {
      if (json::Bool(c, "fenced")) {
        rows += "<tr><td>" + E(Str(c, "volume")) + "</td><td>" + E(Str(v, "observer")) + "</td><td></td><td>" +
                Pill("bad", "fenced at epoch " + std::to_string(json::U64(c, "epoch"))) + "</td></tr>\n";
      }
    }
  }
  if (rows.empty()) return "";
  return "<h2>Replication</h2>\n<table id=\"replication\"><tr><th>volume</th><th>from</th><th>to</th><th>lag</th></tr>\n" +
         rows + "</table>\n";
}

std::string Backups(const Json& backup) {
  const auto& latest = Arr(backup, "latest");
  if (latest.empty()) return "";
  std::string h = "<h2>Newest backups</h2>\n<table id=\"backups\"><tr><th>volume</th><th>backup</th><th>location</th>"
                  "<th>age</th></tr>\n";
  for (const auto& l : latest) {
    h += "<tr><td>" + E(Str(l, "volume")) + "</td><td>" + E(Str(l, "backup").substr(0, 8)) + "</td><td>" +
         E(Str(l, "location")) + "</td><td>" + E(Took(json::Num(l, "age_seconds").value_or(-1))) + "</td></tr>\n";
  }
  return h + "</table>\n";
}

// The newest drills recorded in the store (`lifeboat drill run`).
std::string Drills(const Json& drills, Clock::TimePoint now) {
  const auto& recent = Arr(drills, "recent");
  if (recent.empty()) return "";
  std::string h = "<h2>Recent drills</h2>\n<table id=\"drills\"><tr><th>drill</th><th>verdict</th><th>RTO</th>"
                  "<th>RPO</th><th>ended</th></tr>\n";
  auto figure = [](const Json& d, const char* k) {
    auto v = json::Num(d, k);
    return v ? Took(*v) : std::string("&ndash;");
  };
  for (const auto& d : recent) {
    bool pass = Str(d, "verdict") == "pass";
    std::string why;
    for (const auto& m : Arr(d, "missed")) why += (why.empty() ? " " : "; ") + (m.is_string() ? m.get<std::string>() : "");
    h += "<tr><td>" + E(Str(d, "id")) + "</td><td>" + Pill(pass ? "ok" : "bad", pass ? "pass" : "FAIL") + E(why) +
         "</td><td>" + figure(d, "rto_seconds") + "</td><td>" + figure(d, "rpo_seconds") + "</td><td>" +
         E(Since(Str(d, "ended_at"), now).empty() ? Str(d, "ended_at") : Since(Str(d, "ended_at"), now) + " ago") +
         "</td></tr>\n";
  }
  return h + "</table>\n";
}

}  // namespace

std::string RenderStatusPage(const Json& status, Clock::TimePoint now) {
  const Json& failover = Obj(status, "failover");
  const Json& services = Obj(status, "services");
  const Json& fo = Obj(services, "failover");
  const Json& views = Arr(fo, "views");
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                  "<meta http-equiv=\"refresh\" content=\"2\">\n<title>lifeboat: " +
                  E(Str(status, "plan")) + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";
  h += "<h1>lifeboat: " + E(Str(status, "plan")) + "</h1>\n<div class=\"sub\">as region " + E(Str(status, "region")) +
       "'s agent sees it at " + E(FormatUtc(now)) + " &middot; lifeboat " + E(Str(status, "version")) +
       " &middot; refreshes every 2 seconds</div>\n";
  h += Banner(failover, now);
  if (!fo.empty()) {
    const Json& verdict = Obj(fo, "verdict");
    h += "<div class=\"sub\">" + std::to_string(json::I64(verdict, "votes")) + " view(s) see the primary down; quorum " +
         std::to_string(json::I64(fo, "quorum")) + ", mode " + E(Str(fo, "mode", "?")) + ", grace " +
         E(Str(fo, "grace", "?")) + "</div>\n";
  }
  h += Regions(status, views, Str(failover, "primary"));
  h += Health(views, Obj(fo, "endpoints"));
  h += Replication(views);
  h += Backups(Obj(services, "backup"));
  h += Steps(Obj(failover, "run"), now);
  h += Drills(Obj(services, "drills"), now);
  h += "<footer>The same as JSON: <a href=\"/v1/status\">/v1/status</a> &middot; metrics: <a href=\"/metrics\">/metrics"
       "</a></footer>\n</body></html>\n";
  return h;
}

}  // namespace lifeboat::agent
