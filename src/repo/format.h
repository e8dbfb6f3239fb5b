// The repository's objects and their byte layouts (docs/format/repository.md
// is the reference). Every Decode* takes untrusted bytes: bounded, never
// reads past its input, and is fuzzed (tests/fuzz/repo_fuzz.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chunk/fastcdc.h"
#include "core/result.h"
#include "repo/crypto.h"

namespace lifeboat::repo {

inline constexpr int kFormatVersion = 1;
inline constexpr uint32_t kMaxBlobSize = 64 << 20;  // a chunk is at most a few MiB; trees are bounded too
inline constexpr uint32_t kMaxHeaderBlobs = 1 << 20;

enum class BlobType : uint8_t { kData = 1, kTree = 2 };
inline constexpr uint8_t kFlagZstd = 1;

// One blob in a pack: `length` stored bytes at `offset` (sealed, and zstd
// compressed before sealing when flags has kFlagZstd), `raw_length` bytes
// once opened and decompressed.
struct PackEntry {
  BlobType type = BlobType::kData;
  uint8_t flags = 0;
  uint32_t offset = 0, length = 0, raw_length = 0;
  Id id{};
};

// The plaintext pack header lists the blobs in order; offsets follow from
// the lengths. Decode checks that they fit in `data_size` bytes.
std::string EncodePackHeader(const std::vector<PackEntry>& blobs);
Result<std::vector<PackEntry>> DecodePackHeader(std::string_view plain, uint64_t data_size);

struct IndexPack {
  Id pack{};
  std::vector<PackEntry> blobs;
};
std::string EncodeIndex(const std::vector<IndexPack>& packs);
Result<std::vector<IndexPack>> DecodeIndex(std::string_view plain);

enum class NodeType : uint8_t { kFile = 1, kDir = 2, kSymlink = 3 };

// One entry of a directory, with what restore needs to recreate it.
struct Node {
  std::string name;
  NodeType type = NodeType::kFile;
  uint32_t mode = 0, uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;
  uint64_t inode = 0;  // with nlink > 1: files with the same inode are hard links
  uint32_t nlink = 1;
  int64_t ctime_sec = 0;  // change detection for the next backup
  uint32_t ctime_nsec = 0;
  std::string link;          // symlink target
  Id subtree{};              // directory
  std::vector<Id> content;   // file: its chunks in order
};
struct Tree {
  std::vector<Node> nodes;  // sorted by name, names unique
};
std::string EncodeTree(const Tree& tree);
// Refuses names that are empty, ".", "..", or contain '/' or NUL.
Result<Tree> DecodeTree(std::string_view plain);

// zstd. Compress returns nothing when the result would not be at least 1/32
// smaller (incompressible data is stored as it is).
std::optional<std::string> Compress(std::string_view data, int level);
Result<std::string> Decompress(std::string_view data, uint32_t raw_length);

// Small objects are JSON (plain for config and keys; sealed for the rest).
struct Config {
  int version = kFormatVersion;
  std::string id;  // 32 hex digits
  bool encrypted = true;
  chunk::ChunkParams chunker;
  std::string mac_key_hex;  // only in unencrypted repositories (else it lives in the keys)
  std::string ToJson() const;
  static Result<Config> FromJson(std::string_view text);
};

struct KeyFile {
  ScryptParams kdf;
  std::string salt_hex, data_hex;  // data: the sealed master keys (enc || mac)
  std::string host, created;
  std::string ToJson() const;
  static Result<KeyFile> FromJson(std::string_view text);
};

struct SnapshotStats {
  uint64_t files = 0, dirs = 0, bytes = 0;        // the tree backed up
  uint64_t files_new = 0, files_changed = 0, files_unchanged = 0;
  uint64_t new_blobs = 0, new_bytes = 0;          // chunks not yet in the repository, before compression
  uint64_t stored_bytes = 0;                      // what those added to the repository
  double duration_seconds = 0;
  uint64_t errors = 0;                            // files that could not be read (listed in the log)
};

struct Snapshot {
  std::string id;       // name of the object (hex), filled when loaded
  int64_t time_ns = 0;  // start of the backup, Unix time
  std::string host, source, path;  // source: "volume:uploads" or "path:/srv/x"
  std::vector<std::string> tags;
  std::string schedule;  // the plan schedule that made it, or ""
  std::string tree, parent;
  // The backed-up directory's own metadata (its tree holds only its entries).
  uint32_t root_mode = 0755, root_uid = 0, root_gid = 0;
  int64_t root_mtime_sec = 0;
  uint32_t root_mtime_nsec = 0;
  SnapshotStats stats;
  // `tree` as an Id (FromJson refuses a snapshot whose tree is not one).
  Id TreeId() const {
    Id id{};
    ParseHex(tree, id);
    return id;
  }
  std::string ToJson() const;
  static Result<Snapshot> FromJson(std::string_view text);
};

struct LockInfo {
  bool exclusive = false;
  std::string host, operation;
  int64_t pid = 0;
  int64_t time_ns = 0;  // refreshed while held
  std::string ToJson() const;
  static Result<LockInfo> FromJson(std::string_view text);
};

std::string TimeText(int64_t unix_ns);  // "2026-11-22T10:00:00Z"

}  // namespace lifeboat::repo
