#include "state/sqlite_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace lifeboat::state {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-state-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<Store> OpenStore() {
    auto s = SqliteStore::Open((dir_ / "state.db").string(), clock_);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return std::move(*s);
  }
  fs::path dir_;
  FakeClock clock_;
};

TEST_F(SqliteStoreTest, PutGetListDeleteWithRevisions) {
  auto s = OpenStore();
  auto r1 = s->Put("controls/us-east", "on");
  ASSERT_TRUE(r1.ok());
  auto r2 = s->Put("controls/us-west", "on");
  auto r3 = s->Put("controls/us-east", "off");
  ASSERT_TRUE(r3.ok());
  EXPECT_LT(*r1, *r2);
  EXPECT_LT(*r2, *r3);
  auto kv = s->Get("controls/us-east");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  EXPECT_EQ((*kv)->value, "off");
  EXPECT_EQ((*kv)->version, 2);
  EXPECT_EQ((*kv)->create_revision, *r1);
  EXPECT_EQ((*kv)->mod_revision, *r3);
  auto list = s->List("controls/");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key, "controls/us-east");
  EXPECT_EQ(*s->Delete("controls/us-east"), true);
  EXPECT_EQ(*s->Delete("controls/us-east"), false);
  EXPECT_FALSE(s->Get("controls/us-east")->has_value());
  EXPECT_EQ(*s->Revision(), *r3 + 1);
}

TEST_F(SqliteStoreTest, CompareAndSwapRefusesAStaleWriter) {
  auto s = OpenStore();
  ASSERT_TRUE(s->Put("epoch", "1", Expect::Absent()).ok());
  auto again = s->Put("epoch", "1", Expect::Absent());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kAborted);
  int64_t rev = (*s->Get("epoch"))->mod_revision;
  ASSERT_TRUE(s->Put("epoch", "2", Expect::Revision(rev)).ok());
  auto stale = s->Put("epoch", "3", Expect::Revision(rev));  // a second writer that read the old revision
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), Code::kAborted);
  EXPECT_EQ((*s->Get("epoch"))->value, "2");
}

TEST_F(SqliteStoreTest, ConcurrentIncrementsLoseNothing) {
  auto s = OpenStore();
  ASSERT_TRUE(s->Put("n", "0").ok());
  auto worker = [&] {
    for (int i = 0; i < 50; ++i) {
      for (;;) {
        auto got = s->Get("n");
        ASSERT_TRUE(got.ok() && got->has_value());
        const KeyValue& kv = **got;
        int v = std::stoi(kv.value);
        auto r = s->Put("n", std::to_string(v + 1), Expect::Revision(kv.mod_revision));
        if (r.ok()) break;
        ASSERT_EQ(r.error().code(), Code::kAborted);
      }
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  EXPECT_EQ((*s->Get("n"))->value, "100");
}

TEST_F(SqliteStoreTest, LeasedKeysVanishWhenTheLeaseExpires) {
  auto s = OpenStore();
  auto lease = s->Grant(10s);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(s->Put("leader", "us-east", Expect::Absent(), *lease).ok());
  clock_.Advance(8s);
  ASSERT_TRUE(s->KeepAlive(*lease).ok());
  clock_.Advance(8s);
  EXPECT_TRUE(s->Get("leader")->has_value());
  clock_.Advance(3s);
  EXPECT_FALSE(s->Get("leader")->has_value());
  EXPECT_EQ(s->KeepAlive(*lease).error().code(), Code::kNotFound);
  EXPECT_EQ(s->Put("x", "y", Expect::Any(), *lease).error().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, RevokeDeletesTheLeasesKeys) {
  auto s = OpenStore();
  auto lease = *s->Grant(1h);
  ASSERT_TRUE(s->Put("a", "1", Expect::Any(), lease).ok());
  ASSERT_TRUE(s->Put("b", "2").ok());
  ASSERT_TRUE(s->Revoke(lease).ok());
  EXPECT_FALSE(s->Get("a")->has_value());
  EXPECT_TRUE(s->Get("b")->has_value());
}

TEST_F(SqliteStoreTest, WatchSeesChangesUnderItsPrefixUntilReleased) {
  auto s = OpenStore();
  std::vector<std::string> seen;
  auto handle = s->Watch("controls/", [&](const Event& e) {
    seen.push_back((e.type == Event::Type::kPut ? "put " : "delete ") + e.kv.key);
  });
  ASSERT_TRUE(s->Put("controls/a", "on").ok());
  ASSERT_TRUE(s->Put("other", "x").ok());
  ASSERT_TRUE(s->Delete("controls/a").ok());
  handle.reset();
  ASSERT_TRUE(s->Put("controls/b", "on").ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"put controls/a", "delete controls/a"}));
}

TEST_F(SqliteStoreTest, DataSurvivesReopen) {
  int64_t rev;
  {
    auto s = OpenStore();
    ASSERT_TRUE(s->Put("k", "v").ok());
    rev = *s->Revision();
  }
  auto s = OpenStore();
  EXPECT_EQ((*s->Get("k"))->value, "v");
  EXPECT_EQ(*s->Revision(), rev);
  auto next = s->Put("k2", "v2");
  EXPECT_EQ(*next, rev + 1);
}

TEST_F(SqliteStoreTest, AFileThatIsNotAStoreIsDataLoss) {
  std::ofstream((dir_ / "state.db").string()) << "this is not an sqlite database, just text that is long enough "
                                                 "to fill the header of one page of a database file";
  auto s = SqliteStore::Open((dir_ / "state.db").string(), clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kDataLoss) << s.error().ToString();
}

}  // namespace
}  // namespace lifeboat::state
