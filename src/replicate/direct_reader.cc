#include "replicate/direct_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fstree/tree.h"

namespace lifeboat::replicate {

std::unique_ptr<DirectReader> DirectReader::Open(int fd, const std::vector<std::pair<uint64_t, uint64_t>>& extents,
                                                 size_t piece, std::string path) {
  if (piece == 0 || piece % kAlign != 0) return nullptr;
  std::vector<std::pair<uint64_t, size_t>> pieces;
  for (auto [off, len] : extents) {
    if (off % kAlign != 0) return nullptr;
    for (uint64_t done = 0; done < len;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, piece));
      pieces.emplace_back(off + done, n);
      done += n;
    }
  }
  // The same open file, a second time with O_DIRECT (the first one's reads
  // elsewhere, a repeat's check among them, need no alignment).
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd direct(::open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  struct stat a, b;
  if (!direct.valid() || ::fstat(fd, &a) != 0 || ::fstat(direct.get(), &b) != 0 || a.st_dev != b.st_dev ||
      a.st_ino != b.st_ino) {
    return nullptr;
  }
  auto r = std::unique_ptr<DirectReader>(new DirectReader(std::move(direct), fd, std::move(pieces), std::move(path)));
  for (auto& s : r->slots_) {
    s.mem = AllocAligned(kAlign, kAlign + piece);
    if (!s.mem) return nullptr;
  }
  return r;
}

DirectReader::DirectReader(UniqueFd direct, int fd, std::vector<std::pair<uint64_t, size_t>> pieces, std::string path)
    : direct_(std::move(direct)), fd_(fd), pieces_(std::move(pieces)), path_(std::move(path)), slots_(kAhead) {}

DirectReader::~DirectReader() {
  std::lock_guard lock(mu_);
  stopping_ = true;  // the worker, joined next, skips what is still queued
}

bool DirectReader::Post() {
  // Piece i reads into slot i % kAhead, which piece i - kAhead, handed out
  // before the one the caller holds now, no longer uses.
  if (posted_ >= pieces_.size() || posted_ >= next_ + kAhead) return false;
  Slot& s = slots_[posted_ % kAhead];
  {
    std::lock_guard lock(mu_);
    s.offset = pieces_[posted_].first;
    s.want = pieces_[posted_].second;
    s.got = 0;
    s.error.reset();
    s.done = false;
  }
  workers_[posted_ % kThreads].Post([this, &s] { Read(s); });
  ++posted_;
  return true;
}

void DirectReader::Read(Slot& s) {
  uint64_t offset;
  size_t want;
  bool buffered;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    offset = s.offset;
    want = s.want;
    buffered = buffered_;
  }
  uint8_t* p = s.mem.get() + kAlign;
  size_t whole = (want + kAlign - 1) / kAlign * kAlign;  // a direct read's length is whole blocks
  size_t got = 0;
  uint64_t direct = 0;
  std::optional<Error> error;
  while (got < want) {
    ssize_t n;
    if (!buffered) {
      n = ::pread(direct_.get(), p + got, whole - got, static_cast<off_t>(offset + got));
      // The file system will not read this direct after all (or a short
      // read left the rest off the block grid): the page cache reads it.
      if (n < 0 && errno == EINVAL) {
        buffered = true;
        continue;
      }
    } else {
      n = ::pread(fd_, p + got, want - got, static_cast<off_t>(offset + got));
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = ErrnoError(errno, "read '" + fstree::Printable(path_) + "'");
      break;
    }
    if (n == 0) break;  // the end of the file: it shrank
    if (!buffered) direct += static_cast<uint64_t>(n);
    got += static_cast<size_t>(n);
  }
  {
    std::lock_guard lock(mu_);
    s.got = std::min(got, want);
    s.error = std::move(error);
    s.done = true;
    direct_bytes_ += std::min<uint64_t>(direct, want);
  }
  cv_.notify_all();
}

Result<DirectReader::Piece> DirectReader::Next() {
  while (Post()) {
  }
  Slot& s = slots_[next_ % kAhead];
  ++next_;
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return s.done; });
  if (s.error) return *s.error;
  return Piece{s.offset, s.mem.get() + kAlign, s.got};
}

}  // namespace lifeboat::replicate
