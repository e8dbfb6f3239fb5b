#include "state/sqlite_store.h"

#include <sqlite3.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "state/store_testing.h"

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

// Lease expiry on the store's clock (the contract suite uses real time).
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

// Three agents started at once on a machine's first run open one new file
// together; one of them failed with "PRAGMA journal_mode=WAL: database is
// locked" (SQLite refuses the switch to WAL at once, without waiting, while
// another connection holds the new file). Every opener must succeed.
TEST_F(SqliteStoreTest, OpenersOfOneNewFileAtOnceAllSucceed) {
  for (int round = 0; round < 30; ++round) {
    std::string path = (dir_ / ("new-" + std::to_string(round) + ".db")).string();
    std::vector<std::thread> threads;
    std::vector<std::string> errors(6);
    for (size_t i = 0; i < errors.size(); ++i) {
      threads.emplace_back([&, i] {
        auto s = SqliteStore::Open(path, clock_);
        if (!s.ok()) errors[i] = s.error().ToString();
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) ASSERT_EQ(e, "") << "round " << round;
  }
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

// Two agents on one machine share one file: each sees the other's writes,
// and a watch in one sees the other's changes (through the history table,
// which its watch thread polls).
TEST_F(SqliteStoreTest, TwoStoresOnOneFileSeeEachOthersChanges) {
  auto a = OpenStore();
  auto opened = SqliteStore::Open((dir_ / "state.db").string(), Clock::Real());
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<Store> b = std::move(*opened);
  std::mutex mu;
  std::vector<std::string> seen;
  auto handle = a->Watch("controls/", 0, [&](const Event& e) {
    std::lock_guard l(mu);
    seen.push_back(e.kv.key + "=" + e.kv.value);
  });
  ASSERT_TRUE(b->Put("controls/us-east", "off").ok());
  EXPECT_EQ((*a->Get("controls/us-east"))->value, "off");
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard l(mu);
        return !seen.empty();
      },
      std::chrono::seconds(5)));
  std::lock_guard l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"controls/us-east=off"}));
  // Compare-and-swap holds across them.
  int64_t rev = (*a->Get("controls/us-east"))->mod_revision;
  ASSERT_TRUE(a->Put("controls/us-east", "on", Expect::Revision(rev)).ok());
  EXPECT_EQ(b->Put("controls/us-east", "off", Expect::Revision(rev)).error().code(), Code::kAborted);
}

// A file of format 1 (no history) opens, keeps its keys and revision, and
// reports the history before it as compacted.
TEST_F(SqliteStoreTest, AFormatOneFileIsUpgraded) {
  std::string path = (dir_ / "state.db").string();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v1 =
        "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('revision', 7), ('next_lease', 1);"
        "CREATE TABLE kv(key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,"
        " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE leases(id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
        "INSERT INTO kv VALUES (CAST('agent/starts' AS BLOB), CAST('3' AS BLOB), 1, 7, 3, 0);"
        "PRAGMA user_version=1;";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = OpenStore();
  EXPECT_EQ((*s->Get("agent/starts"))->value, "3");
  EXPECT_EQ(*s->Revision(), 7);
  std::atomic<int> compacted{0};
  auto h = s->Watch("", 1, [&](const Event& e) {
    if (e.type == Event::Type::kCompacted) compacted = 1;
  });
  EXPECT_TRUE(WaitUntil([&] { return compacted == 1; }, std::chrono::seconds(5)));
  EXPECT_EQ(*s->Put("k", "v"), 8);
}

}  // namespace
}  // namespace lifeboat::state
