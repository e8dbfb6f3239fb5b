#include "orchestrate/runbook.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/log.h"

namespace lifeboat::orchestrate {
namespace {

std::string Now() { return FormatUtc(Clock::Real().Now()); }

// Keeps a lease alive on a thread of its own until destroyed; then revokes it.
class LeaseKeeper {
 public:
  LeaseKeeper(state::Store& store, state::LeaseId lease, Duration ttl) : store_(store), lease_(lease) {
    thread_ = std::thread([this, ttl] {
      std::unique_lock l(mu_);
      while (!cv_.wait_for(l, ttl / 3, [this] { return stop_; })) {
        l.unlock();
        auto s = store_.KeepAlive(lease_);
        l.lock();
        if (!s.ok() && s.error().code() == Code::kNotFound) return;  // gone: the writes will say so
      }
    });
  }
  ~LeaseKeeper() {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    (void)store_.Revoke(lease_);  // the lock goes with it; a failure leaves it to expire
  }

 private:
  state::Store& store_;
  state::LeaseId lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

Runbook::Runbook(state::Store& store, StepRunner& runner, RunbookOptions options)
    : store_(store), runner_(runner), o_(std::move(options)) {}

Result<state::FailoverRun> Runbook::Begin(const std::string& from, const std::string& to, uint64_t epoch,
                                          bool planned, const std::vector<std::string>& steps,
                                          state::LeaseId lease) {
  auto key = state::keys::CurrentFailover();
  LB_ASSIGN_OR_RETURN(auto kv, store_.Get(key.name()));
  if (kv) {
    LB_ASSIGN_OR_RETURN(auto cur, key.Get(store_));
    if (cur && cur->state == "running") {
      return FailedPrecondition("a failover from " + cur->from + " to " + cur->to + " (epoch " +
                                std::to_string(cur->epoch) + ") is still running; it resumes, or fails, first");
    }
  }
  state::FailoverRun run;
  run.started_at = Now();
  run.id = run.started_at + "-" + to;
  run.from = from;
  run.to = to;
  run.epoch = epoch;
  run.planned = planned;
  run.owner = o_.owner;
  for (const auto& name : steps) {
    state::StepRecord step;
    step.name = name;
    run.steps.push_back(std::move(step));
  }
  auto written = store_.Txn({{key.name(), kv ? state::Expect::Revision(kv->mod_revision) : state::Expect::Absent()},
                             {std::string(state::keys::kFailoverLock), state::Expect::Absent()}},
                            {state::Op::Put(key.name(), state::Encode(run)),
                             state::Op::Put(std::string(state::keys::kFailoverLock), o_.owner, lease)});
  if (!written.ok() && written.error().code() == Code::kAborted) {
    return FailedPrecondition("another agent began or holds a failover meanwhile: " + written.error().message());
  }
  if (!written.ok()) return written.error();
  return run;
}

Result<int64_t> Runbook::Lock(state::LeaseId lease) {
  auto locked = store_.Put(state::keys::kFailoverLock, o_.owner, state::Expect::Absent(), lease);
  if (locked.ok()) return *locked;
  if (locked.error().code() != Code::kAborted) return locked.error();
  LB_ASSIGN_OR_RETURN(auto holder, store_.Get(state::keys::kFailoverLock));
  if (holder && holder->value == o_.owner && holder->lease == lease) return holder->mod_revision;  // ours already
  return FailedPrecondition("the failover is being driven by " + (holder ? holder->value : std::string("another agent")));
}

Result<state::FailoverRun> Runbook::Drive(const std::atomic<bool>* stop, state::LeaseId lease) {
  // The lock: a key under a lease of ours, created only when absent (or
  // already created by Begin under the lease given).
  if (lease == 0) {
    LB_ASSIGN_OR_RETURN(lease, store_.Grant(o_.lease_ttl));
  }
  auto locked = Lock(lease);
  if (!locked.ok()) {
    (void)store_.Revoke(lease);
    return locked.error();
  }
  LeaseKeeper keeper(store_, lease, o_.lease_ttl);
  for (;;) {
    if (stop != nullptr && stop->load()) {
      LB_ASSIGN_OR_RETURN(auto run, state::keys::CurrentFailover().Get(store_));
      if (!run) return NotFound("no failover to run");
      if (run->state != "running") return *run;
      for (const auto& step : run->steps) {
        if (step.state != "done") return Cancelled("stopped before step " + step.name + "; another Drive resumes there");
      }
    }
    bool retry = false;
    LB_ASSIGN_OR_RETURN(auto run, StepLocked(*locked, &retry));
    if (run.state != "running") return run;
    if (retry) std::this_thread::sleep_for(o_.retry_backoff);
  }
}

Result<state::FailoverRun> Runbook::Step(state::LeaseId lease) {
  LB_ASSIGN_OR_RETURN(int64_t lock_rev, Lock(lease));
  return StepLocked(lock_rev, nullptr);
}

Result<state::FailoverRun> Runbook::StepLocked(int64_t lock_rev, bool* failed_attempt) {
  auto key = state::keys::CurrentFailover();
  // Writes the record if the lock is still ours and nobody changed the record.
  auto save = [&](const state::FailoverRun& run, int64_t& rev) -> Status {
    auto r = store_.Txn({{key.name(), state::Expect::Revision(rev)},
                         {std::string(state::keys::kFailoverLock), state::Expect::Revision(lock_rev)}},
                        {state::Op::Put(key.name(), state::Encode(run))});
    if (!r.ok()) {
      if (r.error().code() == Code::kAborted) {
        return Aborted("lost the failover lock (another agent took over the run): " + r.error().message());
      }
      return r.error();
    }
    LB_ASSIGN_OR_RETURN(auto kv, store_.Get(key.name()));
    rev = kv ? kv->mod_revision : 0;
    return Ok();
  };

  LB_ASSIGN_OR_RETURN(auto kv, store_.Get(key.name()));
  if (!kv) return NotFound("no failover to run");
  state::FailoverRun run;
  if (!state::Decode(kv->value, run)) return DataLoss("state key " + key.name() + " is not a failover run");
  int64_t rev = kv->mod_revision;
  if (run.state != "running") return run;

  size_t i = 0;
  while (i < run.steps.size() && run.steps[i].state == "done") ++i;
  if (i == run.steps.size()) {
    run.state = "done";
    run.ended_at = Now();
    run.owner = o_.owner;
    LB_RETURN_IF_ERROR(save(run, rev));
    LogInfo({{"to", run.to}}, "failover to {} done (epoch {})", run.to, run.epoch);
    return run;
  }
  state::StepRecord& step = run.steps[i];
  bool resumed = step.state == "running" && run.owner != o_.owner;
  step.state = "running";
  step.attempts++;
  step.started_at = Now();
  step.ended_at.clear();
  run.owner = o_.owner;
  LB_RETURN_IF_ERROR(save(run, rev));
  LogInfo({{"step", step.name}, {"to", run.to}}, "failover to {}: step {} ({}attempt {})", run.to, step.name,
          resumed ? "resumed from a driver that stopped, " : "", step.attempts);

  auto result = runner_.RunStep(step, run);
  step.ended_at = Now();
  if (result.ok()) {
    step.state = "done";
    step.output = *result;
  } else {
    step.output = result.error().message();
    bool last = step.attempts >= o_.attempts;
    step.state = last ? "failed" : "pending";
    LogWarn({{"step", step.name}, {"error", step.output}}, "failover to {}: step {} failed{}", run.to, step.name,
            last ? "; the run fails" : "; retrying");
    if (last) {
      run.state = "failed";
      run.ended_at = step.ended_at;
    }
    if (failed_attempt != nullptr) *failed_attempt = true;
  }
  LB_RETURN_IF_ERROR(save(run, rev));
  return run;
}

}  // namespace lifeboat::orchestrate
