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
#include <functional>
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
#include "replicate/blocks.h"
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
  // What this source remembers of the large files it sent to this target;
  // with it, their changes go as in-place patches. Null: always by delta.
  BlockIndex* blocks = nullptr;
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
  std::atomic<uint64_t> files_patched{0};               // large files updated in place
  void Reset() {
    files_total = files_done = bytes_total = bytes_done = bytes_literal = files_patched = 0;
  }
};

struct SyncOptions {
  bool apply = true;    // send changes; false only reports the differences
  bool hashes = false;  // compare contents by SHA-256 (verify), not size and mtime
  Progress* progress = nullptr;
  // Source inode -> its known names, kept across syncs (hard links whose
  // other names lie outside the roots of a sync). Optional.
  std::map<uint64_t, std::set<std::string>>* links = nullptr;
  // Asked for each file the target lacks: true leaves it out of this pass
  // and adds its path to `deferred` (a file still being written, whose bytes
  // the target would otherwise receive twice). Optional.
  std::function<bool(const Entry&)> defer = nullptr;
  std::vector<std::string>* deferred = nullptr;
};

// An in-place update, planned before it is sent.
struct PatchPlan {
  FileBlocks base;  // the version at the target (size and mtime; no hashes)
  uint64_t size = 0;
  Meta meta;
  std::vector<uint64_t> hashes;                      // of the file as planned
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // offset, length: what differs from the base
  uint64_t changed = 0;
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
  // Sends bytes (whole frames) now, after what Flush sent.
  Status SendNow(std::string_view frames);
  struct Sent {
    size_t read = 0;      // 0 at the end of the file
    size_t repeated = 0;  // of them, sent as REPEAT
  };
  // Queues a DATA frame of up to `len` bytes (at most one frame's worth) of
  // `fd` at `off`, read straight into the frame (and fed to `hasher`). With
  // `repeats`, the runs of blocks that repeat earlier ones of the file go as
  // REPEAT instead, and the bytes around them as DATA.
  Result<Sent> QueueRead(int fd, uint64_t off, size_t len, const std::string& path, BlockHasher* hasher,
                         RepeatFinder* repeats);
  // Sends `n` bytes of `fd` at `off`, read into `bytes`, as a DATA frame
  // (the 17 bytes before `bytes` take its header) or, with `repeats`, as
  // QueueRead does; after what is queued.
  Result<Sent> SendRead(int fd, uint64_t off, uint8_t* bytes, size_t n, const std::string& path, BlockHasher* hasher,
                        RepeatFinder* repeats);
  // Feeds a read of `bytes` at `off` to `hasher`; with `repeats`, when it
  // holds runs of earlier blocks, queues it as QueueRepeats does (`queued_at`
  // as there) and returns what was sent.
  Result<std::optional<Sent>> HashAndRepeat(int fd, uint64_t off, std::span<const uint8_t> bytes,
                                            const std::string& path, BlockHasher* hasher, RepeatFinder* repeats,
                                            const size_t* queued_at);
  // Writes the header of a DATA frame of `n` bytes at `off` into the bytes
  // before `bytes`.
  static void PutDataHeader(uint8_t* bytes, uint64_t off, size_t n);
  // QueueRead's frames for a read of `bytes` at `off` holding `runs`: REPEAT
  // for each, DATA between. `queued_at`: where the read sits at the end of
  // the queue (a small read), else null (read into data_frame_).
  Sent QueueRepeats(uint64_t off, std::span<const uint8_t> bytes, const std::vector<RepeatFinder::Run>& runs,
                    const size_t* queued_at);
  // Queues `bytes` (of the file at `offset`), when any, as a DATA frame, and
  // empties it.
  void QueueLiteral(std::string& bytes, uint64_t offset, Progress* progress);
  // Opens a file of the source tree for reading, never through a symlink. An
  // invalid descriptor when it is gone or was replaced by a symlink (a later
  // event covers it).
  Result<UniqueFd> OpenSource(const std::string& path);
  Status RequestLists(const std::vector<Root>& roots, uint8_t flags);
  Status CollectLists(size_t count, std::map<std::string, Entry>& target);
  Status ScanSource(const std::vector<Root>& roots, bool hashes, std::map<std::string, Entry>& out);
  // Reads the target's chunk list answering the oldest DELTA_REQ in flight.
  Result<std::unordered_map<ChunkId, uint32_t, ChunkIdHash>> AwaitChunks();
  Status SendFile(const Entry& s, const std::unordered_map<ChunkId, uint32_t, ChunkIdHash>* chunks,
                  const SyncOptions& options);
  // The record of the version `t` of `s` the target holds, when `s` may go
  // as an in-place patch: the target takes them, holds the version this
  // source recorded (size and mtime), with one name, and this is no repair.
  std::optional<FileBlocks> PatchBase(const Entry& s, const Entry& t, const SyncOptions& options);
  // How a file goes.
  enum class How {
    kWhole,  // every byte
    kDelta,  // against the chunks the target cuts from its files (DELTA_REQ)
    kPatch,  // in place: the blocks that differ from the recorded version
    kMoved,  // rebuilt from blocks of the recorded version, wherever they moved
    // One of the three above, decided by PlanUpdate when the send reaches
    // the file (it reads the whole file: meanwhile the target works on the
    // files before it).
    kPlan,
  };
  // For a file whose recorded version `base` the target holds: a patch
  // (`plan` filled) when few blocks differ where they were; else moved
  // blocks when a sample finds most of them where they were or shifted by
  // the change of size (one insertion or deletion); else a delta. A sample
  // of blocks decides before the file is read whole for a patch, and that
  // read stops once more than a quarter of it differs.
  Result<How> PlanUpdate(const Entry& s, const FileBlocks& base, PatchPlan& plan);
  // Sends the planned runs as an in-place update, and records the new version.
  Status SendPatch(const Entry& s, PatchPlan& plan, const SyncOptions& options);
  // Sends `s` as BASE_BEGIN: in one read, each block of `base` found at its
  // place or shifted by the change of size goes as COPY_BASE, the rest as
  // DATA; records the new version.
  Status SendMoved(const Entry& s, const FileBlocks& base, const SyncOptions& options);
  Status AwaitCommit(uint64_t seq);
  // PickBasis over the regular files beside `path` in the source tree (the
  // target has them too, as a rule: they are in sync). Empty when none.
  std::string BasisFor(const std::string& path, uint64_t size);

