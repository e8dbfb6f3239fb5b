// Child processes on this machine for the commands that run a whole plan
// locally (demo, drill): starting lifeboat itself with a log file, reaping,
// stopping in order, and the signals those commands take with sigtimedwait.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "core/result.h"

namespace lifeboat::cli {

struct Child {
  std::string name;  // "us-east agent"
  std::string log;
  pid_t pid = -1;
  bool exited = false;
  int status = 0;  // waitpid's, once exited
};

// The path of the running lifeboat binary.
std::string SelfExe();
// "exit code 1", "killed by signal Killed".
std::string DescribeExit(int status);
// The last `lines` lines of a file ("" when unreadable).
std::string Tail(const std::string& path, size_t lines);

// Starts args[0] with stdout and stderr appended to `log`, stdin from
// /dev/null, default SIGINT/SIGTERM and an unblocked signal mask, in its own
// process group (a Ctrl-C reaches the caller only, which stops it in order).
Result<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log);

// Reaps children that have exited; returns the first of them, or nullptr.
Child* Reap(std::vector<Child>& children);
// SIGTERM to each child still running, SIGKILL to those not gone in 10 s.
void StopAll(std::vector<Child>& children);
// SIGKILL now and reaped: a process that dies as in an outage.
void KillNow(Child& child);

// The absolute path of `given` (--data-dir), created and checked writable;
// when empty, a new directory /tmp/lifeboat-KIND-XXXXXX. Errors name the flag.
Result<std::string> MakeDataDir(const std::string& given, const std::string& kind);

// Blocks SIGINT and SIGTERM in the calling thread (before any other thread
// starts), so that the command takes them with sigtimedwait.
sigset_t BlockStopSignals();
// True when SIGINT or SIGTERM is pending; takes it.
bool StopRequested(const sigset_t& signals);

}  // namespace lifeboat::cli
