// Snapshots and locks: listing, writing and deleting backups; shared and exclusive repository locks.
#include "repo/repository.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <set>
#include <spdlog/spdlog.h>
#include <unordered_set>

#include "chunk/hash.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "repo/repository_internal.h"

namespace lifeboat::repo {

using namespace detail;

// ---------------------------------------------------------------- snapshots

Result<std::string> Repository::SaveSnapshot(const Snapshot& s) { return SaveObject("snapshots", kAadSnapshot, s.ToJson()); }

Result<std::vector<Snapshot>> Repository::ListSnapshots(std::vector<std::string>* errors) {
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("snapshots"));
  std::vector<Snapshot> out;
  for (const auto& f : files) {
    auto plain = LoadObject(f.name, kAadSnapshot);
    Result<Snapshot> s = plain.ok() ? Snapshot::FromJson(*plain) : Result<Snapshot>(plain.error());
    if (!s.ok()) {
      if (s.error().code() == Code::kNotFound) continue;  // deleted meanwhile
      std::string msg = f.name + ": " + s.error().message();
      if (errors == nullptr) return Error(Code::kDataLoss, msg);
      errors->push_back(msg);
      continue;
    }
    s->id = BaseName(f.name);
    out.push_back(std::move(*s));
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    return std::tie(a.time_ns, a.id) < std::tie(b.time_ns, b.id);
  });
  return out;
}

Result<Snapshot> Repository::FindSnapshot(const std::string& prefix) {
  if (prefix.size() < 4 || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return InvalidArgument("'" + prefix + "' is not a backup id (at least 4 lower-case hex digits)");
  }
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("snapshots"));
  std::vector<std::string> match;
  for (const auto& f : files) {
    if (BaseName(f.name).starts_with(prefix)) match.push_back(f.name);
  }
  if (match.empty()) return NotFound("no backup " + prefix + " in " + backend_->Describe());
  if (match.size() > 1) return InvalidArgument("backup id " + prefix + " is ambiguous: give more digits");
  LB_ASSIGN_OR_RETURN(std::string plain, LoadObject(match[0], kAadSnapshot));
  LB_ASSIGN_OR_RETURN(Snapshot s, Snapshot::FromJson(plain));
  s.id = BaseName(match[0]);
  return s;
}

Status Repository::DeleteSnapshot(const std::string& id) { return backend_->Delete("snapshots/" + id); }

// ---------------------------------------------------------------- locks

Result<std::unique_ptr<Lock>> Repository::AcquireLock(bool exclusive, const std::string& operation, LockOptions options) {
  auto lock = std::make_unique<Lock>();
  if (read_only()) return lock;  // a ReadOnly location is never written, so nobody can prune it under us from here
  lock->info_ = {exclusive, Hostname(), operation, ::getpid(), NowUnixNs()};
  std::array<uint8_t, 16> rnd;
  RandomBytes(rnd);
  std::string name = "locks/" + HexOf(rnd);
  LB_RETURN_IF_ERROR(backend_->Put(name, Seal(keys_, kAadLock, lock->info_.ToJson())));
  auto others = backend_->List("locks");
  if (!others.ok()) {
    (void)backend_->Delete(name);
    return others.error();
  }
  for (const auto& o : *others) {
    if (o.name == name) continue;
    auto body = backend_->Get(o.name);
    if (!body.ok()) continue;  // released meanwhile
    auto plain = repo::Open(keys_, kAadLock, *body);
    auto info = plain.ok() ? LockInfo::FromJson(*plain) : Result<LockInfo>(plain.error());
    if (!info.ok()) {
      spdlog::warn("repository: ignoring unreadable lock {}: {}", o.name, info.error().message());
      continue;
    }
    bool stale = NowUnixNs() - info->time_ns > std::chrono::nanoseconds(options.stale_after).count() ||
                 (info->host == lock->info_.host && info->pid != lock->info_.pid && ::kill(static_cast<pid_t>(info->pid), 0) != 0 &&
                  errno == ESRCH);
    if (stale) {
      spdlog::info("repository: removing stale lock {} ({} pid {}, {})", o.name, info->host, info->pid, info->operation);
      (void)backend_->Delete(o.name);
      continue;
    }
    if (exclusive || info->exclusive) {
      (void)backend_->Delete(name);
      return FailedPrecondition("the repository is locked by " + info->operation + " on " + info->host + " (pid " +
                                std::to_string(info->pid) + ", " + (info->exclusive ? "exclusive" : "shared") +
                                ", refreshed " + TimeText(info->time_ns) +
                                "); try again when it ends (a lock left by a dead process turns stale after " +
                                std::to_string(options.stale_after.count() / 60) + "m)");
    }
  }
  lock->repo_ = this;
  lock->name_ = name;
  Lock* l = lock.get();
  lock->refresher_ = std::thread([l, options] {
    std::unique_lock g(l->mu_);
    while (!l->cv_.wait_for(g, options.refresh_every, [l] { return l->stop_; })) {
      l->info_.time_ns = NowUnixNs();
      Status s = l->repo_->backend_->Put(l->name_, Seal(l->repo_->keys_, kAadLock, l->info_.ToJson()));
      if (!s.ok()) spdlog::warn("repository: cannot refresh lock {}: {}", l->name_, s.error().message());
    }
  });
  return lock;
}

Lock::~Lock() {
  if (repo_ == nullptr) return;
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  Status s = repo_->backend_->Delete(name_);
  if (!s.ok()) spdlog::warn("repository: cannot release lock {}: {}", name_, s.error().message());
}

}  // namespace lifeboat::repo
