// The file-system calls that create, write, sync, rename, remove or change
// files, behind one small interface (leveldb's Env), so that a test can make
// any single call fail: crash safety is then tested at every write in
// milliseconds, not only by killing processes. Replication's receiver,
// restore, the tree helpers and the filesystem storage backend make their
// changes through an Env; reads go to the system directly.
//
// The methods mirror the POSIX calls they stand for: they return what the
// call returns, and -1 with errno set on failure. The default Env runs the
// calls; a test Env (core/fault_env.h) overrides Before() to fail one.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace lifeboat {

// What a call does, for an Env deciding which calls to fail.
enum class FileOp : uint8_t {
  kOpen,      // opens an existing file or directory
  kCreate,    // opens with O_CREAT: may add a name
  kWrite,     // write, pwrite, copy_file_range
  kSync,      // fsync, fdatasync, syncfs
  kTruncate,  // ftruncate
  kRename,
  kUnlink,    // unlinkat of a file or (AT_REMOVEDIR) a directory
  kMkdir,
  kSymlink,
  kLink,
  kSetMeta,   // chmod, chown, utimes
};
const char* Name(FileOp op);

class Env {
 public:
  // The Env that runs every call. Lives for the whole process.
  static Env& Default();
  virtual ~Env() = default;

  int OpenAt(int dirfd, const char* path, int flags, mode_t mode = 0);
  int Open(const char* path, int flags, mode_t mode = 0) { return OpenAt(AT_FDCWD, path, flags, mode); }
  ssize_t Write(int fd, const void* buf, size_t n);
  ssize_t PWrite(int fd, const void* buf, size_t n, off_t offset);
  // copy_file_range(2): `n` bytes of `in` at `*in_off` to `out` at `*out_off`
  // (both advanced by what was copied), inside the kernel.
  ssize_t CopyFileRange(int in, off_t* in_off, int out, off_t* out_off, size_t n);
  int Fsync(int fd);
  int Fdatasync(int fd);
  int Syncfs(int fd);
  int Ftruncate(int fd, off_t length);
  int RenameAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath);
  int Rename(const char* oldpath, const char* newpath) { return RenameAt(AT_FDCWD, oldpath, AT_FDCWD, newpath); }
  int UnlinkAt(int dirfd, const char* path, int flags);
  int Unlink(const char* path) { return UnlinkAt(AT_FDCWD, path, 0); }
  int MkdirAt(int dirfd, const char* path, mode_t mode);
  int SymlinkAt(const char* target, int dirfd, const char* path);
  int LinkAt(int olddirfd, const char* oldpath, int newdirfd, const char* newpath, int flags);
  int Fchmod(int fd, mode_t mode);
  int FchmodAt(int dirfd, const char* path, mode_t mode, int flags);
  int Fchown(int fd, uid_t uid, gid_t gid);
  int FchownAt(int dirfd, const char* path, uid_t uid, gid_t gid, int flags);
  int Futimens(int fd, const struct timespec times[2]);
  int UtimensAt(int dirfd, const char* path, const struct timespec times[2], int flags);

 protected:
  // Called before each call. Returns 0 to let it run, or an errno to fail it
  // without running it. For writes, `*bytes` is the length asked for and may
  // be lowered: the write then runs short (a torn write).
  virtual int Before(FileOp op, size_t* bytes) {
    (void)op, (void)bytes;
    return 0;
  }

 private:
  // Runs Before(); false (errno set) when the call is to fail.
  bool Allow(FileOp op, size_t* bytes = nullptr);
};

}  // namespace lifeboat
