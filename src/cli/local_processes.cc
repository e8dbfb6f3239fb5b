#include "cli/local_processes.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "core/fs.h"

extern char** environ;

namespace lifeboat::cli {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

std::string SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "lifeboat";
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

std::string Tail(const std::string& path, size_t lines) {
  auto text = ReadFile(path);
  if (!text.ok()) return "";
  std::string t = *text;
  size_t pos = t.size(), count = 0;
  while (pos > 0 && count <= lines) {
    pos = t.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
    ++count;
  }
  return t.substr(pos == 0 ? 0 : pos + 1);
}

Result<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);  // the demo blocks signals; the agents must not
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &def);
  // Own process group: a Ctrl-C on the terminal reaches the demo only, which
  // then stops the agents in order.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoError(rc, "start " + args[0]);
  return pid;
}

// Reaps children that have exited; returns the first that had not been expected to.
Child* Reap(std::vector<Child>& children) {
  Child* died = nullptr;
  for (auto& c : children) {
    if (c.exited) continue;
    int status;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.exited = true;
      c.status = status;
      if (!died) died = &c;
    }
  }
  return died;
}

void StopAll(std::vector<Child>& children) {
  for (auto& c : children) {
    if (!c.exited) ::kill(c.pid, SIGTERM);
  }
  auto deadline = SteadyClock::now() + 10s;
  while (SteadyClock::now() < deadline) {
    Reap(children);
    if (std::all_of(children.begin(), children.end(), [](const Child& c) { return c.exited; })) break;
    std::this_thread::sleep_for(20ms);
  }
  for (auto& c : children) {
    if (!c.exited) {
      std::cout << "  " << c.name << " did not stop within 10s; killing it\n";
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &c.status, 0);
      c.exited = true;
    }
  }
}

Result<std::string> MakeDataDir(const std::string& given, const std::string& kind) {
  std::string dir = given;
  if (dir.empty()) {
    std::string tmpl = "/tmp/lifeboat-" + kind + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return ErrnoError(errno, "create a directory under /tmp");
    dir = tmpl;
  }
  if (auto s = EnsureWritableDir(dir); !s.ok()) return s.error().Wrap("--data-dir");
  return std::filesystem::absolute(dir).string();
}

void KillNow(Child& c) {
  if (c.exited) return;
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, &c.status, 0);
  c.exited = true;
}

sigset_t BlockStopSignals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return sigs;
}

bool StopRequested(const sigset_t& signals) {
  timespec zero{0, 0};
  int sig = sigtimedwait(&signals, nullptr, &zero);
  return sig == SIGINT || sig == SIGTERM;
}

}  // namespace lifeboat::cli
