// A backup repository on a storage backend: config, keys, packs of blobs,
// index files, snapshots and locks (docs/format/repository.md).
//
// Writers never modify an object: packs, index files and snapshots are
// named by the SHA-256 of their bytes and written once, in that order, so a
// writer killed at any moment leaves only objects nobody references yet.
// Blobs of packs that no index lists yet are adopted by the next writer
// (AdoptUnindexedPacks), so an interrupted backup's uploads are reused.
// Several writers may add to one repository at once (shared locks); prune
// takes the exclusive lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "repo/format.h"
#include "storage/storage.h"

namespace lifeboat::repo {

struct IdHash {
  size_t operator()(const Id& id) const {
    size_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
  }
};

std::string PackName(const Id& pack);  // "data/ab/ab12..."

// Where a blob is stored.
struct BlobLocation {
  Id pack{};
  PackEntry entry;
};

inline constexpr size_t kPackTargetSize = 16 << 20;

// Blobs gathered into one pack before it is uploaded. One per writing thread.
struct Packer {
  std::string data;
  std::vector<PackEntry> entries;
  uint64_t raw_bytes = 0;
  bool empty() const { return entries.empty(); }
};

struct CheckReport {
  std::vector<std::string> errors;    // damage: each names the object and what is wrong
  std::vector<std::string> warnings;  // harmless leftovers (unindexed packs, stale locks)
  uint64_t snapshots = 0, packs = 0, blobs = 0, trees = 0, bytes_read = 0;
};

struct PruneReport {
  uint64_t packs_deleted = 0, packs_repacked = 0, packs_kept = 0;
  uint64_t bytes_freed = 0, blobs_removed = 0, index_files_replaced = 0;
  uint64_t leftovers_removed = 0;  // temporary files of killed writers
};

struct RepairReport {
  uint64_t packs_indexed = 0, blobs_indexed = 0, index_files_replaced = 0;
  std::vector<std::string> unreadable_packs;  // left in place, listed in no index
  std::vector<std::string> still_missing;     // chunks backups use that no pack holds
};

struct LockOptions {
  std::chrono::seconds stale_after{1800};
  std::chrono::seconds refresh_every{300};
};

class Repository;

// A held lock, refreshed in the background; released when destroyed.
class Lock {
 public:
  Lock() = default;
  ~Lock();
  Lock(Lock&&) = delete;
  Lock& operator=(Lock&&) = delete;

 private:
  friend class Repository;
  Repository* repo_ = nullptr;
  std::string name_;
  LockInfo info_;
  std::thread refresher_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

class Repository {
 public:
  // Creates a repository: a key sealed under the password (or none when
  // `password` is empty and `encrypted` is false), then the config.
  // FailedPrecondition when a repository is already there. `kdf` sets the
  // cost of deriving the key from the password (tests lower it).
  static Status Init(storage::Backend& backend, bool encrypted, const std::string& password,
                     chunk::ChunkParams chunker, const ScryptParams& kdf = {});

  // Opens it: reads the config and finds the key the password opens.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<storage::Backend> backend,
                                                  const std::string& password);

  storage::Backend& backend() { return *backend_; }
  const Config& config() const { return config_; }
  const Keys& keys() const { return keys_; }
  bool read_only() const { return backend_->read_only(); }

  // --- locks
  Result<std::unique_ptr<Lock>> AcquireLock(bool exclusive, const std::string& operation, LockOptions options = {});

  // --- index
  // Loads every index file not loaded yet (so a second call reads only what
  // other writers added since). Damaged ones are skipped and listed in
  // `errors` (when given) instead of failing.
  Status LoadIndex(std::vector<std::string>* errors = nullptr);
  std::optional<BlobLocation> Find(const Id& id) const;
  bool Has(const Id& id) const { return Find(id).has_value(); }
  size_t blob_count() const;
  // True (once) when `id` is neither stored nor claimed: the caller saves it.
  bool Claim(const Id& id);
  // Lists data/ and indexes packs no index file lists (left by a writer
  // that was killed), so their blobs are reused. Returns how many.
  Result<size_t> AdoptUnindexedPacks();

