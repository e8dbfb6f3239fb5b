#include "cli/status.h"

#include <cstdio>
#include <future>

#include "cli/common.h"
#include "core/json_read.h"
#include "net/http.h"

namespace lifeboat::cli {

std::vector<RegionStatus> CollectStatus(const plan::Plan& plan, Duration timeout) {
  std::vector<std::future<RegionStatus>> pending;
  for (const auto& r : plan.regions) {
    pending.push_back(std::async(std::launch::async, [&r, timeout] {
      RegionStatus s;
      s.region = r.name;
      s.role = plan::Name(r.role);
      s.agent = r.agent.ToString();
      auto res = net::Fetch("GET", net::BaseUrl(r.agent) + "/v1/status", timeout);
      if (!res.ok()) {
        s.error = res.error().code() == Code::kDeadlineExceeded
                      ? "no answer within " + FormatDuration(timeout)
                      : "unreachable (" + res.error().message().substr(res.error().message().rfind(": ") + 2) + ")";
        return s;
      }
      if (res->status != 200) {
        s.error = "HTTP " + std::to_string(res->status) + " from /v1/status";
        return s;
      }
      auto j = nlohmann::ordered_json::parse(res->body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        s.error = "the agent's /v1/status is not JSON";
        return s;
      }
      if (j.value("region", "") != r.name) {
        s.error = "the agent at " + s.agent + " runs region '" + j.value("region", "?") + "', not '" + r.name + "'";
        return s;
      }
      s.up = true;
      s.role = j.value("role", s.role);
      s.version = j.value("version", "");
      s.uptime_seconds = j.value("uptime_seconds", -1.0);
      s.status = std::move(j);
      return s;
    }));
  }
  std::vector<RegionStatus> out;
  for (auto& f : pending) out.push_back(f.get());
  return out;
}

namespace {

// "12m ago": the newest backup of a volume whose source this region is,
// scheduled or made by hand (the agent's catalog), or "-".
std::string LastBackup(const RegionStatus& r) {
  if (!r.up || !r.status.contains("services") || !r.status["services"].contains("backups")) return "-";
  const auto& b = r.status["services"]["backups"];
  double newest = -1;
  auto consider = [&](const nlohmann::ordered_json& list) {
    if (!list.is_array()) return;
    for (const auto& e : list) {
      if (!e.is_object() || !e.contains("age_seconds") || !e["age_seconds"].is_number()) continue;
      double age = e["age_seconds"].get<double>();
      if (newest < 0 || age < newest) newest = age;
    }
  };
  if (b.is_object()) {
    consider(b.value("schedules", nlohmann::ordered_json()));
    consider(b.value("latest", nlohmann::ordered_json()));
  } else {
    consider(b);  // an agent from before the catalog: its schedules only
  }
  return newest < 0 ? "-" : ShortDuration(newest) + " ago";
}

}  // namespace

std::optional<std::string> ReportedSource(const std::vector<RegionStatus>& regions, const std::string& volume) {
  std::optional<std::string> source;
  uint64_t best = 0;
  for (const auto& r : regions) {
    if (!r.up) continue;
    for (const auto& v : json::Arr(json::Obj(r.status, "services"), "replication")) {
      if (json::Str(v, "volume") != volume || json::Str(v, "role") != "source") continue;
      uint64_t epoch = json::U64(v, "epoch");
      if (!source || epoch > best) {
        source = r.region;
        best = epoch;
      }
    }
  }
  return source;
}

std::string PrimaryLine(const std::vector<RegionStatus>& regions, Clock::TimePoint now) {
  using json::Arr;
  using json::Obj;
  using json::Str;
  for (const auto& r : regions) {
    if (!r.up) continue;
    const auto& f = Obj(r.status, "failover");
    if (Str(f, "primary").empty()) continue;
    std::string line = "primary: " + Str(f, "primary") + " (epoch " + std::to_string(json::U64(f, "epoch")) + ")";
    const auto& run = Obj(f, "run");
    if (Str(run, "state") == "running") {
      std::string step = "?";
      for (const auto& st : Arr(run, "steps")) {
        if (Str(st, "state") != "done") {
          step = Str(st, "name", "?");
          break;
        }
      }
      line += "; failover to " + Str(run, "to", "?") + " running";
      // The run's start as the driver's clock wrote it: a skewed clock
      // shows as a wrong figure, never as a negative one.
      if (auto started = ParseUtc(Str(run, "started_at")); started && *started <= now) {
        auto tenths = std::chrono::floor<std::chrono::duration<int64_t, std::deci>>(now - *started);
        line += " for " + FormatDuration(std::chrono::duration_cast<Duration>(tenths));
      }
      line += ", step " + step + ", driven by " + Str(run, "owner", "?");
    } else if (Str(run, "state") == "failed") {
      line += "; the last failover (to " + Str(run, "to", "?") + ") failed: see `lifeboat status -o json`";
    }
    line += "\n";
    // What each region's agent sees of the primary (the failover service's views).
    const auto& fo = Obj(Obj(r.status, "services"), "failover");
    if (!Arr(fo, "views").empty()) {
      std::string views;
      for (const auto& v : Arr(fo, "views")) {
        int64_t down_ms = json::I64(v, "down_for_ms");
        std::string seen = json::Bool(v, "primary_down") ? "DOWN" : down_ms > 0 ? "failing" : "up";
        if (down_ms > 0) seen += " for " + ShortDuration(static_cast<double>(down_ms) / 1000.0);
        for (const auto& c : Arr(v, "copies")) {
          if (json::Bool(c, "fenced")) seen += ", its copy of " + Str(c, "volume", "?") + " fenced";
        }
        views += (views.empty() ? "" : "; ") + Str(v, "observer", "?") + " sees it " + seen;
      }
      const auto& verdict = Obj(fo, "verdict");
      line += "views: " + views + " (" + std::to_string(json::I64(verdict, "votes")) + " down, quorum " +
              std::to_string(json::I64(fo, "quorum")) + ", mode " + Str(fo, "mode", "?") + ")\n";
    }
    return line;
  }
  return "";
}

std::vector<VolumeLag> VolumeLags(const plan::Plan& plan, const std::vector<RegionStatus>& regions) {
  using json::Arr;
  using json::Obj;
  using json::Str;
  std::vector<VolumeLag> out;
  for (const auto& pv : plan.volumes) {
    if (pv.replication.mode != plan::ReplicationMode::kContinuous || pv.path.size() < 2) continue;
    bool any_source = false;
    for (const auto& r : regions) {
      if (!r.up) continue;
      for (const auto& v : Arr(Obj(r.status, "services"), "replication")) {
        if (Str(v, "volume") != pv.name) continue;
        std::string role = Str(v, "role");
        VolumeLag row;
        row.volume = pv.name;
        row.source = r.region;
        row.epoch = json::U64(v, "epoch");
        if (role == "fenced") {
          row.state = "fenced: sends nothing until a failback";
          out.push_back(row);
          continue;
        }
        if (role != "source") continue;
        any_source = true;
        if (std::string problem = Str(v, "problem"); !problem.empty()) {
          row.state = "not replicating: " + problem;
          out.push_back(row);
          continue;
        }
        for (const auto& t : Arr(v, "targets")) {
          VolumeLag lag = row;
          lag.target = Str(t, "target", "?");
          lag.state = Str(t, "state", "?");
          if (std::string error = Str(t, "last_error"); !error.empty()) lag.state += " (" + error + ")";
          lag.in_sync = json::Bool(t, "in_sync");
          lag.rpo_seconds = json::Num(t, "rpo_seconds");
          lag.pending_files = json::U64(t, "pending_files");
          lag.pending_bytes = json::U64(t, "pending_bytes");
          out.push_back(std::move(lag));
        }
      }
    }
    if (!any_source) {
      VolumeLag none;
      none.volume = pv.name;
      none.state = "no agent that answered is its source: the lag is unknown";
      out.push_back(std::move(none));
    }
  }
  return out;
}

std::string VolumeLagTable(const std::vector<VolumeLag>& lags) {
  Table t({"VOLUME", "SOURCE", "EPOCH", "TARGET", "STATE", "LAG", "PENDING"});
  for (const auto& l : lags) {
    std::string lag = !l.rpo_seconds ? "-" : l.in_sync ? "in sync" : ShortDuration(*l.rpo_seconds);
    std::string pending = l.target.empty() ? "" : std::to_string(l.pending_files) + " files, " + HumanBytes(l.pending_bytes);
    t.Add({l.volume, l.source.empty() ? "-" : l.source, l.source.empty() ? "" : std::to_string(l.epoch),
           l.target.empty() ? "-" : l.target, l.state, l.target.empty() ? "-" : lag, pending});
  }
  return t.Render();
}

std::string ProxyTable(const std::vector<RegionStatus>& regions) {
  Table t({"LISTENER", "REGION", "LISTEN", "SENDS TO", "ACTIVE", "REFUSED", "SWITCHES"});
  bool any = false;
  for (const auto& r : regions) {
    if (!r.up) continue;
    for (const auto& l : json::Arr(json::Obj(json::Obj(r.status, "services"), "proxy"), "listeners")) {
      std::string to;
      for (const auto& e : json::Arr(l, "sends_to")) {
        if (e.is_string()) to += (to.empty() ? "" : ", ") + e.get<std::string>();
      }
      if (to.empty()) to = "nobody (no endpoint up)";
      if (json::Bool(l, "failed_open")) to += " (failing open: none up)";
      t.Add({json::Str(l, "name", "?") + " (" + json::Str(l, "protocol", "?") + ")", r.region, json::Str(l, "listen", "?"),
             to, std::to_string(json::U64(l, "active")), std::to_string(json::U64(l, "refused")),
             std::to_string(json::U64(l, "switches"))});
      any = true;
    }
  }
  return any ? t.Render() : "";
}

std::string DatabaseTable(const std::vector<RegionStatus>& regions) {
  Table t({"DATABASE", "REGION", "ROLE", "SERVER", "WAL", "LAG", "DETAIL"});
  bool any = false;
  for (const auto& r : regions) {
    if (!r.up) continue;
    const auto& dbs = json::Obj(json::Obj(r.status, "services"), "databases");
    if (!dbs.is_object()) continue;
    for (const auto& [name, d] : dbs.items()) {
      if (!d.is_object()) continue;
      std::string role = json::Str(d, "role", "?");
      std::string wal = json::Str(d, "wal_lsn", json::Str(d, "replay_lsn", "-"));
      std::string lag = "-", detail;
      if (role == "standby") {
        auto bytes = json::Num(d, "lag_bytes");
        auto secs = json::Num(d, "lag_seconds");
        auto seconds = [](double v) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.1fs", v);
          return v < 60 ? std::string(buf) : ShortDuration(v);
        };
        lag = bytes ? HumanBytes(static_cast<uint64_t>(*bytes)) + (secs ? ", " + seconds(*secs) : "")
                    : "not measured";
        detail = "upstream " + json::Str(d, "upstream", "?");
      } else if (role == "primary" || role == "fenced primary") {
        size_t n = json::Arr(d, "standbys").size();
        detail = std::to_string(n) + " standby(s)";
        if (json::Bool(d, "sync_degraded")) detail += ", sync degraded";
      }
      if (auto e = json::Str(d, "error"); !e.empty()) detail = e;
      t.Add({name, r.region, role, json::Str(d, "server", "?"), wal.empty() ? "-" : wal, lag, detail});
      any = true;
    }
  }
  return any ? t.Render() : "";
}

