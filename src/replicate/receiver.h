// The receiving end of a volume: applies a sender's frames to the volume
// root, crash-safely. A file is written to a temporary name next to its final
// one (".lifeboat~<hash of the path>.part"), then made durable and renamed
// into place in a group commit (fsync or syncfs, rename, fsync of the
// directories), so no final name ever shows a partial file, and COMMITTED is
// only sent once everything before it survives a crash. A partial file left
// by a crash is kept and offered as a source of chunks when the same path is
// sent again. (Temporary files sit in the file's own directory rather than in
// one staging directory: ext4 creates files in one crowded directory up to 8
// times slower.)
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/env.h"
#include "core/fd.h"
#include "core/result.h"
#include "replicate/direct_writer.h"
#include "replicate/journal.h"
#include "replicate/transport.h"
#include "fstree/tree.h"
#include "replicate/wire.h"

namespace lifeboat::replicate {

struct ReceiverStats {
  std::atomic<uint64_t> files{0};         // files and symlinks committed
  std::atomic<uint64_t> bytes_written{0};  // received as DATA
  std::atomic<uint64_t> bytes_copied{0};   // taken from chunks already here, or repeated within a file
  std::atomic<uint64_t> bytes_direct{0};   // of large new files, written past the page cache (DirectWriter)
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> sessions{0};
  std::atomic<int64_t> last_commit_unix_ms{0};
  // Connections closed at once: over the limits below, or no thread to serve them.
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> accept_errors{0};      // accept(2) failed (EMFILE, ENOBUFS, ...); retried with backoff
  std::atomic<uint64_t> handshakes_failed{0};  // wrong key, not TLS, or nothing sent in time
  std::atomic<uint64_t> leftovers_removed{0};  // temporary files a killed receiver left, removed at start
  std::atomic<uint64_t> patches{0};            // large files updated in place (journaled)
  std::atomic<uint64_t> moves{0};              // large files rebuilt from blocks of their old version (BASE_BEGIN)
  std::atomic<uint64_t> journals_recovered{0};  // sealed journals a killed receiver left, applied at start
  std::atomic<bool> ready{false};  // recovered (journals applied, leftovers removed) and accepting
};

// Completed files wait at temporary names until this many files or bytes of
// them are pending; then they land (made durable, then renamed to their
// names) on a thread of their own while the next batch is received, so that
// the disk's flush overlaps the receiving. One batch lands at a time.
struct LandingBatch {
  size_t files = 1000;
  uint64_t bytes = 256u << 20;
};

// Applies the frames of one session. Replies go through `reply`; every change
// to the volume goes through `env`. Not thread-safe: called from one thread,
// which hands each full batch of completed files to a thread of its own to
// land (LandingBatch).
class Session {
 public:
  using ReplyFn = std::function<Status(std::string frame)>;
  static Result<std::unique_ptr<Session>> Open(const std::string& root, ReplyFn reply, ReceiverStats* stats,
                                               bool read_only, Env& env, LandingBatch batch = {});
  ~Session();
  // Applies one frame. Errors end the session: InvalidArgument for a
  // malformed or out-of-order frame or a bad path, PermissionDenied for a
  // path through a symlink, ResourceExhausted for a full disk, ...
  Status Handle(const Frame& f);
  // Makes every completed file durable and visible (group commit), and the
  // directories whose entries changed since the last commit durable.
  Status Commit();
  // Removes the partial files of this session (they only save resending; a
  // full disk needs the room more).
  void DropPartials();
  // Paths whose sealed journal could not be applied (a full disk, an I/O
  // error): the file may hold a mix until it is, so the receiver applies
  // them before the next writing session (Receiver::ServeSession).
  std::vector<std::string> TakeUnapplied() { return std::move(unapplied_); }

