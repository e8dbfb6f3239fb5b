#include "orchestrate/runbook.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "state/sqlite_store.h"

namespace lifeboat::orchestrate {
namespace {

using namespace std::chrono_literals;

// Records every step it runs; a step can be made to fail a number of times,
// or to wait until released.
class FakeRunner : public StepRunner {
 public:
  Result<std::string> RunStep(const state::StepRecord& step, const state::FailoverRun&) override {
    {
      std::unique_lock l(mu_);
      ran_.push_back(step.name);
      if (step.name == block_at_) {
        blocked_ = true;
        cv_.notify_all();
        cv_.wait(l, [&] { return released_; });
      }
      if (failures_[step.name] > 0) {
        --failures_[step.name];
        return Unavailable(step.name + " failed on purpose");
      }
    }
    return step.name + " done";
  }
  std::vector<std::string> ran() {
    std::lock_guard l(mu_);
    return ran_;
  }
  void FailTimes(const std::string& step, int n) { failures_[step] = n; }
  void BlockAt(const std::string& step) { block_at_ = step; }
  void WaitBlocked() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return blocked_; });
  }
  void Release() {
    std::lock_guard l(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ran_;
  std::map<std::string, int> failures_;
  std::string block_at_;
  bool blocked_ = false, released_ = false;
};

const std::vector<std::string> kSteps = {"fence", "promote", "switch-traffic", "verify"};

class RunbookTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(*state::SqliteStore::Open(":memory:")); }
  RunbookOptions Options(const std::string& owner) {
    RunbookOptions o;
    o.owner = owner;
    o.lease_ttl = 1s;
    o.retry_backoff = 10ms;
    return o;
  }
  // The lease a driver begins a run under and then drives it with.
  state::LeaseId Lease() {
    auto lease = store_->Grant(1s);
    EXPECT_TRUE(lease.ok());
    return lease.ok() ? *lease : 0;
  }
  std::unique_ptr<state::Store> store_;
};

TEST_F(RunbookTest, RunsEveryStepInOrderAndRecordsIt) {
  FakeRunner runner;
  Runbook rb(*store_, runner, Options("west"));
  auto lease = Lease();
  ASSERT_TRUE(rb.Begin("east", "west", 2, false, kSteps, lease).ok());
  auto run = rb.Drive(nullptr, lease);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->state, "done");
  EXPECT_EQ(runner.ran(), kSteps);
  auto saved = *state::keys::CurrentFailover().Get(*store_);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->state, "done");
  for (const auto& s : saved->steps) {
    EXPECT_EQ(s.state, "done");
    EXPECT_EQ(s.attempts, 1);
    EXPECT_EQ(s.output, s.name + " done");
    EXPECT_FALSE(s.ended_at.empty());
  }
  EXPECT_FALSE(store_->Get(state::keys::kFailoverLock)->has_value()) << "the lock outlived the run";
}

TEST_F(RunbookTest, AFailingStepIsRetriedThenFailsTheRun) {
  FakeRunner runner;
  runner.FailTimes("promote", 1);
  Runbook rb(*store_, runner, Options("west"));
  auto lease = Lease();
  ASSERT_TRUE(rb.Begin("east", "west", 2, false, kSteps, lease).ok());
  auto run = rb.Drive(nullptr, lease);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state, "done");
  EXPECT_EQ(run->steps[1].attempts, 2);

  FakeRunner broken;
  broken.FailTimes("switch-traffic", 5);
  Runbook rb2(*store_, broken, Options("west"));
  auto lease2 = Lease();
  ASSERT_TRUE(rb2.Begin("west", "east", 3, false, kSteps, lease2).ok());
  auto failed = rb2.Drive(nullptr, lease2);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, "failed");
  EXPECT_EQ(failed->steps[2].state, "failed");
  EXPECT_EQ(failed->steps[2].attempts, 3);
  EXPECT_EQ(failed->steps[2].output, "switch-traffic failed on purpose");
  EXPECT_EQ(failed->steps[3].state, "pending") << "nothing runs after a failed step";
  EXPECT_EQ(broken.ran(), (std::vector<std::string>{"fence", "promote", "switch-traffic", "switch-traffic",
                                                    "switch-traffic"}));
}

