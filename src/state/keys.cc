#include "state/keys.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "core/json_read.h"

namespace lifeboat::state {

using Json = nlohmann::ordered_json;

namespace keys {

namespace {
std::string Own(std::string_view region, std::string_view rest) {
  return "regions/" + std::string(region) + "/" + std::string(rest);
}
}  // namespace

Key<int64_t> AgentStarts(std::string_view region) { return Key<int64_t>(Own(region, "agent/starts")); }
Key<std::string> AgentFirstStartedAt(std::string_view region) {
  return Key<std::string>(Own(region, "agent/first_started_at"));
}
Key<VolumeRole> VolumeRoleOf(std::string_view region, std::string_view volume) {
  return Key<VolumeRole>(Own(region, "replicate/" + std::string(volume) + "/role"));
}
Key<DatabaseRole> DatabaseRoleOf(std::string_view region, std::string_view database) {
  return Key<DatabaseRole>(Own(region, "db/" + std::string(database) + "/role"));
}
Key<RestoreRecord> RestoreOf(std::string_view region) { return Key<RestoreRecord>(Own(region, "failover/restore")); }
Key<LastBackup> LastBackupOf(std::string_view region, std::string_view schedule, std::string_view volume) {
  return Key<LastBackup>(Own(region, "backup/" + std::string(schedule) + "/" + std::string(volume) + "/last"));
}
Key<RoutingControl> RoutingControlOf(std::string_view region) {
  return Key<RoutingControl>(std::string(kRoutingControlsPrefix) + std::string(region));
}

Key<PrimaryRecord> Primary() { return Key<PrimaryRecord>("failover/primary"); }
Key<FailoverRun> CurrentFailover() { return Key<FailoverRun>("failover/run"); }
Key<ObserverView> ViewOf(std::string_view region) {
  return Key<ObserverView>(std::string(kViewsPrefix) + std::string(region));
}

Key<DrillRecord> DrillOf(std::string_view id) { return Key<DrillRecord>(std::string(kDrillsPrefix) + std::string(id)); }

}  // namespace keys

Result<int> MigrateUnsharedKeys(Store& from, Store& to, std::string_view region) {
  LB_ASSIGN_OR_RETURN(auto old, from.List(""));
  int copied = 0;
  for (const auto& kv : old.kvs) {
    std::string_view k = kv.key;
    bool own = k == "agent/starts" || k == "agent/first_started_at" ||
               (k.starts_with("replicate/") && k.ends_with("/role")) ||
               (k.starts_with("backup/") && k.ends_with("/last"));
    std::string target = own ? "regions/" + std::string(region) + "/" + std::string(k)
                         : k.starts_with(keys::kRoutingControlsPrefix) ? std::string(k)
                                                                       : std::string();
    if (target.empty()) continue;
    auto put = to.Put(target, kv.value, Expect::Absent());
    if (put.ok()) {
      ++copied;
    } else if (put.error().code() != Code::kAborted) {  // Aborted: the shared store has it already
      return put.error();
    }
  }
  return copied;
}

namespace {

// The object in `text`, or a discarded value.
Json Object(std::string_view text) {
  auto j = Json::parse(text, nullptr, false);
  return j.is_object() ? j : Json(Json::value_t::discarded);
}

}  // namespace

std::string Encode(int64_t v) { return std::to_string(v); }
std::string Encode(const std::string& v) { return v; }
std::string Encode(const VolumeRole& v) {
  Json j = {{"role", v.source ? "source" : "target"}, {"source", v.source_region}, {"epoch", v.epoch}};
  if (v.fenced) j["fenced"] = true;  // absent when false: older readers see the same object
  return j.dump();
}
std::string Encode(const RoutingControl& v) { return Json{{"on", v.on}, {"by", v.by}, {"at", v.at}}.dump(); }
std::string Encode(const LastBackup& v) {
  return Json{{"time_ns", v.time_ns},
              {"id", v.id},
              {"bytes", v.bytes},
              {"stored_bytes", v.stored_bytes},
              {"duration_seconds", v.duration_seconds}}
      .dump();
}

std::string Encode(const PrimaryRecord& v) {
  return Json{{"region", v.region}, {"epoch", v.epoch}, {"since", v.since}, {"by", v.by}}.dump();
}

std::string Encode(const FailoverRun& v) {
  Json steps = Json::array();
  for (const auto& s : v.steps) {
    steps.push_back({{"name", s.name},
                     {"state", s.state},
                     {"attempts", s.attempts},
                     {"started_at", s.started_at},
                     {"ended_at", s.ended_at},
                     {"output", s.output}});
  }
  return Json{{"id", v.id},       {"from", v.from},       {"to", v.to},
              {"epoch", v.epoch}, {"planned", v.planned}, {"state", v.state},
              {"started_at", v.started_at}, {"ended_at", v.ended_at}, {"owner", v.owner},
              {"steps", steps}}
      .dump();
}

bool Decode(std::string_view text, int64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

bool Decode(std::string_view text, std::string& out) {
  out = std::string(text);
  return true;
}

bool Decode(std::string_view text, VolumeRole& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("role") || !j["role"].is_string() || !j.contains("epoch") ||
      !j["epoch"].is_number_unsigned()) {
    return false;
  }
  std::string role = j["role"];
  if (role != "source" && role != "target") return false;
  out.source = role == "source";
  out.source_region = j.contains("source") && j["source"].is_string() ? j["source"].get<std::string>() : "";
  out.epoch = j["epoch"];
  out.fenced = j.contains("fenced") && j["fenced"].is_boolean() && j["fenced"].get<bool>();
  return true;
}

bool Decode(std::string_view text, RoutingControl& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("on") || !j["on"].is_boolean()) return false;
  out.on = j["on"];
  out.by = j.contains("by") && j["by"].is_string() ? j["by"].get<std::string>() : "";
  out.at = j.contains("at") && j["at"].is_string() ? j["at"].get<std::string>() : "";
  return true;
}