std::string StatusTable(const std::vector<RegionStatus>& regions) {
  Table t({"REGION", "ROLE", "AGENT", "STATE", "VERSION", "UPTIME", "LAST BACKUP", "DETAIL"});
  for (const auto& r : regions) {
    t.Add({r.region, r.role, r.agent, r.up ? "up" : "down", r.up ? r.version : "-",
           r.up ? ShortDuration(r.uptime_seconds) : "-", LastBackup(r), r.error});
  }
  return t.Render();
}

nlohmann::ordered_json StatusJson(const plan::Plan& plan, const std::vector<RegionStatus>& regions) {
  nlohmann::ordered_json j;
  j["plan"] = plan.name;
  auto list = nlohmann::ordered_json::array();
  for (const auto& r : regions) {
    nlohmann::ordered_json e = {{"region", r.region}, {"role", r.role}, {"agent", r.agent},
                                {"state", r.up ? "up" : "down"}};
    if (r.up) {
      e["version"] = r.version;
      e["uptime_seconds"] = r.uptime_seconds;
      e["status"] = r.status;
    } else {
      e["error"] = r.error;
    }
    list.push_back(e);
  }
  j["regions"] = list;
  auto volumes = nlohmann::ordered_json::array();
  for (const auto& l : VolumeLags(plan, regions)) {
    nlohmann::ordered_json v = {{"volume", l.volume}};
    v["source"] = l.source.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(l.source);
    v["epoch"] = l.source.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(l.epoch);
    v["target"] = l.target.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(l.target);
    v["state"] = l.state;
    v["in_sync"] = l.in_sync;
    v["lag_seconds"] = l.rpo_seconds ? nlohmann::ordered_json(*l.rpo_seconds) : nlohmann::ordered_json();
    v["pending_files"] = l.pending_files;
    v["pending_bytes"] = l.pending_bytes;
    volumes.push_back(std::move(v));
  }
  j["volumes"] = volumes;
  return j;
}

}  // namespace lifeboat::cli
