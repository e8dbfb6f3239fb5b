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
  EXPECT_EQ(keys::VolumeRoleOf("data").name(), "replicate/data/role");
  EXPECT_EQ(keys::RoutingControlOf("east").name(), "routing/controls/east");
  EXPECT_EQ(keys::LastBackupOf("nightly", "data").name(), "backup/nightly/data/last");
  EXPECT_EQ(keys::AgentStarts().name(), "agent/starts");
  EXPECT_EQ(keys::AgentFirstStartedAt().name(), "agent/first_started_at");
}

TEST(StateKeys, ValuesRoundTrip) {
  auto store = MemoryStore();
  auto role = keys::VolumeRoleOf("data");
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

  auto last = keys::LastBackupOf("nightly", "data");
  ASSERT_TRUE(last.Put(*store, LastBackup{123, "abc", 10, 5, 1.5}).ok());
  auto l = last.Get(*store);
  ASSERT_TRUE(l.ok() && l->has_value());
  EXPECT_EQ((*l)->time_ns, 123);
  EXPECT_EQ((*l)->stored_bytes, 5u);
  EXPECT_DOUBLE_EQ((*l)->duration_seconds, 1.5);

  ASSERT_TRUE(keys::AgentStarts().Put(*store, 41).ok());
  EXPECT_EQ(**keys::AgentStarts().Get(*store), 41);
}

// Values written by earlier versions (the same JSON, by hand) still decode.
TEST(StateKeys, ReadsWhatEarlierVersionsWrote) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->Put("replicate/data/role", R"({"role":"source","source":"","epoch":3})").ok());
  auto r = keys::VolumeRoleOf("data").Get(*store);
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
    ASSERT_TRUE(store->Put("replicate/data/role", bad).ok());
    auto r = keys::VolumeRoleOf("data").Get(*store);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), Code::kDataLoss);
    EXPECT_NE(r.error().message().find("replicate/data/role"), std::string::npos);
  }
  ASSERT_TRUE(store->Put("agent/starts", "12x").ok());
  EXPECT_FALSE(keys::AgentStarts().Get(*store).ok());
  ASSERT_TRUE(store->Put("routing/controls/east", R"({"on":"yes"})").ok());
  EXPECT_FALSE(keys::RoutingControlOf("east").Get(*store).ok());
}

}  // namespace
}  // namespace lifeboat::state