 private:
  struct Pending {
    std::string temp;  // temporary name, in the directory of `path`
    std::string path;
    bool symlink = false;
  };
  struct ChunkSource {
    int src;  // index into DeltaSource::fds
    uint64_t offset;
    uint32_t size;
  };
  struct IdHash {
    size_t operator()(const ChunkId& id) const;
  };
  struct DeltaSource {
    std::vector<UniqueFd> fds;
    std::vector<std::pair<int64_t, int64_t>> stamps;  // per fd: size, mtime (ns) when indexed
    std::string prev;  // temporary name of a crashed partial (in the file's directory), removed afterwards
    std::unordered_map<ChunkId, ChunkSource, IdHash> chunks;
  };
  struct OpenFile {
    std::string path, temp;
    UniqueFd dir, fd;
    Meta meta;
    uint64_t size = 0;
    uint64_t end = 0;  // the end of the furthest write: ftruncate only when it is not `size`
    std::unique_ptr<DeltaSource> delta;
    std::unique_ptr<JournalWriter> journal;  // an in-place update (PATCH_BEGIN), not a new file
    UniqueFd base;           // BASE_BEGIN: the version COPY_BASE reads from
    uint64_t base_size = 0;
    std::unique_ptr<DirectWriter> direct;  // a large new file's writes past the page cache; after `fd`
  };

  Session(UniqueFd root, ReplyFn reply, ReceiverStats* stats, bool read_only, Env& env, LandingBatch batch);
  Status HandleList(Reader& r);
  Status HandleDeltaReq(Reader& r, Type type);
  Status HandleFileBegin(Reader& r);
  Status HandlePatchBegin(Reader& r);
  Status HandleBaseBegin(Reader& r);
  struct OnBase {
    std::unique_ptr<OpenFile> file;
    ParentRef parent;
  };
  // PATCH_BEGIN's and BASE_BEGIN's common part: the frame read, and the file
  // at its path checked to be the base it names (a regular file with one
  // name, of that size and mtime): FailedPrecondition otherwise.
  Result<OnBase> BeginOnBase(Reader& r, Type type);
  // FILE_BEGIN's and BASE_BEGIN's common part: a temporary file to write.
  Status BeginNewFile(std::unique_ptr<OpenFile> f);
  Status FinishPatch(std::unique_ptr<OpenFile> f);
  Status HandleData(Reader& r);
  Status HandleCopy(Reader& r);
  Status HandleCopyBase(Reader& r);
  Status HandleRepeat(Reader& r);
  Status HandleFileEnd();
  // Waits for `f`'s writes past the page cache, counts them, and sends the
  // rest of the file through the page cache.
  Status EndDirect(OpenFile& f);
  Status HandleSymlink(Reader& r);
  Status HandleMkdir(Reader& r);
  Status HandleHardlink(Reader& r);
  Status HandleDelete(Reader& r);
  Status HandleRename(Reader& r);
  Status HandleSetMeta(Reader& r);
  // The parent of `path`, created (0755, owned by us) where missing.
  Result<ParentRef> Parent(const std::string& path);
  // Lands what is pending (or landing) at `path`, before a frame reads or
  // replaces what is there.
  Status CommitIfPending(const std::string& path);
  // Commit's first half: the completed files durable, then at their final
  // names; their directories are left for the next Commit. What a DELETE,
  // RENAME, HARDLINK or SET_META needs first (order, not durability: a
  // crash before the next COMMIT is resent by the sender's next full pass).
  // Waits for the batch landing in the background first.
  Status Land();
  // Land() of the pending batch on a thread of its own; returns at once
  // (after the previous batch has landed). Without a thread to spare, the
  // batch lands on the calling thread.
  Status LandInBackground();
  // Waits for the batch landing in the background, if any: its error, or
  // its directories added to dirty_dirs_.
  Status AwaitLanding();
  // Makes `batch` durable and renames it into place; adds the directories
  // whose entries changed to `dirs`. Runs on either thread: it touches no
  // member but the thread-safe ones (root_, env_, stats_).
  Status LandBatch(const std::vector<Pending>& batch, std::set<std::string>& dirs);
  Status WriteAt(const uint8_t* p, size_t n, uint64_t offset);

