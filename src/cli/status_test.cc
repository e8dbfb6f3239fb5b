#include "cli/status.h"

#include <gtest/gtest.h>

#include "plan/load.h"

namespace lifeboat::cli {
namespace {

constexpr const char* kPlan = R"(
name: lag
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:7001 }
  west: { role: standby, agent: 127.0.0.1:7002 }
  south: { role: standby, agent: 127.0.0.1:7003 }
volumes:
  data:
    path: { east: /srv/e, west: /srv/w, south: /srv/s }
    replication: { key_file: /k }
  logs:
    path: { east: /srv/le, west: /srv/lw, south: /srv/ls }
    replication: { key_file: /k }
  once:
    path: { east: /srv/o, west: /srv/o, south: /srv/o }
    replication: { mode: off }
)";

RegionStatus Up(const std::string& region, const char* replication) {
  RegionStatus r;
  r.region = region;
  r.up = true;
  r.status = {{"region", region}, {"services", {{"replication", nlohmann::ordered_json::parse(replication)}}}};
  return r;
}

TEST(VolumeLags, OneRowPerTargetFromTheSourceAndSaysWhenNoSourceAnswers) {
  auto loaded = plan::LoadPlanText(kPlan, "lag.yaml");
  ASSERT_TRUE(loaded.plan) << plan::FormatDiagnostics(loaded.diagnostics);
  RegionStatus down;
  down.region = "south";
  std::vector<RegionStatus> regions = {
      Up("east", R"([{"volume": "data", "role": "source", "epoch": 3, "targets": [
          {"target": "west", "state": "streaming", "in_sync": true, "rpo_seconds": 0, "pending_files": 0,
           "pending_bytes": 0, "last_error": null},
          {"target": "south", "state": "disconnected", "in_sync": false, "rpo_seconds": 42.5, "pending_files": 7,
           "pending_bytes": 2048, "last_error": "connection refused"}]}])"),
      Up("west", R"([{"volume": "data", "role": "target", "epoch": 3, "source": "east"},
                     {"volume": "logs", "role": "fenced", "epoch": 2}])"),
      down};
  auto lags = VolumeLags(*loaded.plan, regions);
  ASSERT_EQ(lags.size(), 4u);
  EXPECT_EQ(lags[0].volume, "data");
  EXPECT_EQ(lags[0].source, "east");
  EXPECT_EQ(lags[0].epoch, 3u);
  EXPECT_EQ(lags[0].target, "west");
  EXPECT_TRUE(lags[0].in_sync);
  EXPECT_EQ(lags[1].target, "south");
  EXPECT_FALSE(lags[1].in_sync);
  EXPECT_EQ(lags[1].rpo_seconds, 42.5);
  EXPECT_EQ(lags[1].pending_bytes, 2048u);
  EXPECT_EQ(lags[1].state, "disconnected (connection refused)");
  // A fenced copy is shown, and a volume no source reports says the lag is unknown.
  EXPECT_EQ(lags[2].volume, "logs");
  EXPECT_EQ(lags[2].source, "west");
  EXPECT_NE(lags[2].state.find("fenced"), std::string::npos);
  EXPECT_EQ(lags[3].volume, "logs");
  EXPECT_EQ(lags[3].source, "");
  EXPECT_NE(lags[3].state.find("unknown"), std::string::npos);

  std::string table = VolumeLagTable(lags);
  EXPECT_NE(table.find("in sync"), std::string::npos) << table;
  EXPECT_NE(table.find("42s"), std::string::npos) << table;
  EXPECT_NE(table.find("7 files, 2.0 KiB"), std::string::npos) << table;

  auto json = StatusJson(*loaded.plan, regions);
  ASSERT_EQ(json["volumes"].size(), 4u);
  EXPECT_EQ(json["volumes"][1]["lag_seconds"], 42.5);
  EXPECT_TRUE(json["volumes"][3]["source"].is_null());
  EXPECT_TRUE(json["volumes"][3]["lag_seconds"].is_null());
}

TEST(VolumeLags, AnAgentsOddAnswerIsSkippedNotThrown) {
  auto loaded = plan::LoadPlanText(kPlan, "lag.yaml");
  ASSERT_TRUE(loaded.plan);
  std::vector<RegionStatus> regions = {
      Up("east", R"([{"volume": "data", "role": "source", "targets": [1, {"target": 5}]}, "x", 3])"),
      Up("west", R"({"not": "a list"})")};
  auto lags = VolumeLags(*loaded.plan, regions);
  ASSERT_FALSE(lags.empty());
  EXPECT_EQ(lags[0].volume, "data");
}

