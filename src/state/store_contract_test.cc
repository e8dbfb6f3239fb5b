// The behaviour every state::Store must have, checked on each implementation:
// the embedded SQLite store always; etcd when LIFEBOAT_TEST_ETCD holds a
// cluster's endpoints (tests/integration/etcd_test.sh starts a three-member
// cluster on loopback and runs this binary with it set). Real time, no fake
// clock: etcd has none. Each test works under a fresh key prefix.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "state/store_testing.h"

namespace lifeboat::state {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Collects a watch's events; safe to read while the store's thread appends.
class Recorder {
 public:
  std::function<void(const Event&)> Fn() {
    return [this](const Event& e) {
      std::lock_guard l(mu_);
      events_.push_back(e);
      threads_.push_back(std::this_thread::get_id());
    };
  }
  std::vector<Event> events() {
    std::lock_guard l(mu_);
    return events_;
  }
  std::vector<std::string> Describe() {
    std::vector<std::string> out;
    for (const auto& e : events()) {
      out.push_back(e.type == Event::Type::kPut      ? "put " + e.kv.key + "=" + e.kv.value
                    : e.type == Event::Type::kDelete ? "delete " + e.kv.key
                                                     : "compacted");
    }
    return out;
  }
  bool Await(size_t n, Duration timeout = 10s) {
    return WaitUntil([&] { return events().size() >= n; }, timeout);
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard l(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
  std::vector<std::thread::id> threads_;
};

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : test) c = c == '/' ? '-' : c;
    dir_ = fs::temp_directory_path() / ("lb-store-contract-" + std::to_string(::getpid()) + "-" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto s = OpenTestStore(GetParam(), dir_.string(), test);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    if (*s == nullptr) {
      GTEST_SKIP() << "LIFEBOAT_TEST_ETCD is not set: tests/integration/etcd_test.sh runs these against a cluster";
    }
    s_ = std::move(*s);
  }
  void TearDown() override {
    s_.reset();
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::unique_ptr<Store> s_;
};

TEST_P(StoreContract, PutGetListDeleteWithRevisions) {
  auto r1 = s_->Put("controls/us-east", "on");
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  auto r2 = s_->Put("controls/us-west", "on");
  auto r3 = s_->Put("controls/us-east", "off");
  ASSERT_TRUE(r3.ok());
  EXPECT_LT(*r1, *r2);
  EXPECT_LT(*r2, *r3);
  auto kv = s_->Get("controls/us-east");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  EXPECT_EQ((*kv)->value, "off");
  EXPECT_EQ((*kv)->version, 2);
  EXPECT_EQ((*kv)->create_revision, *r1);
  EXPECT_EQ((*kv)->mod_revision, *r3);
  auto list = s_->List("controls/");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->kvs.size(), 2u);
  EXPECT_EQ(list->kvs[0].key, "controls/us-east");
  EXPECT_EQ(list->kvs[1].key, "controls/us-west");
  EXPECT_GE(list->revision, *r3);
  EXPECT_EQ(*s_->Delete("controls/us-east"), true);
  EXPECT_EQ(*s_->Delete("controls/us-east"), false);
  EXPECT_FALSE(s_->Get("controls/us-east")->has_value());
  EXPECT_GT(*s_->Revision(), *r3);
}

TEST_P(StoreContract, ValuesAreBytes) {
  std::string binary("\0\x01\xff\n\"\\", 6);
  ASSERT_TRUE(s_->Put("bin/\x01key", binary).ok());
  EXPECT_EQ((*s_->Get("bin/\x01key"))->value, binary);
}

TEST_P(StoreContract, CompareAndSwapRefusesAStaleWriter) {
  ASSERT_TRUE(s_->Put("epoch", "1", Expect::Absent()).ok());
  auto again = s_->Put("epoch", "1", Expect::Absent());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kAborted);
  int64_t rev = (*s_->Get("epoch"))->mod_revision;
  ASSERT_TRUE(s_->Put("epoch", "2", Expect::Revision(rev)).ok());
  auto stale = s_->Put("epoch", "3", Expect::Revision(rev));  // a second writer that read the old revision
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), Code::kAborted);
  EXPECT_EQ((*s_->Get("epoch"))->value, "2");
  auto gone = s_->Delete("epoch", Expect::Revision(rev));
  EXPECT_EQ(gone.error().code(), Code::kAborted);
  EXPECT_TRUE(s_->Get("epoch")->has_value());
}

