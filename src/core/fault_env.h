// For tests only (no product code includes it): an Env that fails one chosen
// file-system call, to test crash safety at every call of an operation.
//
//   FaultEnv env;                        // counts the calls of a clean run
//   Run(env);  uint64_t n = env.calls();
//   for (uint64_t k = 1; k <= n; ++k) {  // then dies before each in turn
//     env.Arm(FaultEnv::Fault::kCrash, k);
//     Run(env);  Recover(Env::Default());  Check();
//   }
#pragma once

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/env.h"

namespace lifeboat {

class FaultEnv : public Env {
 public:
  enum class Fault {
    kNone,
    // The process dies at the chosen call: it and every later call fail (EIO)
    // without running. A write chosen runs half its length first (torn).
    kCrash,
    // Only the chosen call fails, with EIO.
    kIoError,
    // From the chosen call on, every call that needs room (create, write,
    // truncate, mkdir, symlink, link) fails with ENOSPC; the first write
    // among them first writes half its length (what still fitted).
    kDiskFull,
  };

  // Starts counting calls afresh; the `at`th from now (1-based) gets `fault`.
  void Arm(Fault fault, uint64_t at) {
    std::lock_guard lock(mu_);
    fault_ = fault;
    at_ = at;
    calls_ = 0;
    fired_ = false;
    fired_op_ = FileOp::kOpen;
    fired_call_ = 0;
  }
  // Lets every call run again (the process "restarted"); counting goes on.
  void Disarm() { Arm(Fault::kNone, 0); }

  uint64_t calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // Whether the fault changed the outcome of a call yet (a full disk from
  // call n on changes nothing when no later call needs room).
  bool fired() const {
    std::lock_guard lock(mu_);
    return fired_;
  }
  // The first call the fault changed, for messages: "rename (call 12)".
  std::string fired_at() const {
    std::lock_guard lock(mu_);
    return fired_ ? std::string(Name(fired_op_)) + " (call " + std::to_string(fired_call_) + ")" : "no call";
  }

 protected:
  int Before(FileOp op, size_t* bytes) override {
    std::lock_guard lock(mu_);
    uint64_t n = ++calls_;
    if (fault_ == Fault::kNone || n < at_) return 0;
    bool at = n == at_;
    bool torn = op == FileOp::kWrite && bytes != nullptr && *bytes > 1;
    int verdict = 0;
    switch (fault_) {
      case Fault::kNone: break;
      case Fault::kIoError: verdict = at ? EIO : 0; break;
      case Fault::kCrash:
        if (at && torn) {
          *bytes /= 2;
          Fired(op);
          return 0;
        }
        verdict = EIO;
        break;
      case Fault::kDiskFull:
        if (!NeedsRoom(op)) break;
        if (!fired_ && torn) {  // the first write that meets the full disk: what fitted
          *bytes /= 2;
          Fired(op);
          return 0;
        }
        verdict = ENOSPC;
        break;
    }
    if (verdict != 0) Fired(op);
    return verdict;
  }

 private:
  static bool NeedsRoom(FileOp op) {
    return op == FileOp::kCreate || op == FileOp::kWrite || op == FileOp::kTruncate || op == FileOp::kMkdir ||
           op == FileOp::kSymlink || op == FileOp::kLink;
  }

  void Fired(FileOp op) {
    if (fired_) return;
    fired_ = true;
    fired_op_ = op;
    fired_call_ = calls_;
  }

  mutable std::mutex mu_;
  Fault fault_ = Fault::kNone;
  uint64_t at_ = 0;
  uint64_t calls_ = 0;
  bool fired_ = false;
  FileOp fired_op_ = FileOp::kOpen;
  uint64_t fired_call_ = 0;
};

}  // namespace lifeboat