RegionStatus WithFailover(const char* failover) {
  RegionStatus r;
  r.region = "west";
  r.up = true;
  r.status = {{"region", "west"}, {"failover", nlohmann::ordered_json::parse(failover)}};
  return r;
}

TEST(PrimaryLine, ARunningFailoverSaysItsStepAndHowLongItHasRun) {
  auto now = *ParseUtc("2026-12-03T10:00:07.500Z");
  auto line = PrimaryLine({WithFailover(R"({"primary": "west", "epoch": 2, "run": {"state": "running", "to": "west",
      "owner": "west@h:1", "started_at": "2026-12-03T10:00:05.000Z",
      "steps": [{"name": "fence", "state": "done"}, {"name": "promote", "state": "running"}]}})")},
                          now);
  EXPECT_EQ(line, "primary: west (epoch 2); failover to west running for 2.5s, step promote, driven by west@h:1\n");
  // A start the reader cannot place (missing, unparsable, or ahead of this
  // machine's clock) leaves the figure out rather than showing a wrong one.
  for (const char* started : {"", "yesterday", "2026-12-03T10:00:09.000Z"}) {
    auto failover = std::string(R"({"primary": "west", "epoch": 2, "run": {"state": "running", "to": "west",
        "owner": "w", "started_at": ")") + started + R"(", "steps": [{"name": "fence", "state": "running"}]}})";
    EXPECT_EQ(PrimaryLine({WithFailover(failover.c_str())}, now),
              "primary: west (epoch 2); failover to west running, step fence, driven by w\n")
        << started;
  }
  EXPECT_EQ(PrimaryLine({WithFailover(R"({"primary": "east", "epoch": 1, "run": {"state": "done"}})")}, now),
            "primary: east (epoch 1)\n");
}

TEST(ProxyTable, ARowPerListenerOfEachAgentRunningTheProxy) {
  RegionStatus east;
  east.region = "east";
  east.up = true;
  east.status = nlohmann::ordered_json::parse(R"({"services": {"proxy": {"listeners": [
    {"name": "web", "protocol": "tcp", "listen": "0.0.0.0:443", "sends_to": ["web-east", "web-east-2"],
     "failed_open": false, "active": 12, "refused": 0, "switches": 1},
    {"name": "dns", "protocol": "udp", "listen": "0.0.0.0:53", "sends_to": [], "failed_open": false,
     "active": 0, "refused": 3, "switches": 2}]}}})");
  RegionStatus down;
  down.region = "west";
  RegionStatus odd;  // an agent of another version: no proxy, odd types
  odd.region = "south";
  odd.up = true;
  odd.status = nlohmann::ordered_json::parse(R"({"services": {"proxy": {"listeners": [{"name": 5, "sends_to": "x"}]}}})");
  std::string table = ProxyTable({east, down, odd});
  EXPECT_NE(table.find("web (tcp)  east    0.0.0.0:443  web-east, web-east-2     12      0        1"), std::string::npos)
      << table;
  EXPECT_NE(table.find("dns (udp)  east    0.0.0.0:53   nobody (no endpoint up)  0       3        2"), std::string::npos)
      << table;
  EXPECT_EQ(ProxyTable({down}), "") << "no agent runs a proxy: no table";
}

TEST(DatabaseTable, ARowPerServerWithTheStandbysLag) {
  RegionStatus east, west, down;
  east.region = "east";
  east.up = true;
  east.status = nlohmann::ordered_json::parse(R"({"services": {"databases": {"orders": {
    "server": "10.0.1.30:5432/orders", "role": "primary", "wal_lsn": "0/3000148",
    "standbys": [{"name": "lifeboat_west"}], "sync_degraded": true}}}})");
  west.region = "west";
  west.up = true;
  west.status = nlohmann::ordered_json::parse(R"({"services": {"databases": {"orders": {
    "server": "10.1.1.30:5432/orders", "role": "standby", "replay_lsn": "0/3000100", "upstream": "streaming",
    "lag_bytes": 72, "lag_seconds": 0.5}, "audit": {"server": "x", "role": "unreachable", "error": "refused"}}}})");
  down.region = "north";
  std::string table = DatabaseTable({east, west, down});
  EXPECT_NE(table.find("orders    east    primary      10.0.1.30:5432/orders  0/3000148  -"), std::string::npos)
      << table;
  EXPECT_NE(table.find("1 standby(s), sync degraded"), std::string::npos) << table;
  EXPECT_NE(table.find("72 B, 0.5s"), std::string::npos) << table;
  EXPECT_NE(table.find("audit     west    unreachable"), std::string::npos) << table;
  EXPECT_NE(table.find("refused"), std::string::npos) << table;
  EXPECT_EQ(DatabaseTable({down}), "");
}

}  // namespace
}  // namespace lifeboat::cli