  LinkConfig config_;
  std::unique_ptr<Conn> conn_;
  UniqueFd root_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frame> inbox_;         // guarded by mu_
  std::optional<Error> failed_;     // guarded by mu_
  std::string out_;                 // frames queued for sending
  std::string data_frame_;          // a large DATA frame, read in place (QueueRead)
  std::optional<Error> send_failed_;  // a send that failed inside Queue
  uint32_t next_id_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t committed_ = 0;
  bool patches_ = false;  // the target takes PATCH_BEGIN (it said so in WELCOME)
  bool basis_ = false;    // the target takes DELTA_REQ_BASIS
  bool moves_ = false;    // the target takes BASE_BEGIN
  bool repeats_ = false;  // the target takes REPEAT
};

// A file beside another: its name and size.
struct Sibling {
  std::string name;
  uint64_t size = 0;
};
// For a new file named `name` of `size` bytes (the target has none at its
// path), the sibling most likely to be its old version, to take a delta
// from: one whose name, leading dots and '#' aside, is a prefix of the new
// one's or the other way round ("f" for "f.tmp", ".f.swp", ".#f" or "f.new";
// "f.bak" for "f"), the longest such name, then the nearest in size; never
// an empty one or `name` itself. Nullopt when none is.
std::optional<std::string> PickBasis(std::string_view name, uint64_t size, const std::vector<Sibling>& siblings);
// Whether `sibling`'s name could be PickBasis's choice for `name`.
bool BasisCandidate(std::string_view name, std::string_view sibling);

// Sorts roots and drops the ones inside a recursive root.
std::vector<Root> NormalizeRoots(std::vector<Root> roots);
// Adds the parent directory of every root (shallow), normalized.
std::vector<Root> WithParents(std::vector<Root> roots);

}  // namespace lifeboat::replicate
