// The sending end: a Link is one authenticated session with a target, and
// Link::Sync compares parts of the tree (listing both sides at once) and, when
// asked, sends what makes the target equal: deletions, directories, files
// (whole, or as a delta against the chunks the target already has),
// symlinks, hard links, metadata, then a commit that the target acknowledges
// once durable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/address.h"
#include "core/fd.h"
#include "core/result.h"
#include "core/units.h"
#include "replicate/receiver.h"
#include "replicate/transport.h"
#include "replicate/wire.h"

namespace lifeboat::replicate {

struct LinkConfig {
  std::string volume;
  std::string root;    // the source tree
  std::string region;  // this region, sent in HELLO
  uint64_t epoch = 1;
  Address target;
  PskKey key;
  std::optional<Rate> bandwidth;
  std::chrono::milliseconds connect_timeout{5000};
};

// A part of the tree to compare: the entry at `path`, and everything below it
// when `recursive`.
struct Root {
  std::string path;
  bool recursive = false;
};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const;
};

struct Difference {
  std::string path;
  std::string kind;    // missing, extra, type, content, metadata, link
  std::string detail;  // what differs, for people
};

// Counters of a sync, readable from other threads while it runs.
struct Progress {
  std::atomic<uint64_t> files_total{0}, files_done{0};
  std::atomic<uint64_t> bytes_total{0}, bytes_done{0};  // file bytes to bring over / done
  std::atomic<uint64_t> bytes_literal{0};               // sent as data (not reused at the target)
  void Reset() {
    files_total = files_done = bytes_total = bytes_done = bytes_literal = 0;
  }
};

struct SyncOptions {
  bool apply = true;    // send changes; false only reports the differences
  bool hashes = false;  // compare contents by SHA-256 (verify), not size and mtime
  Progress* progress = nullptr;
  // Source inode -> its known names, kept across syncs (hard links whose
  // other names lie outside the roots of a sync). Optional.
  std::map<uint64_t, std::set<std::string>>* links = nullptr;
};

class Link {
 public:
  // Connects, authenticates and opens a session (HELLO/WELCOME). The target's
  // refusal comes back as its error (wrong source, busy, ...).
  static Result<std::unique_ptr<Link>> Open(const LinkConfig& config, uint8_t mode);
  ~Link();

  // Applies `renames` (from, to) at the target first, then compares `roots`.
  // Returns the differences found (before they were repaired, when applying).
  Result<std::vector<Difference>> Sync(const std::vector<std::pair<std::string, std::string>>& renames,
                                       std::vector<Root> roots, const SyncOptions& options);

  uint64_t bytes_sent() const { return conn_->bytes_sent(); }
  uint64_t bytes_received() const { return conn_->bytes_received(); }
  void Shutdown() { conn_->Shutdown(); }

 private:
  Link(LinkConfig config, std::unique_ptr<Conn> conn, UniqueFd root);
  void ReadLoop();
  Result<Frame> Next();
  void Queue(std::string frame);
  Status Flush();
  Status RequestLists(const std::vector<Root>& roots, uint8_t flags);
  Status CollectLists(size_t count, std::map<std::string, Entry>& target);
  Status ScanSource(const std::vector<Root>& roots, bool hashes, std::map<std::string, Entry>& out);
  // Reads the target's chunk list answering the oldest DELTA_REQ in flight.
  Result<std::unordered_map<ChunkId, uint32_t, ChunkIdHash>> AwaitChunks();
  Status SendFile(const Entry& s, const std::unordered_map<ChunkId, uint32_t, ChunkIdHash>* chunks,
                  const SyncOptions& options);
  Status AwaitCommit(uint64_t seq);

  LinkConfig config_;
  std::unique_ptr<Conn> conn_;
  UniqueFd root_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frame> inbox_;         // guarded by mu_
  std::optional<Error> failed_;     // guarded by mu_
  std::string out_;                 // frames queued for sending
  std::optional<Error> send_failed_;  // a send that failed inside Queue
  uint32_t next_id_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t committed_ = 0;
};

// Sorts roots and drops the ones inside a recursive root.
std::vector<Root> NormalizeRoots(std::vector<Root> roots);
// Adds the parent directory of every root (shallow), normalized.
std::vector<Root> WithParents(std::vector<Root> roots);

}  // namespace lifeboat::replicate
