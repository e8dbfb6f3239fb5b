// What the source remembers of the large files it sent, so that the next
// change of one travels as an in-place patch (docs/format/replication.md,
// "In-place updates"): for each file of at least kPatchMinSize, the size and
// mtime of the version the target was sent and a hash of every 4 KiB block
// of it. When the target's listing shows exactly that size and mtime, the
// source hashes its current file block by block (from the page cache; no
// chunking, and nothing read at the target), and sends only the blocks whose
// hash moved.
//
// One BlockIndex per volume and target (targets may hold different
// versions). It lives in a directory of the agent's data dir, a file per
// large file; a missing, stale or damaged record only costs the usual delta
// (the record is used only when the target's size and mtime match it), so
// records are written without fsync.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace lifeboat::replicate {

inline constexpr uint32_t kBlockSize = 4096;
// Files at least this large are updated in place when the target holds the
// version the source last sent; smaller ones are rebuilt under a temporary
// name, which costs little and keeps every reader's view whole.
inline constexpr uint64_t kPatchMinSize = 8u << 20;

struct FileBlocks {
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  std::vector<uint64_t> hashes;  // XXH3-64 of each block; the last one may be short
  bool operator==(const FileBlocks&) const = default;
};

// The block hashes of a file whose bytes stream by in offset order, with
// gaps (holes) read as zeros.
class BlockHasher {
 public:
  explicit BlockHasher(uint64_t size);
  void Add(uint64_t offset, std::span<const uint8_t> bytes);
  // Add for a block whose BlockHash is known: taken as is where the block is
  // one of this file's (whole, or its last), hashed again elsewhere.
  void AddBlock(uint64_t offset, std::span<const uint8_t> block, uint64_t hash);
  // The hashes of all blocks of `size` bytes; what was never added is zeros.
  std::vector<uint64_t> Finish();

 private:
  void ZerosTo(uint64_t offset);
  uint64_t size_, at_ = 0;  // bytes hashed or buffered so far
  std::vector<uint8_t> partial_;
  std::vector<uint64_t> hashes_;
};

// The hash of one block (a file's last block may be short).
uint64_t BlockHash(std::span<const uint8_t> block);
// The digest of a run of blocks (COPY_BASE): the XXH3-64 of their hashes,
// each as 8 big-endian bytes.
uint64_t RunDigest(std::span<const uint64_t> hashes);

// Blocks of a file being sent that repeat blocks sent earlier in the same file
// (docs/format/replication.md, "Repeated blocks"): a disk image's copies of
// one block, a file of written zeros. The sender finds them by block hash and
// compares their bytes with the earlier ones before it names them, so a hash
// collision, chance or crafted, costs only a read. It remembers one block per
// kStride of the file and names runs of at least kMinRun: a shorter REPEAT
// would cost a read at each end for little. One finder per file sent.
class RepeatFinder {
 public:
  // A run of whole blocks at `offset` equal to the bytes at `from`, which
  // end at or before `offset`.
  struct Run {
    uint64_t offset = 0, from = 0, size = 0;
    bool operator==(const Run&) const = default;
  };
  static constexpr uint64_t kStride = 64 << 10;
  static constexpr uint64_t kMinRun = 64 << 10;
  // At most this many blocks are remembered (those of a file's first 64 GiB;
  // up to 32 bytes each): repeats of later ones are sent.
  static constexpr size_t kMaxRemembered = 1u << 20;

  // Scans `bytes`, read from the file `fd` at `offset` (the file is read in
  // order): returns the runs of its whole blocks, at block-aligned offsets of
  // the file, that repeat earlier ones (reading those from `fd` to compare),
  // and remembers the others at offsets that are multiples of kStride. Bytes
  // before the first or after the last whole block are neither.
  Result<std::vector<Run>> Scan(int fd, uint64_t offset, std::span<const uint8_t> bytes);

 private:
  // The offset of the first block with hash `h` seen, if any.
  std::optional<uint64_t> Find(uint64_t h) const;
  void Remember(uint64_t h, uint64_t offset);
  // An open-addressing table (linear probing, at most half full): block
  // hash -> offset of the first block with it, plus one (0: an empty slot).
  // Cheaper than a node per block for files of unique blocks, the common case.
  std::vector<std::pair<uint64_t, uint64_t>> slots_;
  size_t used_ = 0;
  std::vector<uint8_t> earlier_;
};

class BlockIndex {
 public:
  // `dir` empty: kept in memory only, for the life of this object.
  explicit BlockIndex(std::string dir);
  std::optional<FileBlocks> Get(const std::string& path);
  // Best effort: an error is logged, and costs the next change a full delta.
  void Put(const std::string& path, const FileBlocks& blocks);
  void Drop(const std::string& path);
  // Forgets every file not in `live` (after a full pass). Returns how many.
  size_t Prune(const std::set<std::string>& live);
  const std::string& dir() const { return dir_; }

 private:
  std::string FileOf(const std::string& path) const;
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, FileBlocks> mem_;  // when dir_ is empty
};

// The record's bytes (for tests and the fuzzer): magic, path, size, mtime,
// block size, hashes, and an XXH3-64 of all of it. Decode refuses anything
// else (DataLoss) and a record of another path.
std::string EncodeBlocks(const std::string& path, const FileBlocks& b);
Result<FileBlocks> DecodeBlocks(std::string_view bytes, const std::string& path);
// The path a record names, without checking the rest (for Prune).
std::optional<std::string> PathOfRecord(std::string_view bytes);

}  // namespace lifeboat::replicate
