#include "core/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lifeboat {
namespace {

std::string DirOf(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoError(err, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

Status SyncDir(Env& env, const std::string& path) {
  int fd = env.Open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open directory " + path);
  int rc = env.Fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(err, "fsync directory " + path);
  return Ok();
}

Status WriteAll(Env& env, int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = env.Write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write " + what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  Env& env = Env::Default();
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = env.Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return ErrnoError(errno, "create " + tmp);
  Status s = WriteAll(env, fd, data, tmp);
  if (s.ok() && env.Fsync(fd) != 0) s = ErrnoError(errno, "fsync " + tmp);
  if (::close(fd) != 0 && s.ok()) s = ErrnoError(errno, "close " + tmp);
  if (s.ok() && env.Rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoError(errno, "rename " + tmp + " to " + path);
  if (!s.ok()) {
    env.Unlink(tmp.c_str());
    return s;
  }
  return SyncDir(env, DirOf(path));
}

Status EnsureWritableDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return Error(ec == std::errc::permission_denied || ec == std::errc::read_only_file_system
                     ? Code::kPermissionDenied
                     : Code::kFailedPrecondition,
                 "cannot create directory " + path + ": " + ec.message());
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(path + " exists and is not a directory");
  // access() ignores read-only mounts for root; create a probe file instead.
  std::string probe = path + "/.lifeboat-write-probe." + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    return Error(err == ENOSPC ? Code::kResourceExhausted : Code::kPermissionDenied,
                 "directory " + path + " is not writable: " + std::strerror(err));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return Ok();
}

Result<FileLock> FileLock::Acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(errno, "open lock file " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      return FailedPrecondition(path + " is locked by another process (pid " + holder + ")");
    }
    return ErrnoError(err, "lock " + path);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "write lock file " + path);
  }
  return FileLock(fd);
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace lifeboat
