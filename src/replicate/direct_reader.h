// Reads a large file that is sent whole past the page cache (O_DIRECT), a
// few frames ahead, from threads of its own, straight into buffers that
// keep room for the DATA frame's header before the bytes.
//
// Why: on the machines measured, the kernel's copy out of the page cache was
// most of the sending thread's time in a page-cache read of a large cold
// file. A direct read lands in our buffer from the disk; the thread that
// sends only waits for it when the disk is behind (docs/ARCHITECTURE.md,
// "Replication").
//
// A file written meanwhile reads as it does through the page cache: the
// kernel writes its dirty pages out before a direct read of them, and the
// sender resends a file that changed while it was sent. Where the file
// system refuses a direct read, the reader reads through the file's
// ordinary descriptor instead.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/fd.h"
#include "core/result.h"
#include "core/worker.h"
#include "replicate/aligned.h"

namespace lifeboat::replicate {

class DirectReader {
 public:
  // The alignment of offsets, lengths and buffers of direct reads, and the
  // room kept before each piece's bytes (at least the frame header's size).
  static constexpr size_t kAlign = 4096;
  // Reads queued ahead of the piece being sent, and the threads that do
  // them: with two reads in flight the 4 GiB benchmark file's sync took
  // 4-17 % less time than with one, in four probe pairs on this project's
  // VMs (bench/RESULTS.md, "Large new files read and written past the page
  // cache").
  static constexpr size_t kAhead = 8;
  static constexpr size_t kThreads = 2;

  struct Piece {
    uint64_t offset = 0;
    uint8_t* bytes = nullptr;  // kAlign bytes before it are the caller's to use
    size_t size = 0;           // short or 0 where the file ended (it shrank)
  };

  // Reads the ranges `extents` ((offset, length), in order, offsets on
  // kAlign) of the open file `fd` in pieces of at most `piece` bytes (a
  // multiple of kAlign). nullptr when it cannot be read past the page cache
  // (not reopened with O_DIRECT, an offset off kAlign): the caller reads as
  // before. `path` names the file in errors.
  static std::unique_ptr<DirectReader> Open(int fd, const std::vector<std::pair<uint64_t, uint64_t>>& extents,
                                            size_t piece, std::string path);
  // Waits for the reads in flight (their bytes are dropped).
  ~DirectReader();
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  // The next piece, in order (its offset: the next of the extents, cut into
  // pieces); valid until the next call. Its read's error, if it failed.
  // Not called past the last piece.
  Result<Piece> Next();
  // Reads not started yet go through the page cache: the caller reads the
  // file back (a repeat's earlier bytes), and finds them there.
  void ReadBuffered() {
    std::lock_guard lock(mu_);
    buffered_ = true;
  }
  // Bytes read past the page cache so far.
  uint64_t direct_bytes() {
    std::lock_guard lock(mu_);
    return direct_bytes_;
  }

 private:
  struct Slot {
    AlignedBytes mem;  // kAlign + piece bytes
    uint64_t offset = 0;
    size_t want = 0;
    size_t got = 0;
    std::optional<Error> error;
    bool done = false;
  };
  DirectReader(UniqueFd direct, int fd, std::vector<std::pair<uint64_t, size_t>> pieces, std::string path);
  // Queues the next piece's read, when one is left and a slot is free.
  bool Post();
  // Runs on the worker.
  void Read(Slot& s);

  UniqueFd direct_;
  int fd_;
  std::vector<std::pair<uint64_t, size_t>> pieces_;  // (offset, bytes), in order
  std::string path_;
  std::vector<Slot> slots_;  // pieces_[i] reads into slots_[i % kAhead]
  size_t next_ = 0;          // the piece Next returns next
  size_t posted_ = 0;        // reads posted: pieces_[0..posted_)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_: queued reads are skipped
  bool buffered_ = false;  // guarded by mu_: reads go through the page cache (ReadBuffered)
  uint64_t direct_bytes_ = 0;
  Worker workers_[kThreads];  // last: joined first, while the members their tasks use live
};

}  // namespace lifeboat::replicate