  UniqueFd root_;
  ReplyFn reply_;
  ReceiverStats* stats_;
  bool read_only_;
  Env& env_;
  std::unique_ptr<OpenFile> file_;
  std::map<std::string, std::unique_ptr<DeltaSource>> deltas_;  // by path, from DELTA_REQ to FILE_END
  std::vector<Pending> pending_;
  std::set<std::string> pending_paths_;
  std::set<std::string> dirty_dirs_;  // directories whose entries changed since the last commit
  uint64_t pending_bytes_ = 0;
  std::vector<std::string> unapplied_;
  LandingBatch batch_;
  // The batch landing in the background: its files and their paths, and
  // the directories it changes (its thread's until AwaitLanding).
  std::future<Status> landing_;
  std::vector<Pending> landing_files_;
  std::set<std::string> landing_paths_;
  std::set<std::string> landing_dirs_;
};

// Features a receiver announces in WELCOME (a u32; older receivers send none).
inline constexpr uint32_t kFeaturePatch = 1;  // PATCH_BEGIN: in-place updates through a journal
inline constexpr uint32_t kFeatureBasis = 2;  // DELTA_REQ_BASIS: a new file's delta against another file
inline constexpr uint32_t kFeatureBase = 4;   // BASE_BEGIN, COPY_BASE: a new version from the old one's blocks
inline constexpr uint32_t kFeatureRepeat = 8;  // REPEAT: blocks of a new file copied from earlier in it

// Threads that list a tree at either side (fstree::WalkParallel). More than
// the cores: on a cold cache they wait on the disk, their reads overlapping.
inline constexpr int kScanThreads = 4;

// The temporary name for `path` (in its directory) with `suffix` (".part",
// ".prev", ".link", ".hl", ".journal"): stable, so that a crashed partial is found again.
std::string TempName(const std::string& path, const char* suffix);

// Serves connections for one volume: at most one writing session at a time
// (a second gets "busy"), a bounded number of read-only ones (verify).
//
// Each connection runs on a thread of its own, joined as soon as it ends.
// Connections are bounded in total (max_connections) and, while they have not
// yet proved the key (TLS handshake and HELLO within handshake_timeout), per
// peer address (max_unauthenticated_per_address): a peer without the key can
// hold a few threads for a few seconds, never all of them. Thread-safe.
class Receiver {
 public:
  struct Config {
    std::string volume;
    std::string root;
    PskKey key;
    // Decides whether a sender may open a session; its error is sent back.
    std::function<Status(const Hello&)> admit;
    size_t max_connections = 32;
    size_t max_unauthenticated_per_address = 4;
    std::chrono::milliseconds handshake_timeout{5000};
    // Every change to the volume goes through it (tests inject faults).
    Env* env = &Env::Default();
    // Files landed per batch (tests make it small).
    LandingBatch batch{};
  };
  explicit Receiver(Config config);
  ~Receiver();
  // Serves `listener` until Stop(). Runs on the calling thread; each session
  // runs on a thread of its own. Accept errors (out of descriptors, memory)
  // are counted and retried with backoff; only Stop() ends the loop.
  void Run(Listener& listener);
  void Stop();

  ReceiverStats& stats() { return stats_; }
  // The region of the current writing session, or "".
  std::string connected_source() const;
  // Connections being served now (for tests and status).
  size_t active_connections() const;
  // Threads not joined yet: the active ones and at most those that ended since
  // the last accept. Each holds a stack until joined.
  size_t unjoined_threads() const;

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void ServeOne(UniqueFd fd, std::string address);
  Status ServeSession(Conn& conn, const std::function<void()>& authenticated);
  void JoinFinished();  // joins workers whose connection ended; needs mu_ not held
  // Applies the sealed journals a killed receiver (or a failed apply) left and
  // removes every other temporary file. An error when a journal could not be
  // applied: its file may hold a mix until it is, so no writer is admitted.
  Status Recover();
  // Gives back one of `address`'s unauthenticated slots; needs mu_ held.
  void ReleaseSlotLocked(const std::string& address);

  Config config_;
  ReceiverStats stats_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Conn>> conns_;        // guarded by mu_
  std::list<std::unique_ptr<Worker>> workers_;      // guarded by mu_
  std::map<std::string, size_t> unauthenticated_;  // peer address -> connections not yet past HELLO; guarded by mu_
  std::string source_;                              // guarded by mu_
  bool recover_ = false;  // a sealed journal is not applied yet: recover before the next writer; guarded by mu_
  bool writer_busy_ = false;                        // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> last_handshake_warning_ms_{0};
};

}  // namespace lifeboat::replicate
