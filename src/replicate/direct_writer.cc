#include "replicate/direct_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "fstree/tree.h"
#include "replicate/journal.h"

namespace lifeboat::replicate {

std::unique_ptr<DirectWriter> DirectWriter::Open(Env& env, int dir, const std::string& name, int fd,
                                                 std::string path) {
  UniqueFd direct(env.OpenAt(dir, name.c_str(), O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC));
  if (!direct.valid()) return nullptr;
  return std::unique_ptr<DirectWriter>(new DirectWriter(env, std::move(direct), fd, std::move(path)));
}

DirectWriter::DirectWriter(Env& env, UniqueFd direct, int fd, std::string path)
    : env_(env), direct_(std::move(direct)), fd_(fd), path_(std::move(path)) {}

DirectWriter::~DirectWriter() { (void)Drain(); }

void DirectWriter::Run(std::shared_ptr<Buffer> b, size_t n, uint64_t offset) {
  Status s;
  uint64_t direct = 0;
  bool skip;
  {
    std::lock_guard lock(mu_);
    skip = abandoned_ || failed_.has_value();
  }
  if (!skip) {
    const uint8_t* p = b->data.get();
    while (n > 0) {
      ssize_t w = env_.PWrite(direct_.get(), p, n, static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
      // EINVAL: the file system took part of a block (a short write before),
      // or will not take this one direct after all. The rest goes through
      // the page cache; this file's writes run one at a time, on this thread.
      if (w < 0 && errno == EINVAL) {
        s = WriteAll(env_, fd_, p, n, offset, path_);
        break;
      }
      if (w <= 0) {
        s = IoError(w < 0 ? errno : EIO, "write '" + fstree::Printable(path_) + "'");
        break;
      }
      p += w;
      n -= static_cast<size_t>(w);
      offset += static_cast<uint64_t>(w);
      direct += static_cast<uint64_t>(w);
    }
  }
  {
    std::lock_guard lock(mu_);
    direct_bytes_ += direct;
    if (!s.ok() && !failed_) failed_ = s.error();
    free_.push_back(std::move(b));
    --queued_;
  }
  cv_.notify_all();
}

Status DirectWriter::Write(const uint8_t* p, size_t n, uint64_t offset) {
  if (n == 0) return Ok();
  if (offset % kAlign != 0 || n % kAlign != 0) {
    LB_RETURN_IF_ERROR(Drain());
    return WriteAll(env_, fd_, p, n, offset, path_);
  }
  while (n > 0) {
    if (filling_ && (offset != filling_at_ + filled_ || filled_ == kChunk)) LB_RETURN_IF_ERROR(Post());
    if (!filling_) {
      {
        std::lock_guard lock(mu_);
        if (failed_) return *failed_;
        if (!free_.empty()) {
          filling_ = std::move(free_.back());
          free_.pop_back();
        }
      }
      if (!filling_) {
        filling_ = std::make_shared<Buffer>();
        filling_->data = AllocAligned(kAlign, kChunk);
        if (!filling_->data) {
          filling_.reset();
          return ResourceExhausted("out of memory for a write of '" + fstree::Printable(path_) + "'");
        }
      }
      filling_at_ = offset;
      filled_ = 0;
    }
    size_t k = std::min(n, kChunk - filled_);
    std::memcpy(filling_->data.get() + filled_, p, k);
    filled_ += k;
    p += k;
    n -= k;
    offset += k;
  }
  return filled_ == kChunk ? Post() : Ok();
}

Status DirectWriter::Post() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queued_ < kInFlight; });
    if (failed_) {
      filling_.reset();
      return *failed_;
    }
    ++queued_;
  }
  worker_.Post([this, b = std::move(filling_), n = filled_, at = filling_at_] { Run(b, n, at); });
  filling_.reset();
  return Ok();
}

Status DirectWriter::Drain() {
  if (filling_) LB_RETURN_IF_ERROR(Post());
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return queued_ == 0; });
  if (failed_) return *failed_;
  return Ok();
}

void DirectWriter::Abandon() {
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
  }
  filling_.reset();
  (void)Drain();
}

}  // namespace lifeboat::replicate
