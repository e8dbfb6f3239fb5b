#include "core/env.h"

#include <stdio.h>
#include <unistd.h>

#include <cerrno>

namespace lifeboat {

const char* Name(FileOp op) {
  switch (op) {
    case FileOp::kOpen: return "open";
    case FileOp::kCreate: return "create";
    case FileOp::kWrite: return "write";
    case FileOp::kSync: return "sync";
    case FileOp::kTruncate: return "truncate";
    case FileOp::kRename: return "rename";
    case FileOp::kUnlink: return "unlink";
    case FileOp::kMkdir: return "mkdir";
    case FileOp::kSymlink: return "symlink";
    case FileOp::kLink: return "link";
    case FileOp::kSetMeta: return "set-meta";
  }
  return "?";
}

Env& Env::Default() {
  static Env env;
  return env;
}

bool Env::Allow(FileOp op, size_t* bytes) {
  int err = Before(op, bytes);
  if (err == 0) return true;
  errno = err;
  return false;
}

int Env::OpenAt(int dirfd, const char* path, int flags, mode_t mode) {
  if (!Allow(flags & O_CREAT ? FileOp::kCreate : FileOp::kOpen)) return -1;
  return ::openat(dirfd, path, flags, mode);
}

ssize_t Env::Write(int fd, const void* buf, size_t n) {
  if (!Allow(FileOp::kWrite, &n)) return -1;
  return ::write(fd, buf, n);
}

ssize_t Env::PWrite(int fd, const void* buf, size_t n, off_t offset) {
  if (!Allow(FileOp::kWrite, &n)) return -1;
  return ::pwrite(fd, buf, n, offset);
}

ssize_t Env::CopyFileRange(int in, off_t* in_off, int out, off_t* out_off, size_t n) {
  if (!Allow(FileOp::kWrite, &n)) return -1;
  return ::copy_file_range(in, in_off, out, out_off, n, 0);
}

int Env::Fsync(int fd) { return Allow(FileOp::kSync) ? ::fsync(fd) : -1; }
int Env::Fdatasync(int fd) { return Allow(FileOp::kSync) ? ::fdatasync(fd) : -1; }
int Env::Syncfs(int fd) { return Allow(FileOp::kSync) ? ::syncfs(fd) : -1; }
int Env::Ftruncate(int fd, off_t length) { return Allow(FileOp::kTruncate) ? ::ftruncate(fd, length) : -1; }

int Env::RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) {
  return Allow(FileOp::kRename) ? ::renameat(olddirfd, oldpath, newdirfd, newpath) : -1;
}

int Env::UnlinkAt(int dirfd, const char* path, int flags) {
  return Allow(FileOp::kUnlink) ? ::unlinkat(dirfd, path, flags) : -1;
}

int Env::MkdirAt(int dirfd, const char* path, mode_t mode) {
  return Allow(FileOp::kMkdir) ? ::mkdirat(dirfd, path, mode) : -1;
}

int Env::SymlinkAt(const char* target, int dirfd, const char* path) {
  return Allow(FileOp::kSymlink) ? ::symlinkat(target, dirfd, path) : -1;
}

int Env::LinkAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath, int flags) {
  return Allow(FileOp::kLink) ? ::linkat(olddirfd, oldpath, newdirfd, newpath, flags) : -1;
}

int Env::Fchmod(int fd, mode_t mode) { return Allow(FileOp::kSetMeta) ? ::fchmod(fd, mode) : -1; }
int Env::FchmodAt(int dirfd, const char* path, mode_t mode, int flags) {
  return Allow(FileOp::kSetMeta) ? ::fchmodat(dirfd, path, mode, flags) : -1;
}

int Env::Fchown(int fd, uid_t uid, gid_t gid) { return Allow(FileOp::kSetMeta) ? ::fchown(fd, uid, gid) : -1; }

int Env::FchownAt(int dirfd, const char* path, uid_t uid, gid_t gid, int flags) {
  return Allow(FileOp::kSetMeta) ? ::fchownat(dirfd, path, uid, gid, flags) : -1;
}

int Env::Futimens(int fd, const struct timespec times[2]) {
  return Allow(FileOp::kSetMeta) ? ::futimens(fd, times) : -1;
}

int Env::UtimensAt(int dirfd, const char* path, const struct timespec times[2], int flags) {
  return Allow(FileOp::kSetMeta) ? ::utimensat(dirfd, path, times, flags) : -1;
}

}  // namespace lifeboat