bool Decode(std::string_view text, LastBackup& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("time_ns") || !j["time_ns"].is_number_integer() || !j.contains("id") ||
      !j["id"].is_string()) {
    return false;
  }
  out.time_ns = j["time_ns"];
  out.id = j["id"];
  auto number = [&](const char* name, auto fallback) {
    return j.contains(name) && j[name].is_number() ? j[name].get<decltype(fallback)>() : fallback;
  };
  out.bytes = number("bytes", uint64_t{0});
  out.stored_bytes = number("stored_bytes", uint64_t{0});
  out.duration_seconds = number("duration_seconds", 0.0);
  return true;
}

namespace {
std::string Text(const Json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
}  // namespace

bool Decode(std::string_view text, PrimaryRecord& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("region") || !j["region"].is_string() || !j.contains("epoch") ||
      !j["epoch"].is_number_unsigned()) {
    return false;
  }
  out.region = j["region"];
  out.epoch = j["epoch"];
  out.since = Text(j, "since");
  out.by = Text(j, "by");
  return !out.region.empty() && out.epoch >= 1;
}

bool Decode(std::string_view text, FailoverRun& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("steps") || !j["steps"].is_array() || !j.contains("epoch") ||
      !j["epoch"].is_number_unsigned()) {
    return false;
  }
  out.id = Text(j, "id");
  out.from = Text(j, "from");
  out.to = Text(j, "to");
  out.epoch = j["epoch"];
  out.planned = j.contains("planned") && j["planned"].is_boolean() && j["planned"].get<bool>();
  out.state = Text(j, "state");
  out.started_at = Text(j, "started_at");
  out.ended_at = Text(j, "ended_at");
  out.owner = Text(j, "owner");
  out.steps.clear();
  for (const auto& sj : j["steps"]) {
    if (!sj.is_object() || !sj.contains("name") || !sj["name"].is_string()) return false;
    StepRecord s;
    s.name = sj["name"];
    s.state = Text(sj, "state");
    s.attempts = sj.contains("attempts") && sj["attempts"].is_number_integer() ? sj["attempts"].get<int>() : 0;
    s.started_at = Text(sj, "started_at");
    s.ended_at = Text(sj, "ended_at");
    s.output = Text(sj, "output");
    if (s.state != "pending" && s.state != "running" && s.state != "done" && s.state != "failed") return false;
    out.steps.push_back(std::move(s));
  }
  return out.state == "running" || out.state == "done" || out.state == "failed";
}

