// File-system helpers that never leave a half-written file behind: write a
// temporary file, fsync it, rename it over the target, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace lifeboat {

// Reads a whole file. NotFound, PermissionDenied or InvalidArgument (too big).
Result<std::string> ReadFile(const std::string& path, size_t max_bytes = 64 << 20);
// Replaces `path` atomically with `data` (temp file, fsync, rename, fsync dir).
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);
// Creates `path` and its parents (mode 0700 for new ones) and checks that this
// process can create files in it; the error says what to do otherwise.
Status EnsureWritableDir(const std::string& path);
// fsync on a directory, so a rename or a create inside it is durable.
Status SyncDir(const std::string& path);

}  // namespace lifeboat
