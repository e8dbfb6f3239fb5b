// File-system helpers that never leave a half-written file behind: write a
// temporary file, fsync it, rename it over the target, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "core/env.h"
#include "core/result.h"

namespace lifeboat {

// Reads a whole file. NotFound, PermissionDenied or InvalidArgument (too big).
Result<std::string> ReadFile(const std::string& path, size_t max_bytes = 64 << 20);
// Writes all of `data` to fd (retrying short writes and EINTR); `what` names it in errors.
Status WriteAll(Env& env, int fd, std::string_view data, const std::string& what);
// Replaces `path` atomically with `data` (temp file, fsync, rename, fsync dir).
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);
// Creates `path` and its parents (mode 0700 for new ones) and checks that this
// process can create files in it; the error says what to do otherwise.
Status EnsureWritableDir(const std::string& path);
// fsync on a directory, so a rename or a create inside it is durable.
Status SyncDir(Env& env, const std::string& path);

// An exclusive lock on a file (flock), held until destroyed; the file holds
// the owner's pid for the error message of the next one who tries.
class FileLock {
 public:
  // FailedPrecondition naming the holder's pid when another process has it.
  static Result<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace lifeboat