std::string Encode(const ObserverView& v) {
  Json copies = Json::array();
  for (const auto& c : v.copies) {
    Json one = Json::parse(Encode(c.role));
    one["volume"] = c.volume;
    copies.push_back(std::move(one));
  }
  Json sending = Json::array();
  for (const auto& s : v.sending) {
    Json one = {{"volume", s.volume}, {"target", s.target}, {"in_sync", s.in_sync}};
    if (s.lag_ms >= 0) one["lag_ms"] = s.lag_ms;
    sending.push_back(std::move(one));
  }
  Json endpoints = Json::object();
  for (const auto& [name, healthy] : v.endpoints) endpoints[name] = healthy;
  Json j = {{"observer", v.observer}, {"agent", v.agent},          {"primary", v.primary},
            {"epoch", v.epoch},       {"primary_down", v.primary_down}, {"down_for_ms", v.down_for_ms},
            {"reason", v.reason},     {"endpoints", endpoints},      {"copies", copies},
            {"sending", sending},     {"at", v.at}};
  if (!v.databases.empty()) {  // absent without databases: older readers see the same object
    Json dbs = Json::array();
    for (const auto& d : v.databases) {
      Json one = {{"database", d.database}, {"role", d.role}};
      if (d.lag_bytes >= 0) one["lag_bytes"] = d.lag_bytes;
      dbs.push_back(std::move(one));
    }
    j["databases"] = dbs;
  }
  return j.dump();
}

std::string Encode(const DatabaseRole& v) {
  return Json{{"role", v.role}, {"epoch", v.epoch}, {"lsn", v.lsn}, {"at", v.at}}.dump();
}

bool Decode(std::string_view text, DatabaseRole& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("epoch") || !j["epoch"].is_number_unsigned()) return false;
  out.role = Text(j, "role");
  out.epoch = j["epoch"];
  out.lsn = Text(j, "lsn");
  out.at = Text(j, "at");
  return out.role == "primary" || out.role == "fenced";
}

bool Decode(std::string_view text, ObserverView& out) {
  Json j = Object(text);
  if (j.is_discarded() || !j.contains("observer") || !j["observer"].is_string() || !j.contains("epoch") ||
      !j["epoch"].is_number_unsigned() || !j.contains("primary_down") || !j["primary_down"].is_boolean()) {
    return false;
  }
  out.observer = j["observer"];
  out.agent = Text(j, "agent");
  out.primary = Text(j, "primary");
  out.epoch = j["epoch"];
  out.primary_down = j["primary_down"];
  out.down_for_ms = j.contains("down_for_ms") && j["down_for_ms"].is_number_integer() ? j["down_for_ms"].get<int64_t>() : 0;
  out.reason = Text(j, "reason");
  out.at = Text(j, "at");
  out.copies.clear();
  if (j.contains("copies") && j["copies"].is_array()) {
    for (const auto& c : j["copies"]) {
      ObserverView::Copy copy;
      if (!c.is_object() || Text(c, "volume").empty() || !Decode(c.dump(), copy.role)) return false;
      copy.volume = Text(c, "volume");
      out.copies.push_back(std::move(copy));
    }
  }
  out.sending.clear();
  if (j.contains("sending") && j["sending"].is_array()) {
    for (const auto& s : j["sending"]) {
      if (!s.is_object()) continue;
      ObserverView::Sending one{Text(s, "volume"), Text(s, "target"),
                                s.contains("in_sync") && s["in_sync"].is_boolean() && s["in_sync"].get<bool>()};
      if (s.contains("lag_ms") && s["lag_ms"].is_number_integer() && s["lag_ms"].get<int64_t>() >= 0) {
        one.lag_ms = s["lag_ms"].get<int64_t>();
      }
      if (!one.volume.empty()) out.sending.push_back(std::move(one));
    }
  }
  out.databases.clear();
  if (j.contains("databases") && j["databases"].is_array()) {
    for (const auto& d : j["databases"]) {
      if (!d.is_object() || Text(d, "database").empty()) continue;
      ObserverView::Database one{Text(d, "database"), Text(d, "role")};
      if (d.contains("lag_bytes") && d["lag_bytes"].is_number_integer() && d["lag_bytes"].get<int64_t>() >= 0) {
        one.lag_bytes = d["lag_bytes"].get<int64_t>();
      }
      out.databases.push_back(std::move(one));
    }
  }
  out.endpoints.clear();
  if (j.contains("endpoints") && j["endpoints"].is_object()) {
    for (const auto& [name, healthy] : j["endpoints"].items()) {
      if (healthy.is_boolean()) out.endpoints.emplace_back(name, healthy.get<bool>());
    }
  }
  return !out.observer.empty();
}

