// The filesystem backend: one file per object below a root directory.
// Put writes a temporary file next to the final name (".lifeboat~put-..."),
// fsyncs it, renames it into place and fsyncs the directory, so an object is
// either absent or complete, also after a crash.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "core/fd.h"
#include "core/fs.h"
#include "storage/storage.h"

namespace lifeboat::storage {
namespace {

constexpr std::string_view kTempPrefix = ".lifeboat~";

std::string TempSuffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rng() % 1000000);
}

class Filesystem final : public Backend {
 public:
  Filesystem(std::string root, Env& env) : root_(std::move(root)), env_(env) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  std::string Describe() const override { return "filesystem " + root_; }

  Status Prepare() override { return EnsureWritableDir(root_); }

  Status Put(const std::string& name, std::string_view data) override {
    std::string path = root_ + "/" + name;
    std::string dir = path.substr(0, path.rfind('/'));
    std::string tmp = dir + "/" + std::string(kTempPrefix) + "put-" + TempSuffix();
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    UniqueFd fd(env_.Open(tmp.c_str(), kFlags, 0644));
    if (!fd.valid() && errno == ENOENT) {
      LB_RETURN_IF_ERROR(MakeDirs(name.substr(0, name.rfind('/') == std::string::npos ? 0 : name.rfind('/'))));
      fd = UniqueFd(env_.Open(tmp.c_str(), kFlags, 0644));
    }
    if (!fd.valid()) return ErrnoError(errno, "create " + tmp);
    Status s = WriteAll(env_, fd.get(), data, tmp);
    if (s.ok() && env_.Fdatasync(fd.get()) != 0) s = ErrnoError(errno, "fsync " + tmp);
    fd.Reset();
    if (s.ok() && env_.Rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoError(errno, "rename to " + path);
    if (!s.ok()) {
      env_.Unlink(tmp.c_str());
      return s;
    }
    return SyncDir(env_, dir);
  }

  Result<std::string> Get(const std::string& name, uint64_t offset, uint64_t length) override {
    std::string path = root_ + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) return NotFound(name + " does not exist in " + Describe());
      return ErrnoError(errno, "open " + path);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + path);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (offset > size || (length > 0 && offset + length > size)) {
      return Error(Code::kDataLoss, name + " is " + std::to_string(size) + " bytes, shorter than expected (" +
                                        std::to_string(offset + length) + ")");
    }
    uint64_t n = length > 0 ? length : size - offset;
    std::string out(n, '\0');
    uint64_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd.get(), out.data() + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read " + path);
      }
      if (r == 0) return Error(Code::kDataLoss, name + " shrank while being read");
      done += static_cast<uint64_t>(r);
    }
    return out;
  }

  Result<std::vector<ObjectInfo>> List(const std::string& dir) override {
    std::vector<ObjectInfo> out;
    LB_RETURN_IF_ERROR(ListDir(dir, out, nullptr));
    return out;
  }

  Result<uint64_t> RemoveLeftovers() override {
    std::vector<ObjectInfo> objects, temps;
    LB_RETURN_IF_ERROR(ListDir("", objects, &temps));
    for (const auto& t : temps) {
      std::string path = root_ + "/" + t.name;
      if (env_.Unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "remove " + path);
    }
    return static_cast<uint64_t>(temps.size());
  }

  Status Delete(const std::string& name) override {
    std::string path = root_ + "/" + name;
    if (env_.Unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "delete " + path);
    return SyncDir(env_, path.substr(0, path.rfind('/')));
  }

 private:
  // Creates the directory `rel` below the root and its missing parents.
  Status MakeDirs(const std::string& rel) {
    std::string path = root_;
    for (size_t start = 0; start < rel.size();) {
      size_t slash = rel.find('/', start);
      if (slash == std::string::npos) slash = rel.size();
      path += "/" + rel.substr(start, slash - start);
      start = slash + 1;
      if (env_.MkdirAt(AT_FDCWD, path.c_str(), 0777) != 0 && errno != EEXIST) {
        return ErrnoError(errno, "create directory " + path);
      }
    }
    return Ok();
  }

  // Objects below `rel` into `out`; temporary files into `temps` when given.
  Status ListDir(const std::string& rel, std::vector<ObjectInfo>& out, std::vector<ObjectInfo>* temps) {
    std::string path = root_ + "/" + rel;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Ok();
      return ErrnoError(errno, "list " + path);
    }
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string child = rel.empty() ? std::string(n) : rel + "/" + std::string(n);
      if (n.starts_with(kTempPrefix)) {
        if (temps != nullptr) temps->push_back({child, 0});
        continue;
      }
      struct stat st;
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // deleted meanwhile
      if (S_ISDIR(st.st_mode)) {
        subdirs.push_back(child);
      } else if (S_ISREG(st.st_mode)) {
        out.push_back({child, static_cast<uint64_t>(st.st_size)});
      }
    }
    ::closedir(d);
    for (const auto& s : subdirs) LB_RETURN_IF_ERROR(ListDir(s, out, temps));
    return Ok();
  }

  std::string root_;
  Env& env_;
};

class ReadOnly final : public Backend {
 public:
  ReadOnly(std::unique_ptr<Backend> inner, std::string location)
      : inner_(std::move(inner)), location_(std::move(location)) {}
  std::string Describe() const override { return inner_->Describe() + " (ReadOnly)"; }
  Status Prepare() override { return Refuse("initialize a repository"); }
  Status Put(const std::string& name, std::string_view) override { return Refuse("write " + name); }
  Result<std::string> Get(const std::string& name, uint64_t offset, uint64_t length) override {
    return inner_->Get(name, offset, length);
  }
  Result<std::vector<ObjectInfo>> List(const std::string& dir) override { return inner_->List(dir); }
  Status Delete(const std::string& name) override { return Refuse("delete " + name); }
  bool read_only() const override { return true; }

 private:
  Status Refuse(const std::string& what) const {
    return Error(Code::kPermissionDenied, "location '" + location_ + "' is ReadOnly: refusing to " + what +
                                              " (it serves list, describe, check and restore only)");
  }
  std::unique_ptr<Backend> inner_;
  std::string location_;
};

}  // namespace

std::unique_ptr<Backend> NewFilesystem(std::string root, Env& env) {
  return std::make_unique<Filesystem>(std::move(root), env);
}

std::unique_ptr<Backend> NewReadOnly(std::unique_ptr<Backend> inner, std::string location) {
  return std::make_unique<ReadOnly>(std::move(inner), std::move(location));
}

}  // namespace lifeboat::storage
