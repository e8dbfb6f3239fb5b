// The replication protocol's frames (docs/format/replication.md). Every
// frame is a 4-byte big-endian length, a 1-byte type and a payload; integers
// are big-endian, strings are a 4-byte length and raw bytes (paths are bytes,
// not text). Decoding is bounds-checked: a malformed frame is an error, never
// a crash (fuzzed in tests/fuzz/replicate_fuzz.cc).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "chunk/hash.h"
#include "core/result.h"
#include "fstree/tree.h"

namespace lifeboat::replicate {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kMaxFrame = 8u << 20;  // type + payload
inline constexpr size_t kMaxPath = 4096;

enum class Type : uint8_t {
  kHello = 1,     // sender -> receiver: version, volume, region, epoch, mode
  kWelcome = 2,   // receiver -> sender
  kError = 3,     // either way, then close: code, message
  kList = 10,     // id, path, flags: the entry at path (and below, when recursive)
  kEntries = 11,  // id, count, entries
  kListEnd = 12,  // id
  kDeltaReq = 20,     // id, path, average chunk size: the chunks of the receiver's file
  kDeltaChunks = 21,  // id, count, (offset, size, chunk id)
  kDeltaEnd = 22,     // id
  kDeltaReqBasis = 23,  // id, path, average chunk size, basis path: DELTA_REQ offering the basis' chunks too
  kFileBegin = 30,  // path, meta, size
  kData = 31,       // offset, bytes
  kCopy = 32,       // offset, chunk id, size: bytes the receiver already has
  kFileEnd = 33,
  kSymlink = 34,   // path, target, meta
  kMkdir = 35,     // path, meta
  kHardlink = 36,  // path, existing path
  kDelete = 37,    // path
  kRename = 38,    // from, to
  kSetMeta = 39,   // path, meta
  kPatchBegin = 40,  // path, base size, base mtime, meta, size: an in-place update (DATA..., FILE_END)
  kBaseBegin = 41,   // path, base size, base mtime, meta, size: a new version rebuilt from the current one
                     // (COPY_BASE, DATA..., FILE_END)
  kCopyBase = 42,    // offset, base offset, size, digest: whole blocks of the base, checked by their hashes
  kRepeat = 43,      // offset, from, size: bytes this file's new version already holds at `from`, before `offset`
  kCommit = 50,     // seq: make everything before it durable
  kCommitted = 51,  // seq
};
const char* TypeName(uint8_t type);

// Session modes of a Hello.
inline constexpr uint8_t kModeSync = 0;      // the one session that may write
inline constexpr uint8_t kModeReadOnly = 1;  // listings only (verify)

// List flags.
inline constexpr uint8_t kListRecursive = 1;
inline constexpr uint8_t kListHashes = 2;

// Chunks are named on the wire by their XXH3-128.
using ChunkId = chunk::Digest128;
inline ChunkId IdOf(std::span<const uint8_t> chunk) { return chunk::Xxh128(chunk); }

// The tree's entries and safe file access are fstree's (fstree/tree.h),
// below replication and backups; the wire carries the entries.
using fstree::ApplyMeta;
using fstree::DataExtents;
using fstree::Entry;
using fstree::EntryFn;
using fstree::EntryType;
using fstree::HashFile;
using fstree::IsTempName;
using fstree::IsWithin;
using fstree::JoinPath;
using fstree::kTempPrefix;
using fstree::Meta;
using fstree::MetaOf;
using fstree::Name;
using fstree::OpenDirBeneath;
using fstree::OpenParent;
using fstree::ParentOf;
using fstree::ParentRef;
using fstree::Printable;
using fstree::RemoveTempNames;
using fstree::RemoveTree;
using fstree::StatEntry;
using fstree::TypeOf;
using fstree::Walk;
using fstree::WalkParallel;

class Writer {
 public:
  explicit Writer(Type type);
  Writer& U8(uint8_t v);
  Writer& U32(uint32_t v);
  Writer& U64(uint64_t v);
  Writer& Str(std::string_view s);
  Writer& Raw(std::span<const uint8_t> b);
  Writer& Put(const Meta& m);
  Writer& Put(const Entry& e);
  size_t size() const { return buf_.size(); }
  // The complete frame, header included.
  std::string Finish();

 private:
  std::string buf_;
};

struct Frame {
  uint8_t type = 0;
  std::string payload;
};

class Reader {
 public:
  explicit Reader(std::string_view payload) : p_(payload) {}
  uint8_t U8();
  uint32_t U32();
  uint64_t U64();
  std::string Str(size_t max = kMaxFrame);
  // The same, without a copy: valid while the payload is.
  std::string_view View(size_t max = kMaxFrame);
  // A path: at most kMaxPath bytes; checked by ValidatePath where used.
  std::string Path() { return Str(kMaxPath); }
  void Raw(std::span<uint8_t> out);
  Meta GetMeta();
  Entry GetEntry();
  bool ok() const { return ok_; }
  bool done() const { return ok_ && p_.empty(); }
  // InvalidArgument naming the frame type when a read ran past the end or
  // bytes are left over.
  Status Finish(uint8_t type) const;

 private:
  bool Need(size_t n);
  std::string_view p_;
  bool ok_ = true;
};

// The first frame of a session (sender to receiver).
struct Hello {
  uint32_t version = 0;
  std::string volume;
  std::string region;  // the sender's
  uint64_t epoch = 0;
  uint8_t mode = kModeSync;
};
std::string EncodeHello(const Hello& h);
Result<Hello> DecodeHello(const Frame& f);

// ERROR frames carry an error's code as a number fixed by the protocol
// (docs/format/replication.md), not as the enum's value: codes added to
// the enum must not change what a peer of another version reads.
uint32_t WireCode(Code code);
std::string EncodeError(const Error& e);
// InvalidArgument ("malformed ERROR frame") for a code the protocol lacks.
Error DecodeError(const Frame& f);

// Parses the 5-byte header; InvalidArgument for a length of 0 or above kMaxFrame.
Result<uint32_t> FrameLength(std::span<const uint8_t, 4> header);

// A relative path the receiver may touch: not empty (unless allow_root), no
// leading or trailing '/', no empty, "." or ".." component, no NUL byte, at
// most kMaxPath bytes, and no component starting with ".lifeboat~" (the
// receiver's temporary files).
Status ValidatePath(std::string_view path, bool allow_root = false);


}  // namespace lifeboat::replicate
