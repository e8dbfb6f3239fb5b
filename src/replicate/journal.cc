#include "replicate/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include "replicate/wire.h"

namespace lifeboat::replicate {
namespace {

constexpr std::string_view kMagic = "LBJOURN1";
constexpr char kRange = 'R', kSeal = 'E';
constexpr size_t kBuffer = 1 << 20;
constexpr uint32_t kMaxRange = 64u << 20;

void PutInt(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (i * 8)));
}

Status WriteAllIo(Env& env, int fd, std::span<const uint8_t> data, const std::string& what) {
  while (!data.empty()) {
    ssize_t w = env.Write(fd, data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return IoError(errno, "write " + what);
    data = data.subspan(static_cast<size_t>(w));
  }
  return Ok();
}

std::span<const uint8_t> Bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// Reads a journal front to back through a buffer, hashing what it reads.
class Source {
 public:
  explicit Source(int fd) : fd_(fd) { XXH3_64bits_reset(&sum_); }
  bool Read(void* out, size_t n) {
    auto* p = static_cast<uint8_t*>(out);
    while (n > 0) {
      if (pos_ == buf_.size()) {
        buf_.resize(kBuffer);
        ssize_t r;
        do r = ::read(fd_, buf_.data(), buf_.size());
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
          buf_.clear();
          pos_ = 0;
          return false;
        }
        buf_.resize(static_cast<size_t>(r));
        pos_ = 0;
      }
      size_t k = std::min(n, buf_.size() - pos_);
      std::memcpy(p, buf_.data() + pos_, k);
      XXH3_64bits_update(&sum_, p, k);
      pos_ += k;
      p += k;
      n -= k;
    }
    return true;
  }
  bool Int(uint64_t& v, int bytes) {
    uint8_t b[8];
    if (!Read(b, static_cast<size_t>(bytes))) return false;
    v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | b[i];
    return true;
  }
  uint64_t Sum() const { return XXH3_64bits_digest(&sum_); }
  // True when nothing is left.
  bool AtEnd() {
    if (pos_ < buf_.size()) return false;
    uint8_t b;
    ssize_t r;
    do r = ::read(fd_, &b, 1);
    while (r < 0 && errno == EINTR);
    return r == 0;
  }

 private:
  int fd_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  XXH3_state_t sum_;
};

struct Header {
  std::string target;
  uint64_t size = 0;
  fstree::Meta meta;
};

bool ReadHeader(Source& in, Header& h) {
  char magic[8];
  uint64_t n, mode, uid, gid, sec, nsec;
  if (!in.Read(magic, sizeof(magic)) || std::string_view(magic, 8) != kMagic) return false;
  if (!in.Int(n, 4) || n == 0 || n > 255) return false;
  h.target.resize(static_cast<size_t>(n));
  if (!in.Read(h.target.data(), h.target.size())) return false;
  if (h.target.find('/') != std::string::npos || h.target == "." || h.target == ".." ||
      fstree::IsTempName(h.target)) {
    return false;
  }
  if (!in.Int(h.size, 8) || !in.Int(mode, 4) || !in.Int(uid, 4) || !in.Int(gid, 4) || !in.Int(sec, 8) ||
      !in.Int(nsec, 4)) {
    return false;
  }
  if (mode > 07777 || nsec >= 1'000'000'000 || h.size > (uint64_t{1} << 50)) return false;
  h.meta = {static_cast<uint32_t>(mode), static_cast<uint32_t>(uid), static_cast<uint32_t>(gid),
            static_cast<int64_t>(sec), static_cast<uint32_t>(nsec)};
  return true;
}

// Walks the ranges; `fn(offset, bytes)` for each. False when the journal is
// not whole and sealed (checksum included).
template <typename Fn>
bool Ranges(int fd, Header& h, Fn fn) {
  if (::lseek(fd, 0, SEEK_SET) != 0) return false;
  Source in(fd);
  if (!ReadHeader(in, h)) return false;
  std::vector<uint8_t> data;
  uint64_t count = 0;
  while (true) {
    uint8_t kind;
    if (!in.Read(&kind, 1)) return false;
    if (kind == kSeal) break;
    uint64_t off, len;
    if (kind != kRange || !in.Int(off, 8) || !in.Int(len, 4) || len == 0 || len > kMaxRange || off > h.size ||
        len > h.size - off) {
      return false;
    }
    data.resize(static_cast<size_t>(len));
    if (!in.Read(data.data(), data.size()) || !fn(off, std::span<const uint8_t>(data))) return false;
    ++count;
  }
  uint64_t n, sum;
  if (!in.Int(n, 8) || n != count) return false;
  uint64_t want = in.Sum();
  if (!in.Int(sum, 8) || sum != want) return false;
  return in.AtEnd();
}

}  // namespace

struct JournalWriter::Checksum {
  XXH3_state_t state;
};

JournalWriter::JournalWriter(Env& env, int dirfd, std::string journal)
    : env_(env), dirfd_(dirfd), journal_(std::move(journal)), sum_(std::make_unique<Checksum>()) {
  XXH3_64bits_reset(&sum_->state);
}

JournalWriter::~JournalWriter() { Abandon(); }

