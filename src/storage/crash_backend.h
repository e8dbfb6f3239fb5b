// For tests only (no product code includes it): a Backend that "crashes"
// after a chosen number of writes. Every call after the crash fails, as if
// the process had died there, so a test can stop an operation before each
// of its writes in turn and check what a later process finds.
#pragma once

#include <memory>
#include <string>

#include "storage/storage.h"

namespace lifeboat::storage {

class CrashBackend : public Backend {
 public:
  // Allows `writes_before_crash` Puts and Deletes, then fails everything.
  // A negative count never crashes (and counts the writes).
  CrashBackend(std::unique_ptr<Backend> inner, int writes_before_crash)
      : inner_(std::move(inner)), left_(writes_before_crash) {}

  int writes() const { return writes_; }
  bool crashed() const { return crashed_; }

  std::string Describe() const override { return "crash-test " + inner_->Describe(); }
  Status Prepare() override { return inner_->Prepare(); }
  Status Put(const std::string& name, std::string_view data) override {
    LB_RETURN_IF_ERROR(Write());
    return inner_->Put(name, data);
  }
  Result<std::string> Get(const std::string& name, uint64_t offset, uint64_t length) override {
    if (crashed_) return Crashed();
    return inner_->Get(name, offset, length);
  }
  Result<std::vector<ObjectInfo>> List(const std::string& dir) override {
    if (crashed_) return Crashed();
    return inner_->List(dir);
  }
  Status Delete(const std::string& name) override {
    LB_RETURN_IF_ERROR(Write());
    return inner_->Delete(name);
  }
  Result<uint64_t> RemoveLeftovers() override {
    LB_RETURN_IF_ERROR(Write());
    return inner_->RemoveLeftovers();
  }

 private:
  static Error Crashed() { return Unavailable("crash-test backend: the process died here"); }
  Status Write() {
    if (crashed_) return Crashed();
    if (left_ >= 0 && writes_ >= left_) {
      crashed_ = true;
      return Crashed();
    }
    ++writes_;
    return Ok();
  }
  std::unique_ptr<Backend> inner_;
  int left_;
  int writes_ = 0;
  bool crashed_ = false;
};

}  // namespace lifeboat::storage
