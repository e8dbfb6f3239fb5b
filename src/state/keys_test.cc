#include "state/keys.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "state/sqlite_store.h"

namespace lifeboat::state {
namespace {

std::unique_ptr<Store> MemoryStore() {
  auto s = SqliteStore::Open(":memory:");
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  return std::move(*s);
}

// The doc listed 2 of 5 keys: with a shared store the keys are a contract
// between regions, so every pattern must be written down.
TEST(StateKeys, TheFormatDocListsEveryKey) {
  std::ifstream in("docs/format/state.md");
  ASSERT_TRUE(in) << "run from the source tree (ctest does)";
  std::stringstream doc;
  doc << in.rdbuf();
  for (auto pattern : keys::kPatterns) {
    EXPECT_NE(doc.str().find("| `" + std::string(pattern) + "` |"), std::string::npos)
        << pattern << " is not in the key table of docs/format/state.md";
  }
  // And every name the code builds matches its documented pattern.
  EXPECT_EQ(keys::VolumeRoleOf("east", "data").name(), "regions/east/replicate/data/role");
  EXPECT_EQ(keys::DatabaseRoleOf("east", "orders").name(), "regions/east/db/orders/role");
  EXPECT_EQ(keys::RoutingControlOf("east").name(), "routing/controls/east");
  EXPECT_EQ(keys::LastBackupOf("east", "nightly", "data").name(), "regions/east/backup/nightly/data/last");
  EXPECT_EQ(keys::AgentStarts("east").name(), "regions/east/agent/starts");
  EXPECT_EQ(keys::AgentFirstStartedAt("east").name(), "regions/east/agent/first_started_at");
}

TEST(StateKeys, ValuesRoundTrip) {
  auto store = MemoryStore();
  auto role = keys::VolumeRoleOf("east", "data");
  auto absent = role.Get(*store);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  ASSERT_TRUE(role.Put(*store, VolumeRole{false, "east", 7}).ok());
  auto got = role.Get(*store);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_FALSE((*got)->source);
  EXPECT_EQ((*got)->source_region, "east");
  EXPECT_EQ((*got)->epoch, 7u);

  auto control = keys::RoutingControlOf("west");
  ASSERT_TRUE(control.Put(*store, RoutingControl{false, "alice", "2026-12-02T08:00:00.000Z"}).ok());
  auto c = control.Get(*store);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_FALSE((*c)->on);
  EXPECT_EQ((*c)->by, "alice");

  auto last = keys::LastBackupOf("east", "nightly", "data");
  ASSERT_TRUE(last.Put(*store, LastBackup{123, "abc", 10, 5, 1.5}).ok());
  auto l = last.Get(*store);
  ASSERT_TRUE(l.ok() && l->has_value());
  EXPECT_EQ((*l)->time_ns, 123);
  EXPECT_EQ((*l)->stored_bytes, 5u);
  EXPECT_DOUBLE_EQ((*l)->duration_seconds, 1.5);

  ASSERT_TRUE(keys::AgentStarts("east").Put(*store, 41).ok());
  EXPECT_EQ(**keys::AgentStarts("east").Get(*store), 41);

  VolumeRole fenced{true, "", 3, true};
  ASSERT_TRUE(role.Put(*store, fenced).ok());
  EXPECT_TRUE((**role.Get(*store)).fenced);

  ObserverView view;
  view.observer = "witness";
  view.agent = "witness@h:1";
  view.primary = "east";
  view.epoch = 2;
  view.primary_down = true;
  view.down_for_ms = 2500;
  view.reason = "every endpoint of east fails its check";
  view.endpoints = {{"web-east", false}, {"web-west", true}};
  view.copies = {{"data", {false, "east", 2, false}}};
  view.sending = {{"data", "west", false, 120}, {"logs", "west", true, 0}, {"tmp", "west", false, -1}};
  ASSERT_TRUE(keys::ViewOf("witness").Put(*store, view).ok());
  auto v = keys::ViewOf("witness").Get(*store);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->observer, "witness");
  EXPECT_EQ((*v)->epoch, 2u);
  EXPECT_TRUE((*v)->primary_down);
  EXPECT_EQ((*v)->down_for_ms, 2500);
  EXPECT_EQ((*v)->endpoints, view.endpoints);
  ASSERT_EQ((*v)->copies.size(), 1u);
  EXPECT_EQ((*v)->copies[0].volume, "data");
  EXPECT_EQ((*v)->copies[0].role.source_region, "east");
  EXPECT_EQ((*v)->copies[0].role.epoch, 2u);
  EXPECT_EQ((*v)->sending, view.sending);  // a lag, in sync, and an unknown lag (-1, not written)
  RestoreRecord restore{"run-1#2", "done", {{"data", "dr", "abc", 3, 300, 1, ""}}, "t0", "t1"};
  ASSERT_TRUE(keys::RestoreOf("west").Put(*store, restore).ok());
  auto rr = keys::RestoreOf("west").Get(*store);
  ASSERT_TRUE(rr.ok() && rr->has_value());
  EXPECT_EQ((*rr)->run, "run-1#2");
  ASSERT_EQ((*rr)->volumes.size(), 1u);
  EXPECT_EQ((*rr)->volumes[0].location, "dr");
  EXPECT_EQ((*rr)->volumes[0].bytes, 300u);
  EXPECT_EQ((*rr)->volumes[0].not_restored, 1u);
  ASSERT_TRUE(store->Put("regions/west/failover/restore", R"({"run": "r#1", "state": "done", "volumes": [{}]})").ok());
  EXPECT_EQ(keys::RestoreOf("west").Get(*store).error().code(), Code::kDataLoss);
  ASSERT_TRUE(store->Put("views/x", R"({"observer": "x", "epoch": 1, "primary_down": "yes"})").ok());
  EXPECT_EQ(keys::ViewOf("x").Get(*store).error().code(), Code::kDataLoss);
}

// Values written by earlier versions (the same JSON, by hand) still decode.
TEST(StateKeys, ReadsWhatEarlierVersionsWrote) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->Put("regions/east/replicate/data/role", R"({"role":"source","source":"","epoch":3})").ok());
  auto r = keys::VolumeRoleOf("east", "data").Get(*store);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_TRUE((*r)->source);
  EXPECT_EQ((*r)->epoch, 3u);
  ASSERT_TRUE(store->Put("routing/controls/east", R"({"on":true})").ok());
  auto c = keys::RoutingControlOf("east").Get(*store);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_TRUE((*c)->on);
}

TEST(StateKeys, ADamagedValueIsDataLossNamingTheKey) {
  auto store = MemoryStore();
  for (const char* bad : {"", "{", "[]", R"({"role":"boss","epoch":1})", R"({"role":"source","epoch":-1})"}) {
    ASSERT_TRUE(store->Put("regions/east/replicate/data/role", bad).ok());
    auto r = keys::VolumeRoleOf("east", "data").Get(*store);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), Code::kDataLoss);
    EXPECT_NE(r.error().message().find("regions/east/replicate/data/role"), std::string::npos);
  }
  ASSERT_TRUE(store->Put("regions/east/agent/starts", "12x").ok());
  EXPECT_FALSE(keys::AgentStarts("east").Get(*store).ok());
  ASSERT_TRUE(store->Put("routing/controls/east", R"({"on":"yes"})").ok());
  EXPECT_FALSE(keys::RoutingControlOf("east").Get(*store).ok());
  // Members of the wrong type are refused or read as absent, never thrown.
  ASSERT_TRUE(store->Put("failover/primary", R"({"region":"east","epoch":"2"})").ok());
  EXPECT_EQ(keys::Primary().Get(*store).error().code(), Code::kDataLoss);
  ASSERT_TRUE(store->Put("failover/run", R"({"epoch":2,"state":"running","planned":"yes","steps":[{"name":"fence","state":"done","attempts":"x"}]})").ok());
  auto run = keys::CurrentFailover().Get(*store);
  ASSERT_TRUE(run.ok() && run->has_value()) << (run.ok() ? "" : run.error().ToString());
  EXPECT_FALSE((*run)->planned);
  EXPECT_EQ((*run)->steps[0].attempts, 0);
}

