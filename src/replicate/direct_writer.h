// Writes a new large file's bytes past the page cache (O_DIRECT), from a
// thread of its own, while the receiving thread goes on with the next frame.
//
// Why: on the machines measured, a page-cache write of a new file costs most
// of the receiving thread's time in the kernel's copy into freshly allocated
// pages, and the file's dirty pages are then flushed again at the commit. A
// direct write from a reused buffer skips both: the disk takes the bytes from
// our memory, and the commit's fsync finds nothing left to write
// (docs/ARCHITECTURE.md, "Replication").
//
// Only whole 4 KiB blocks at block offsets go direct; anything else (a
// file's tail, an odd offset) is written through the file's ordinary
// descriptor, after the queued direct writes have finished, so that the two
// never overlap in flight. A caller that reads the file back drains first.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/fd.h"
#include "core/result.h"
#include "core/worker.h"
#include "replicate/aligned.h"

namespace lifeboat::replicate {

class DirectWriter {
 public:
  // The alignment of offsets, lengths and buffers of direct writes.
  static constexpr size_t kAlign = 4096;
  // Consecutive writes are gathered into direct writes of this size, at most
  // kInFlight of them queued; the receiving thread waits beyond that.
  static constexpr size_t kChunk = 2 << 20;
  static constexpr size_t kInFlight = 3;

  // Opens `name` (just created in `dir`) a second time with O_DIRECT; `fd` is
  // its ordinary descriptor, for unaligned writes. nullptr when the file
  // system refuses direct I/O (tmpfs before Linux 6.6): the caller writes as before.
  // `path` names the file in errors.
  static std::unique_ptr<DirectWriter> Open(Env& env, int dir, const std::string& name, int fd, std::string path);
  // Drains (errors dropped: the caller has seen them or is abandoning).
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  // Writes `n` bytes at `offset`: gathered and queued (copied) when both are
  // whole blocks, else written at once through the ordinary descriptor after
  // a drain.
  // Returns the error of any earlier write, which ends the file.
  Status Write(const uint8_t* p, size_t n, uint64_t offset);
  // Waits until every queued write is on the disk's side; their first error.
  Status Drain();
  // Drops what is still queued, unwritten (the file is being removed).
  void Abandon();
  // Bytes written past the page cache so far (complete after Drain).
  uint64_t direct_bytes() {
    std::lock_guard lock(mu_);
    return direct_bytes_;
  }

 private:
  struct Buffer {
    AlignedBytes data;  // kChunk bytes
  };
  DirectWriter(Env& env, UniqueFd direct, int fd, std::string path);
  // Queues the buffer being filled.
  Status Post();
  // Runs on the worker: the direct write of `n` bytes of `b`, ending with
  // the ordinary descriptor where the file system wrote short.
  void Run(std::shared_ptr<Buffer> b, size_t n, uint64_t offset);

  Env& env_;
  UniqueFd direct_;
  int fd_;
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t queued_ = 0;
  uint64_t direct_bytes_ = 0;
  bool abandoned_ = false;
  std::optional<Error> failed_;
  std::vector<std::shared_ptr<Buffer>> free_;  // written out, for the next writes
  // The receiving thread's: the buffer being filled, for the bytes from
  // `filling_at_` on, `filled_` of them so far.
  std::shared_ptr<Buffer> filling_;
  uint64_t filling_at_ = 0;
  size_t filled_ = 0;
  Worker worker_;  // last: joined first, while the members its tasks use live
};

}  // namespace lifeboat::replicate