TEST_F(RunbookTest, OneRunAtATimeAndOneDriverAtATime) {
  FakeRunner runner;
  runner.BlockAt("promote");
  Runbook a(*store_, runner, Options("west"));
  auto lease = Lease();
  ASSERT_TRUE(a.Begin("east", "west", 2, false, kSteps, lease).ok());
  auto second = a.Begin("east", "north", 2, false, kSteps, Lease());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  Result<state::FailoverRun> ra = Internal("not run");
  std::thread ta([&] { ra = a.Drive(nullptr, lease); });
  runner.WaitBlocked();
  FakeRunner other;
  Runbook b(*store_, other, Options("north"));
  auto rb = b.Drive();
  ASSERT_FALSE(rb.ok());
  EXPECT_EQ(rb.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(rb.error().message().find("west"), std::string::npos) << rb.error().message();
  EXPECT_TRUE(other.ran().empty());
  runner.Release();
  ta.join();
  ASSERT_TRUE(ra.ok());
  EXPECT_EQ(ra->state, "done");
}

// The driver dies in the middle of promote (its lease runs out); another
// agent resumes at promote, runs it again and finishes; the old driver,
// when it wakes, writes nothing.
TEST_F(RunbookTest, AnotherAgentResumesAtTheExactStepOfADriverThatDied) {
  FakeRunner dying;
  dying.BlockAt("promote");
  Runbook a(*store_, dying, Options("west@host:1"));
  auto lease = Lease();
  ASSERT_TRUE(a.Begin("east", "west", 2, false, kSteps, lease).ok());
  Result<state::FailoverRun> ra = Internal("not run");
  std::thread ta([&] { ra = a.Drive(nullptr, lease); });
  dying.WaitBlocked();
  // The driver's lease ends (the process died; here: its lock is deleted as
  // expiry would). A second agent now takes the run over.
  ASSERT_TRUE((*store_).Delete(state::keys::kFailoverLock).ok());
  FakeRunner next;
  Runbook b(*store_, next, Options("witness@host:2"));
  auto rb = b.Drive();
  ASSERT_TRUE(rb.ok()) << rb.error().ToString();
  EXPECT_EQ(rb->state, "done");
  EXPECT_EQ(next.ran(), (std::vector<std::string>{"promote", "switch-traffic", "verify"}));
  EXPECT_EQ(rb->steps[1].attempts, 2) << "promote ran once per driver";
  EXPECT_EQ(rb->owner, "witness@host:2");
  dying.Release();
  ta.join();
  ASSERT_FALSE(ra.ok());
  EXPECT_EQ(ra.error().code(), Code::kAborted) << ra.error().ToString();
  auto saved = *state::keys::CurrentFailover().Get(*store_);
  EXPECT_EQ(saved->state, "done") << "the old driver overwrote the record";
  EXPECT_EQ(saved->owner, "witness@host:2");
}

// Between Begin and Drive (the run handed to a worker thread) the run is
// already locked by its beginner: another agent watching the store sees a
// running run, but cannot take it over as if its driver had died.
TEST_F(RunbookTest, ARunIsHeldByItsBeginnerBeforeItDrives) {
  FakeRunner runner, other;
  Runbook a(*store_, runner, Options("witness@host:1"));
  auto lease = Lease();
  ASSERT_TRUE(a.Begin("east", "west", 2, false, kSteps, lease).ok());
  Runbook b(*store_, other, Options("east@host:2"));
  auto taken = b.Drive();
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(taken.error().message().find("witness@host:1"), std::string::npos) << taken.error().message();
  EXPECT_TRUE(other.ran().empty());
  auto run = a.Drive(nullptr, lease);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->state, "done");
  EXPECT_EQ(run->owner, "witness@host:1");
  EXPECT_EQ(runner.ran(), kSteps);
}

// A Begin under a lease that is gone records nothing: the run and its lock
// are written together or not at all.
TEST_F(RunbookTest, ABeginUnderALeaseThatIsGoneRecordsNothing) {
  FakeRunner runner;
  Runbook a(*store_, runner, Options("west"));
  auto lease = Lease();
  ASSERT_TRUE(store_->Revoke(lease).ok());
  EXPECT_FALSE(a.Begin("east", "west", 2, false, kSteps, lease).ok());
  EXPECT_FALSE(store_->Get(state::keys::CurrentFailover().name())->has_value());
  EXPECT_FALSE(store_->Get(state::keys::kFailoverLock)->has_value());
}

TEST_F(RunbookTest, NoRunIsNotFound) {
  FakeRunner runner;
  Runbook rb(*store_, runner, Options("west"));
  EXPECT_EQ(rb.Drive().error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace lifeboat::orchestrate