Result<std::unique_ptr<JournalWriter>> JournalWriter::Create(Env& env, int dirfd, std::string journal,
                                                             std::string target, uint64_t size,
                                                             const fstree::Meta& meta) {
  std::unique_ptr<JournalWriter> w(new JournalWriter(env, dirfd, std::move(journal)));
  w->fd_.Reset(env.OpenAt(dirfd, w->journal_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!w->fd_.valid()) return IoError(errno, "create the journal of '" + Printable(target) + "'");
  w->buf_.reserve(kBuffer + 64);
  w->buf_ += kMagic;
  PutInt(w->buf_, target.size(), 4);
  w->buf_ += target;
  PutInt(w->buf_, size, 8);
  PutInt(w->buf_, meta.mode, 4);
  PutInt(w->buf_, meta.uid, 4);
  PutInt(w->buf_, meta.gid, 4);
  PutInt(w->buf_, static_cast<uint64_t>(meta.mtime_sec), 8);
  PutInt(w->buf_, meta.mtime_nsec, 4);
  return w;
}

Status JournalWriter::Flush() {
  if (buf_.empty()) return Ok();
  XXH3_64bits_update(&sum_->state, buf_.data(), buf_.size());
  Status s = WriteAllIo(env_, fd_.get(), Bytes(buf_), "journal " + journal_);
  buf_.clear();
  return s;
}

Status JournalWriter::Add(uint64_t offset, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    auto part = bytes.first(std::min<size_t>(bytes.size(), kMaxRange));
    buf_.push_back(kRange);
    PutInt(buf_, offset, 8);
    PutInt(buf_, part.size(), 4);
    if (buf_.size() + part.size() > kBuffer) LB_RETURN_IF_ERROR(Flush());
    if (part.size() >= kBuffer) {
      LB_RETURN_IF_ERROR(Flush());
      XXH3_64bits_update(&sum_->state, part.data(), part.size());
      LB_RETURN_IF_ERROR(WriteAllIo(env_, fd_.get(), part, "journal " + journal_));
    } else {
      buf_.append(reinterpret_cast<const char*>(part.data()), part.size());
    }
    offset += part.size();
    bytes = bytes.subspan(part.size());
    ++ranges_;
  }
  return Ok();
}

Status JournalWriter::Seal() {
  buf_.push_back(kSeal);
  PutInt(buf_, ranges_, 8);
  LB_RETURN_IF_ERROR(Flush());
  std::string tail;
  PutInt(tail, XXH3_64bits_digest(&sum_->state), 8);
  LB_RETURN_IF_ERROR(WriteAllIo(env_, fd_.get(), Bytes(tail), "journal " + journal_));
  if (env_.Fsync(fd_.get()) != 0) return IoError(errno, "fsync journal " + journal_);
  if (env_.Fsync(dirfd_) != 0) return IoError(errno, "fsync the directory of journal " + journal_);
  sealed_ = true;
  fd_.Reset();
  return Ok();
}

void JournalWriter::Abandon() {
  if (sealed_ || !fd_.valid()) return;
  fd_.Reset();
  env_.UnlinkAt(dirfd_, journal_.c_str(), 0);
}

Status ApplyJournal(Env& env, int dirfd, const std::string& journal) {
  UniqueFd in(::openat(dirfd, journal.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return ErrnoError(errno, "open journal " + journal);
  Header h;
  // First whole and sealed, then applied: a journal cut short never touches its file.
  if (!Ranges(in.get(), h, [](uint64_t, std::span<const uint8_t>) { return true; })) {
    return DataLoss("journal " + journal + " is not sealed or is damaged");
  }
  UniqueFd fd(env.OpenAt(dirfd, h.target.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno != ENOENT && errno != ELOOP) return IoError(errno, "open '" + Printable(h.target) + "'");
    // Its file is gone (or replaced by a symlink): there is nothing to update.
  } else {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat '" + Printable(h.target) + "'");
    if (!S_ISREG(st.st_mode)) return FailedPrecondition("'" + Printable(h.target) + "' is not a regular file");
    Status written = Ok();
    if (!Ranges(in.get(), h, [&](uint64_t off, std::span<const uint8_t> b) {
          written = WriteAll(env, fd.get(), b.data(), b.size(), off, h.target);
          return written.ok();
        })) {
      return written.ok() ? DataLoss("journal " + journal + " changed while it was applied") : written;
    }
    if (env.Ftruncate(fd.get(), static_cast<off_t>(h.size)) != 0) return IoError(errno, "truncate '" + h.target + "'");
    if (env.Fchown(fd.get(), h.meta.uid, h.meta.gid) != 0 && errno != EPERM) return ErrnoError(errno, "chown");
    if (env.Fchmod(fd.get(), h.meta.mode) != 0) return ErrnoError(errno, "chmod");
    struct timespec ts[2] = {{0, UTIME_OMIT}, {h.meta.mtime_sec, static_cast<long>(h.meta.mtime_nsec)}};
    if (env.Futimens(fd.get(), ts) != 0) return ErrnoError(errno, "set times");
    if (env.Fsync(fd.get()) != 0) return IoError(errno, "fsync '" + Printable(h.target) + "'");
  }
  // Removed for good before anything else may change the file: a journal
  // that came back after a crash would be applied over a later version.
  if (env.UnlinkAt(dirfd, journal.c_str(), 0) != 0) return IoError(errno, "remove journal " + journal);
  if (env.Fsync(dirfd) != 0) return IoError(errno, "fsync the directory of journal " + journal);
  return Ok();
}

Error IoError(int err, const std::string& what) {
  if (err == ENOSPC || err == EDQUOT) return ResourceExhausted(what + ": the target's disk is full");
  return ErrnoError(err, what);
}

Status WriteAll(Env& env, int fd, const uint8_t* p, size_t n, uint64_t offset, std::string_view path) {
  while (n > 0) {
    ssize_t w = env.PWrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return IoError(w < 0 ? errno : EIO, "write '" + Printable(path) + "'");
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Ok();
}

}  // namespace lifeboat::replicate
