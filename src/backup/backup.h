// Backup and restore of a directory tree to and from a repository, and the
// retention rules that pick which backups to delete.
//
// Backup runs as a pipeline on every core: reader threads walk the list of
// files, read and chunk them (FastCDC) and name each chunk (HMAC-SHA256);
// chunks the repository does not hold yet go through a bounded queue to
// sealer threads that compress (zstd), encrypt (AES-256-GCM) and pack them;
// full packs are uploaded by the sealer that filled them. Files whose size,
// mtime, ctime and inode match the previous backup of the same source are
// not read at all.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backup/location.h"
#include "core/env.h"
#include "plan/plan.h"
#include "repo/repository.h"

namespace lifeboat::backup {

// Counters a progress display reads while the work runs.
struct Progress {
  std::atomic<uint64_t> files_total{0}, files_done{0}, bytes_total{0}, bytes_done{0};
  std::atomic<bool> scanning{true};
};

struct BackupOptions {
  std::string path;    // the directory to back up
  std::string source;  // "volume:uploads" or "path:/srv/x": backups of one source form a chain
  std::vector<std::string> tags;
  std::string schedule;
  int readers = 2, sealers = 2;
  int compression_level = 1;
};

struct FileError {
  std::string path;
  std::string reason;
};

struct BackupResult {
  repo::Snapshot snapshot;
  std::vector<FileError> errors;  // files that could not be read (left out of the backup)
};

// Takes a shared lock, adopts packs an interrupted backup left, and writes a
// snapshot. Unreadable files are left out and listed, not fatal.
Result<BackupResult> CreateBackup(repo::Repository& repo, const BackupOptions& options, Progress* progress = nullptr);

struct RestoreOptions {
  std::string to;                    // target directory (created if missing)
  std::vector<std::string> include;  // globs on paths relative to the backup root; empty: everything
  int workers = 2;
  Env* env = &Env::Default();  // every change to the target goes through it (tests inject faults)
  // When set, the restore stops at the next file: what is written is made
  // durable and put in place (whole files only), then Restore returns
  // Cancelled. Null: never.
  const std::atomic<bool>* cancel = nullptr;
};

struct RestoreResult {
  uint64_t files = 0, dirs = 0, symlinks = 0, hardlinks = 0, bytes = 0;
  uint64_t leftovers_removed = 0;  // temporary files an interrupted restore had left in the target
  std::vector<FileError> failed;  // exactly the entries that could not be restored, and why
};

// Restores a backup beneath `to`. Every path is opened beneath the target
// without following symlinks; files are written under a temporary name,
// flushed and renamed into place, so a crash leaves no half-written file
// under a final name. Metadata (mode, owner, mtime; hard links) as backed up.
Result<RestoreResult> Restore(repo::Repository& repo, const repo::Snapshot& snapshot, const RestoreOptions& options,
                              Progress* progress = nullptr);

// Matches a restore --include glob against a relative path: true when it
// matches the path or one of its parent directories.
bool IncludeMatches(const std::vector<std::string>& globs, const std::string& path);

// The ids of `snapshots` (all of one source) to delete under `ttl` and
// `keep` at time `now`. Never the newest backup, nor the newest one that
// had no errors.
std::vector<std::string> SelectForDeletion(const std::vector<repo::Snapshot>& snapshots, Duration ttl,
                                           const plan::Keep& keep, std::chrono::system_clock::time_point now);

// The default chunker of new repositories: 64 KiB average (16 KiB to
// 512 KiB), small enough that an edit re-uploads little.
chunk::ChunkParams DefaultChunker();

}  // namespace lifeboat::backup