// Before stores were shared, each agent kept its keys in its own file without
// the region: an upgraded agent copies them into the shared store once.
TEST(StateKeys, AnAgentsOwnOlderKeysMoveIntoTheSharedStoreUnderItsRegion) {
  auto old = MemoryStore();
  auto shared = MemoryStore();
  ASSERT_TRUE(old->Put("agent/starts", "7").ok());
  ASSERT_TRUE(old->Put("replicate/data/role", R"({"role":"target","source":"east","epoch":3})").ok());
  ASSERT_TRUE(old->Put("routing/controls/west", R"({"on":false,"by":"ops","at":"2026-11-01T00:00:00Z"})").ok());
  ASSERT_TRUE(old->Put("something/else", "x").ok());
  ASSERT_TRUE(shared->Put("routing/controls/west", R"({"on":true,"by":"other","at":"2026-11-02T00:00:00Z"})").ok());
  auto n = MigrateUnsharedKeys(*old, *shared, "west");
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(*(*keys::AgentStarts("west").Get(*shared)), 7);
  EXPECT_EQ((*keys::VolumeRoleOf("west", "data").Get(*shared))->epoch, 3u);
  EXPECT_TRUE((*keys::RoutingControlOf("west").Get(*shared))->on) << "the shared store's newer switch wins";
  EXPECT_FALSE(shared->Get("something/else")->has_value());
}