  // --- blobs
  // Compresses (data blobs: level `level`; trees always), seals and adds
  // the blob to the packer; uploads the packer when it is full.
  Status AddBlob(Packer& packer, BlobType type, const Id& id, std::string_view data, int level = 1);
  // Uploads the pack (if any blobs) and indexes it.
  Status FlushPacker(Packer& packer);
  // Writes an index file for the packs uploaded since the last call.
  Status FlushIndex();
  // The blob's plaintext, checked against its id. DataLoss names the pack.
  Result<std::string> LoadBlob(const Id& id);
  Result<std::string> ReadBlob(const BlobLocation& where, std::string_view stored);
  // Bytes stored (after compression and sealing) by this process so far.
  uint64_t stored_bytes() const { return stored_bytes_; }

  Result<Tree> LoadTree(const Id& id);
  // Saves a tree blob (deduplicated like any other) and returns its id.
  Result<Id> SaveTree(Packer& packer, const Tree& tree);

  // --- snapshots
  Result<std::string> SaveSnapshot(const Snapshot& s);
  // All snapshots, oldest first; ones that cannot be read are listed in
  // `errors` (when given).
  Result<std::vector<Snapshot>> ListSnapshots(std::vector<std::string>* errors = nullptr);
  // By id or unique id prefix (at least 4 hex digits).
  Result<Snapshot> FindSnapshot(const std::string& id_or_prefix);
  Status DeleteSnapshot(const std::string& id);

  // --- maintenance
  Result<CheckReport> Check(bool read_data, const std::function<void(const std::string&)>& progress = {});
  // Removes blobs no snapshot uses: deletes packs with no used blob and
  // repacks packs where unused bytes exceed `repack_threshold` of the pack.
  Result<PruneReport> Prune(double repack_threshold = 0.2);

  // Rebuilds the index from the packs' own headers, for a lost or damaged
  // index: writes index files for every readable pack, then removes the old
  // ones. Needs the exclusive lock. Unreadable packs are listed, not deleted.
  Result<RepairReport> Repair(const std::function<void(const std::string&)>& progress = {});

  // Sealed small objects (index, snapshots, locks) named by SHA-256.
  Result<std::string> SaveObject(const std::string& dir, std::string_view aad, std::string_view plain);
  Result<std::string> LoadObject(const std::string& name, std::string_view aad);

  // Reads a pack's header (the blobs in it). `size` is the pack's size.
  Result<std::vector<PackEntry>> ReadPackHeader(const std::string& name, uint64_t size);

 private:
  friend class Lock;
  Repository(std::unique_ptr<storage::Backend> backend, Config config, Keys keys)
      : backend_(std::move(backend)), config_(std::move(config)), keys_(keys) {}
  void AddToIndex(const Id& pack, const std::vector<PackEntry>& entries, bool pending);
  // Seals the packer's header, uploads the pack and returns its name; indexes nothing.
  Result<Id> UploadPack(Packer& packer);
  Status WriteIndexFiles(const std::vector<IndexPack>& packs, std::vector<std::string>* written = nullptr);
  // Writes index files for `packs` (their names into `written`), then deletes
  // the files of `old_index` that are not among them. Returns how many.
  Result<uint64_t> ReplaceIndex(const std::vector<IndexPack>& packs, const std::vector<storage::ObjectInfo>& old_index,
                                std::vector<std::string>& written);

  std::unique_ptr<storage::Backend> backend_;
  Config config_;
  Keys keys_;

  mutable std::shared_mutex mu_;
  std::unordered_map<Id, BlobLocation, IdHash> index_;
  std::unordered_map<Id, size_t, IdHash> packs_;  // pack -> blob count, for every indexed pack
  std::unordered_map<Id, bool, IdHash> claimed_;
  std::vector<IndexPack> pending_;  // uploaded, not yet in an index file
  std::unordered_set<std::string> loaded_index_;  // index files already read into index_
  std::mutex index_write_mu_;
  std::atomic<uint64_t> stored_bytes_{0};
};

}  // namespace lifeboat::repo