// The failover engine's write: compare the epoch and a role together, write both.
TEST_P(StoreContract, ATransactionWritesAllOrNothing) {
  auto r = s_->Put("epoch", "1");
  ASSERT_TRUE(r.ok());
  int64_t epoch_rev = *r;
  auto won = s_->Txn({{"epoch", Expect::Revision(epoch_rev)}, {"primary", Expect::Absent()}},
                     {Op::Put("epoch", "2"), Op::Put("primary", "us-west"), Op::Delete("fence/us-west")});
  ASSERT_TRUE(won.ok()) << won.error().ToString();
  EXPECT_EQ((*s_->Get("epoch"))->value, "2");
  EXPECT_EQ((*s_->Get("primary"))->value, "us-west");
  EXPECT_GE(*won, (*s_->Get("primary"))->mod_revision);
  // A second region that read epoch 1: neither of its writes lands.
  auto lost = s_->Txn({{"epoch", Expect::Revision(epoch_rev)}, {"primary", Expect::Any()}},
                      {Op::Put("epoch", "2"), Op::Put("primary", "eu-central")});
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code(), Code::kAborted);
  EXPECT_NE(lost.error().message().find("epoch"), std::string::npos) << lost.error().message();
  EXPECT_EQ((*s_->Get("primary"))->value, "us-west");
}

