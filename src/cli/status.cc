#include "cli/status.h"

#include <future>

#include "cli/common.h"
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
    if (!r.up || !r.status.contains("services") || !r.status["services"].contains("replication")) continue;
    for (const auto& v : r.status["services"]["replication"]) {
      if (v.value("volume", "") != volume || v.value("role", "") != "source") continue;
      uint64_t epoch = v.value("epoch", uint64_t{0});
      if (!source || epoch > best) {
        source = r.region;
        best = epoch;
      }
    }
  }
  return source;
}

std::string PrimaryLine(const std::vector<RegionStatus>& regions) {
  for (const auto& r : regions) {
    if (!r.up || !r.status.contains("failover")) continue;
    const auto& f = r.status["failover"];
    if (!f.value("primary", nlohmann::ordered_json()).is_string()) continue;
    std::string line = "primary: " + f["primary"].get<std::string>() + " (epoch " + f["epoch"].dump() + ")";
    const auto& run = f.value("run", nlohmann::ordered_json());
    if (run.is_object() && run.value("state", "") == "running") {
      std::string step = "?";
      for (const auto& st : run["steps"]) {
        if (st.value("state", "") != "done") {
          step = st.value("name", "?");
          break;
        }
      }
      line += "; failover to " + run.value("to", "?") + " running, step " + step + ", driven by " +
              run.value("owner", "?");
    } else if (run.is_object() && run.value("state", "") == "failed") {
      line += "; the last failover (to " + run.value("to", "?") + ") failed: see `lifeboat status -o json`";
    }
    line += "\n";
    // What each region's agent sees of the primary (the failover service's views).
    const auto& services = r.status.value("services", nlohmann::ordered_json::object());
    const auto& fo = services.value("failover", nlohmann::ordered_json());
    if (fo.is_object() && fo.contains("views") && fo["views"].is_array() && !fo["views"].empty()) {
      std::string views;
      for (const auto& v : fo["views"]) {
        std::string seen = v.value("primary_down", false) ? "DOWN" : v.value("down_for_ms", 0) > 0 ? "failing" : "up";
        if (v.value("down_for_ms", 0) > 0) seen += " for " + ShortDuration(v.value("down_for_ms", 0) / 1000.0);
        for (const auto& c : v.value("copies", nlohmann::ordered_json::array())) {
          if (c.is_object() && c.value("fenced", false)) seen += ", its copy of " + c.value("volume", "?") + " fenced";
        }
        views += (views.empty() ? "" : "; ") + v.value("observer", "?") + " sees it " + seen;
      }
      const auto& verdict = fo.value("verdict", nlohmann::ordered_json::object());
      line += "views: " + views + " (" + std::to_string(verdict.value("votes", 0)) + " down, quorum " +
              std::to_string(fo.value("quorum", 0)) + ", mode " + fo.value("mode", "?") + ")\n";
    }
    return line;
  }
  return "";
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
  return j;
}

}  // namespace lifeboat::cli
