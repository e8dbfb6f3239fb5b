// The failover runbook: an ordered list of steps, each recorded in the state
// store before and after it runs (state::keys::CurrentFailover), driven by
// one agent at a time (a leased lock, state::keys::kFailoverLock). An agent
// killed mid-run loses its lease; another agent's Drive() then resumes at
// the exact step it was in, which runs again (steps are idempotent). An
// agent that lost its lock while a step ran (a partition, a long pause)
// writes nothing more: every write of the record is conditional on the lock
// still being its own.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/units.h"
#include "state/keys.h"
#include "state/store.h"

namespace lifeboat::orchestrate {

// What a step does; the agent's implementation calls the services, tests
// pass fakes.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  // Runs one step of `run` to its end, or fails. Idempotent: a run resumed
  // after its driver died repeats the step that was running. Returns a
  // line for the record ("routing control of us-east off").
  virtual Result<std::string> RunStep(const state::StepRecord& step, const state::FailoverRun& run) = 0;
};

struct RunbookOptions {
  std::string owner;  // this agent, as records and the lock name it ("us-west@host:pid")
  Duration lease_ttl = std::chrono::seconds(5);
  int attempts = 3;  // per step, before the run fails
  Duration retry_backoff = std::chrono::milliseconds(500);
};

class Runbook {
 public:
  Runbook(state::Store& store, StepRunner& runner, RunbookOptions options);

  // Records a new run with `steps`, all pending, and takes its lock under
  // `lease` in the same transaction, so that no other agent ever sees a
  // running run that nobody holds (it would take the run over before its
  // driver started). Drive it next under the same lease. FailedPrecondition
  // while another run is still running (resume it with Drive, or let it
  // fail) or while another agent holds the lock.
  Result<state::FailoverRun> Begin(const std::string& from, const std::string& to, uint64_t epoch, bool planned,
                                   const std::vector<std::string>& steps, state::LeaseId lease);
  // Takes the lock and drives the current run to its end: each step not yet
  // done, in order, retried up to `attempts` times. Returns the final record
  // (state "done" or "failed"). `lease`: the one Begin locked the run under
  // (Drive keeps it alive, and revokes it at the end), or 0 to grant one.
  // FailedPrecondition naming the holder when another agent drives it;
  // NotFound when there is no run; Aborted when this agent lost the lock
  // midway (another has taken over); Cancelled when `stop` became true
  // between steps.
  Result<state::FailoverRun> Drive(const std::atomic<bool>* stop = nullptr, state::LeaseId lease = 0);
  // One step at a time, for a driver that keeps `lease` alive itself (the
  // simulation test, on its own clock): takes the lock under `lease` when it
  // is free (or already this driver's under it), then runs the next step
  // (or ends the run). Returns the record after it; errors as Drive.
  Result<state::FailoverRun> Step(state::LeaseId lease);

 private:
  // The lock's revision when it is (or now becomes) ours under `lease`.
  Result<int64_t> Lock(state::LeaseId lease);
  // Runs the next step under the lock at `lock_rev`; sets *failed_attempt
  // when that step failed and will be tried again.
  Result<state::FailoverRun> StepLocked(int64_t lock_rev, bool* failed_attempt);

  state::Store& store_;
  StepRunner& runner_;
  RunbookOptions o_;
};

}  // namespace lifeboat::orchestrate