// A drill's record keeps its figures typed and its whole report as an
// object, so that `drill report` renders a drill long after its data dir
// is gone; an unmeasured figure stays unmeasured, not 0.
TEST(StateKeys, ADrillRecordKeepsItsReportAndItsUnmeasuredFigures) {
  auto store = MemoryStore();
  DrillRecord d;
  d.id = "20261203T130501Z-region-outage";
  d.scenario = "region-outage";
  d.plan = "local";
  d.pass = false;
  d.missed = {"the client never recovered"};
  d.rpo_seconds = 0.024;
  d.report = R"({"scenario":"region-outage","client":{"attempts":3}})";
  auto key = keys::DrillOf(d.id);
  EXPECT_EQ(key.name(), "drills/20261203T130501Z-region-outage");
  ASSERT_TRUE(key.Put(*store, d).ok());
  auto got = key.Get(*store);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_FALSE((*got)->pass);
  EXPECT_EQ((*got)->missed, d.missed);
  EXPECT_EQ((*got)->rto_seconds, -1);
  EXPECT_DOUBLE_EQ((*got)->rpo_seconds, 0.024);
  EXPECT_EQ((*got)->report, d.report);
  DrillRecord bad;
  EXPECT_FALSE(Decode(R"({"id":"x","scenario":"y","verdict":"maybe"})", bad));
}

TEST(StateKeys, DatabaseRolesAndTheViewsDatabasesRoundTrip) {
  DatabaseRole role{"primary", 4, "0/3000148", "2026-12-03T20:00:00Z"};
  DatabaseRole back;
  ASSERT_TRUE(Decode(Encode(role), back));
  EXPECT_EQ(back.role, "primary");
  EXPECT_EQ(back.epoch, 4u);
  EXPECT_EQ(back.lsn, "0/3000148");
  EXPECT_FALSE(Decode(R"({"role":"sideways","epoch":1})", back));

  ObserverView v;
  v.observer = "west";
  v.databases = {{"orders", "standby", 1234}, {"audit", "unreachable", -1}};
  ObserverView got;
  ASSERT_TRUE(Decode(Encode(v), got));
  ASSERT_EQ(got.databases.size(), 2u);
  EXPECT_EQ(got.databases[0], v.databases[0]);
  EXPECT_EQ(got.databases[1].lag_bytes, -1);
  // A view without databases encodes as before (older readers).
  v.databases.clear();
  EXPECT_EQ(Encode(v).find("databases"), std::string::npos);
}

}  // namespace
}  // namespace lifeboat::state