TEST_P(StoreContract, ConcurrentIncrementsLoseNothing) {
  ASSERT_TRUE(s_->Put("n", "0").ok());
  auto worker = [&] {
    for (int i = 0; i < 25; ++i) {
      for (;;) {
        auto got = s_->Get("n");
        ASSERT_TRUE(got.ok() && got->has_value());
        const KeyValue& kv = **got;
        int v = std::stoi(kv.value);
        auto r = s_->Put("n", std::to_string(v + 1), Expect::Revision(kv.mod_revision));
        if (r.ok()) break;
        ASSERT_EQ(r.error().code(), Code::kAborted) << r.error().ToString();
      }
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  EXPECT_EQ((*s_->Get("n"))->value, "50");
}

TEST_P(StoreContract, LeasedKeysLiveWhileKeptAliveAndVanishAfter) {
  auto lease = s_->Grant(1s);
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  ASSERT_TRUE(s_->Put("leader", "us-east", Expect::Absent(), *lease).ok());
  EXPECT_EQ((*s_->Get("leader"))->lease, *lease);
  for (int i = 0; i < 6; ++i) {  // 3 s, longer than the TTL, kept alive
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(s_->KeepAlive(*lease).ok());
  }
  EXPECT_TRUE(s_->Get("leader")->has_value());
  EXPECT_TRUE(WaitUntil([&] { return !s_->Get("leader")->has_value(); }, 10s)) << "the key outlived its lease";
  EXPECT_EQ(s_->KeepAlive(*lease).error().code(), Code::kNotFound);
  EXPECT_EQ(s_->Put("x", "y", Expect::Any(), *lease).error().code(), Code::kNotFound);
}

TEST_P(StoreContract, RevokeDeletesTheLeasesKeys) {
  auto lease = *s_->Grant(1h);
  ASSERT_TRUE(s_->Put("a", "1", Expect::Any(), lease).ok());
  ASSERT_TRUE(s_->Put("b", "2").ok());
  ASSERT_TRUE(s_->Revoke(lease).ok());
  EXPECT_FALSE(s_->Get("a")->has_value());
  EXPECT_TRUE(s_->Get("b")->has_value());
}

TEST_P(StoreContract, WatchDeliversItsPrefixInOrderOnTheStoresThread) {
  Recorder rec;
  auto handle = s_->Watch("controls/", 0, rec.Fn());
  ASSERT_TRUE(s_->Put("controls/a", "on").ok());
  ASSERT_TRUE(s_->Put("other", "x").ok());
  ASSERT_TRUE(s_->Put("controls/a", "off").ok());
  ASSERT_TRUE(s_->Delete("controls/a").ok());
  ASSERT_TRUE(rec.Await(3));
  handle.reset();
  ASSERT_TRUE(s_->Put("controls/b", "on").ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(rec.Describe(), (std::vector<std::string>{"put controls/a=on", "put controls/a=off", "delete controls/a"}));
  auto events = rec.events();
  EXPECT_LT(events[0].kv.mod_revision, events[1].kv.mod_revision);
  EXPECT_LT(events[1].kv.mod_revision, events[2].kv.mod_revision);
  for (auto id : rec.threads()) EXPECT_NE(id, std::this_thread::get_id());
}

TEST_P(StoreContract, AWatchResumesFromARevisionOfItsHistory) {
  auto r1 = *s_->Put("k/a", "1");
  auto r2 = *s_->Put("k/b", "2");
  ASSERT_TRUE(s_->Put("k/c", "3").ok());
  (void)r1;
  Recorder rec;
  auto handle = s_->Watch("k/", r2, rec.Fn());
  ASSERT_TRUE(rec.Await(2));
  ASSERT_TRUE(s_->Put("k/d", "4").ok());
  ASSERT_TRUE(rec.Await(3));
  EXPECT_EQ(rec.Describe(), (std::vector<std::string>{"put k/b=2", "put k/c=3", "put k/d=4"}));
}

TEST_P(StoreContract, ListThenWatchFromItsRevisionMissesNothing) {
  ASSERT_TRUE(s_->Put("r/a", "1").ok());
  auto range = s_->List("r/");
  ASSERT_TRUE(range.ok());
  ASSERT_TRUE(s_->Put("r/b", "2").ok());  // after the read, before the watch
  Recorder rec;
  auto handle = s_->Watch("r/", range->revision + 1, rec.Fn());
  ASSERT_TRUE(rec.Await(1));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(rec.Describe(), (std::vector<std::string>{"put r/b=2"}));
}

TEST_P(StoreContract, AWatchFromCompactedHistorySaysSo) {
  auto first = *s_->Put("h/x", "1");
  ASSERT_TRUE(s_->Put("h/x", "2").ok());
  auto last = *s_->Put("h/x", "3");
  ASSERT_TRUE(s_->Compact(last).ok());
  Recorder rec;
  auto handle = s_->Watch("h/", first, rec.Fn());
  ASSERT_TRUE(rec.Await(1));
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(rec.Describe(), (std::vector<std::string>{"compacted"}));
  EXPECT_GT(rec.events()[0].kv.mod_revision, first);
  // From the compaction on, the history is there.
  Recorder after;
  auto h2 = s_->Watch("h/", last, after.Fn());
  ASSERT_TRUE(after.Await(1));
  EXPECT_EQ(after.Describe(), (std::vector<std::string>{"put h/x=3"}));
}

TEST_P(StoreContract, AWatchSeesTheKeysOfAnExpiredLeaseGo) {
  auto lease = *s_->Grant(1s);
  ASSERT_TRUE(s_->Put("views/us-east", "primary down", Expect::Any(), lease).ok());
  Recorder rec;
  auto handle = s_->Watch("views/", 0, rec.Fn());
  ASSERT_TRUE(rec.Await(1, 15s)) << "no delete seen after the lease ran out";
  EXPECT_EQ(rec.Describe(), (std::vector<std::string>{"delete views/us-east"}));
}

// Calls and a watch on the first member, which is then stopped (by the
// command in LIFEBOAT_TEST_ETCD_STOP, which tests/integration/etcd_test.sh
// sets): both move to the members that are left; the watch resumes after the
// last event it delivered, losing and repeating nothing.
TEST(EtcdFailover, CallsAndAWatchMoveToTheMembersLeft) {
  const char* stop = std::getenv("LIFEBOAT_TEST_ETCD_STOP");
  if (stop == nullptr) GTEST_SKIP() << "LIFEBOAT_TEST_ETCD_STOP is not set: tests/integration/etcd_test.sh runs this";
  auto s = OpenTestStore("etcd", "", "EtcdFailover");
  ASSERT_TRUE(s.ok() && *s != nullptr);
  Store& store = **s;
  Recorder rec;
  auto handle = store.Watch("f/", 0, rec.Fn());
  // Each key created once: a call cut off while its member stops may or may
  // not have happened (Unavailable), so it is retried as a create, and
  // "exists already" means the first try landed.
  auto create = [&](int i) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = store.Put("f/" + std::to_string(i), "v", Expect::Absent());
      if (r.ok() || r.error().code() == Code::kAborted) return true;
      EXPECT_EQ(r.error().code(), Code::kUnavailable) << r.error().ToString();
      std::this_thread::sleep_for(100ms);
    }
    return false;
  };
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(create(i));
  ASSERT_TRUE(rec.Await(5));
  ASSERT_EQ(std::system(stop), 0) << stop;
  for (int i = 5; i < 10; ++i) ASSERT_TRUE(create(i)) << "f/" << i;
  ASSERT_TRUE(rec.Await(10, 20s)) << "the watch did not resume: " << rec.events().size() << " events";
  std::this_thread::sleep_for(500ms);
  auto events = rec.events();
  ASSERT_EQ(events.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(events[static_cast<size_t>(i)].kv.key, "f/" + std::to_string(i));
}

INSTANTIATE_TEST_SUITE_P(Each, StoreContract, ::testing::ValuesIn(TestStoreKinds()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lifeboat::state