std::string Encode(const RestoreRecord& v) {
  Json volumes = Json::array();
  for (const auto& x : v.volumes) {
    volumes.push_back({{"volume", x.volume},
                       {"location", x.location},
                       {"backup", x.backup},
                       {"files", x.files},
                       {"bytes", x.bytes},
                       {"not_restored", x.not_restored},
                       {"error", x.error}});
  }
  return Json{{"run", v.run},           {"state", v.state},       {"volumes", volumes},
              {"started_at", v.started_at}, {"ended_at", v.ended_at}}
      .dump();
}

bool Decode(std::string_view text, RestoreRecord& out) {
  Json j = Object(text);
  if (j.is_discarded() || json::Str(j, "run").empty() || json::Str(j, "state").empty()) return false;
  out.run = json::Str(j, "run");
  out.state = json::Str(j, "state");
  out.started_at = json::Str(j, "started_at");
  out.ended_at = json::Str(j, "ended_at");
  out.volumes.clear();
  for (const auto& x : json::Arr(j, "volumes")) {
    RestoreRecord::Volume v;
    v.volume = json::Str(x, "volume");
    if (v.volume.empty()) return false;
    v.location = json::Str(x, "location");
    v.backup = json::Str(x, "backup");
    v.files = json::U64(x, "files");
    v.bytes = json::U64(x, "bytes");
    v.not_restored = json::U64(x, "not_restored");
    v.error = json::Str(x, "error");
    out.volumes.push_back(std::move(v));
  }
  return true;
}

std::string Encode(const DrillRecord& v) {
  Json report = Json::parse(v.report, nullptr, false);
  if (report.is_discarded()) report = Json::object();
  auto figure = [](double s) { return s >= 0 ? Json(s) : Json(); };
  return Json{{"id", v.id},
              {"scenario", v.scenario},
              {"plan", v.plan},
              {"started_at", v.started_at},
              {"ended_at", v.ended_at},
              {"verdict", v.pass ? "pass" : "fail"},
              {"missed", v.missed},
              {"rto_seconds", figure(v.rto_seconds)},
              {"rpo_seconds", figure(v.rpo_seconds)},
              {"dir", v.dir},
              {"report", std::move(report)}}
      .dump();
}

bool Decode(std::string_view text, DrillRecord& out) {
  Json j = Object(text);
  if (j.is_discarded() || json::Str(j, "id").empty() || json::Str(j, "scenario").empty()) return false;
  std::string verdict = json::Str(j, "verdict");
  if (verdict != "pass" && verdict != "fail") return false;
  out.id = json::Str(j, "id");
  out.scenario = json::Str(j, "scenario");
  out.plan = json::Str(j, "plan");
  out.started_at = json::Str(j, "started_at");
  out.ended_at = json::Str(j, "ended_at");
  out.pass = verdict == "pass";
  out.missed.clear();
  for (const auto& m : json::Arr(j, "missed")) {
    if (m.is_string()) out.missed.push_back(m.get<std::string>());
  }
  auto figure = [&](const char* k) {
    return j.contains(k) && j[k].is_number() && j[k].get<double>() >= 0 ? j[k].get<double>() : -1.0;
  };
  out.rto_seconds = figure("rto_seconds");
  out.rpo_seconds = figure("rpo_seconds");
  out.dir = json::Str(j, "dir");
  out.report = j.contains("report") && j["report"].is_object() ? j["report"].dump() : "{}";
  return true;
}

}  // namespace lifeboat::state
