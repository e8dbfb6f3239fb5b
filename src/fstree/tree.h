// Safe access to a directory tree, below both replication and backups:
// reading a tree into Entries and opening paths beneath a root without ever
// following a symlink, so that no path from the wire, from a backup or from a
// symlink planted in a target can reach outside it. Temporary names, hashing
// with holes, metadata, removal.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "chunk/hash.h"
#include "core/env.h"
#include "core/fd.h"
#include "core/result.h"

namespace lifeboat::fstree {

enum class EntryType : uint8_t { kFile = 1, kDir = 2, kSymlink = 3, kOther = 4 };
const char* Name(EntryType t);

struct Meta {
  uint32_t mode = 0;  // permission bits, setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  friend bool operator==(const Meta&, const Meta&) = default;
};

struct Entry {
  std::string path;  // relative to the root, "" for the root
  EntryType type = EntryType::kOther;
  Meta meta;
  uint64_t size = 0;
  uint64_t ino = 0;  // hard links: equal within one tree
  uint32_t nlink = 1;
  int64_t ctime_sec = 0;  // local only (backups detect changes with it); never on the wire
  uint32_t ctime_nsec = 0;
  std::string link;  // symlink target
  bool has_hash = false;
  chunk::Digest hash{};  // content digest of a regular file (HashFile), when asked
};

// Paths for messages: bytes outside printable ASCII as \xNN; the root ("") as ".".
std::string Printable(std::string_view path);

// Names starting with this are lifeboat's temporary files (a file being
// received or restored sits next to its final name until it is committed).
// Never listed, never replicated, never backed up.
inline constexpr std::string_view kTempPrefix = ".lifeboat~";
inline bool IsTempName(std::string_view name) { return name.starts_with(kTempPrefix); }

// Opens `rel` beneath `root_fd` with `flags` in one openat2(2) that refuses
// symlinks (the last component's too) and any way out of the root. -1 when
// it fails for any reason, "" included: the caller then takes the component
// walk below, which says exactly what is wrong (and works where openat2 does
// not: an old kernel, a sandbox that forbids it).
int TryOpenBeneath(int root_fd, std::string_view rel, int flags);

// Opens the directory `rel` ("" is the root itself) beneath `root_fd`: one
// TryOpenBeneath, else component by component with O_NOFOLLOW. NotFound
// when a component is missing; PermissionDenied when one is a symlink
// ("escapes through a symlink"); FailedPrecondition when one is not a
// directory.
Result<UniqueFd> OpenDirBeneath(int root_fd, std::string_view rel);

// The parent directory of `rel` (opened as above) and its last component.
struct ParentRef {
  UniqueFd dir;
  std::string base;
};
Result<ParentRef> OpenParent(int root_fd, std::string_view rel);

Meta MetaOf(const struct stat& st);
EntryType TypeOf(mode_t mode);

// The entry `base` of directory `dirfd` (lstat; readlink for symlinks), named
// `rel`. NotFound when it does not exist.
Result<Entry> StatEntry(int dirfd, const char* base, std::string rel);

// The names in directory `dirfd` ("." and ".." aside), in byte order. With
// `dirs_only`, only those of directories (readdir's d_type; an lstat only
// where the file system does not fill it in).
Result<std::vector<std::string>> ListNames(int dirfd, bool dirs_only = false);

// Calls fn for the entry at `rel` and, when `recursive` and it is a directory,
// for every entry below it, parents first, names in byte order. Temporary
// names (IsTempName) are skipped. Nothing when `rel` does not exist. With `hashes`,
// regular files carry the SHA-256 of their content.
using EntryFn = std::function<Status(Entry&)>;
Status Walk(int root_fd, const std::string& rel, bool recursive, bool hashes, const EntryFn& fn);

// Walk with `threads` threads listing and stating directories at once (their
// reads overlap on a cold cache; the stats share the cores on a warm one).
// fn sees one entry at a time, under a lock, a directory before anything
// below it, in no other order. The first error stops the walk.
Status WalkParallel(int root_fd, const std::string& rel, bool recursive, bool hashes, int threads,
                    const EntryFn& fn);

// Calls fn with `rel`, when it is a directory, and with every directory below
// it, parents first, names in byte order, temporary names skipped: Walk's
// directories without a stat of every file (what a watcher needs to set up).
// Nothing when `rel` is missing or not a directory; OpenDirBeneath's error
// when a component of it is a symlink.
using DirFn = std::function<Status(const std::string& rel)>;
Status WalkDirs(int root_fd, const std::string& rel, const DirFn& fn);

// The data regions of a file as (offset, length), in order; holes are left
// out (SEEK_DATA/SEEK_HOLE). One region covering everything where the file
// system cannot tell.
Result<std::vector<std::pair<uint64_t, uint64_t>>> DataExtents(int fd, uint64_t size);

// A digest of `size` bytes of fd that depends only on the bytes: SHA-256
// over the SHA-256 of each 1 MiB block, with runs of zero bytes (holes or
// written zeros) entered as their length, so holes cost nothing to hash.
Result<chunk::Digest> HashFile(int fd, uint64_t size);

// The functions that change the tree make their changes through `env`.

// Removes `base` in `dirfd` and, for a directory, everything below it,
// without following symlinks. Ok when it does not exist.
Status RemoveTree(Env& env, int dirfd, const std::string& base);

// Removes every temporary name (IsTempName) below the directory `dirfd`,
// without following symlinks: what a killed receiver or restore left. Returns
// how many were removed. `first`, when given, sees each name before (the
// directory it is in, the name) and returns true to keep it (replication
// applies a sealed journal there; one it could not apply stays).
using TempFn = std::function<bool(int dirfd, const std::string& name)>;
Result<uint64_t> RemoveTempNames(Env& env, int dirfd, const TempFn& first = {});

// Applies mode (not for symlinks), owner and mtime to `base` in `dirfd`.
Status ApplyMeta(Env& env, int dirfd, const char* base, EntryType type, const Meta& meta);

// "a/b/c" -> "a/b"; "c" -> "".
std::string ParentOf(std::string_view rel);
// Joins a directory path ("" for the root) and a name.
std::string JoinPath(std::string_view dir, std::string_view name);
// True when `path` is `dir` or below it ("" contains everything).
bool IsWithin(std::string_view path, std::string_view dir);

}  // namespace lifeboat::fstree
