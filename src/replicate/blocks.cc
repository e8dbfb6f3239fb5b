#include "replicate/blocks.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "chunk/hash.h"
#include "core/fd.h"
#include "core/fs.h"
#include "replicate/wire.h"

namespace lifeboat::replicate {
namespace {

constexpr std::string_view kMagic = "LBBLOCK1";
constexpr std::string_view kSuffix = ".blocks";
constexpr uint64_t kMaxBlocks = uint64_t{1} << 32;  // 16 TiB files

void PutU32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(v >> (i * 8)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (i * 8)));
}

// A bounds-checked big-endian cursor.
struct Cursor {
  std::string_view p;
  bool ok = true;
  uint64_t Int(int bytes) {
    if (p.size() < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[static_cast<size_t>(i)]);
    p.remove_prefix(static_cast<size_t>(bytes));
    return v;
  }
  std::string_view Bytes(uint64_t n) {
    if (p.size() < n) {
      ok = false;
      return {};
    }
    auto out = p.substr(0, n);
    p.remove_prefix(n);
    return out;
  }
};

}  // namespace

uint64_t BlockHash(std::span<const uint8_t> block) { return chunk::Xxh64(block); }

std::optional<uint64_t> RepeatFinder::Find(uint64_t h) const {
  if (slots_.empty()) return std::nullopt;
  size_t mask = slots_.size() - 1;
  for (size_t i = static_cast<size_t>(h) & mask;; i = (i + 1) & mask) {
    const auto& [key, offset] = slots_[i];
    if (offset == 0) return std::nullopt;
    if (key == h) return offset - 1;
  }
}

void RepeatFinder::Remember(uint64_t h, uint64_t offset) {
  if (used_ >= kMaxRemembered) return;
  if ((used_ + 1) * 2 > slots_.size()) {
    std::vector<std::pair<uint64_t, uint64_t>> old(std::max<size_t>(slots_.size() * 2, 4096));
    old.swap(slots_);
    used_ = 0;
    for (const auto& [key, at] : old) {
      if (at != 0) Remember(key, at - 1);
    }
  }
  size_t mask = slots_.size() - 1;
  size_t i = static_cast<size_t>(h) & mask;
  while (slots_[i].second != 0) i = (i + 1) & mask;
  slots_[i] = {h, offset + 1};
  ++used_;
}

Result<std::vector<RepeatFinder::Run>> RepeatFinder::Scan(int fd, uint64_t offset, std::span<const uint8_t> bytes) {
  constexpr size_t kCompare = 64 << 10;  // earlier bytes read per step of a run
  std::vector<Run> runs;
  size_t at = static_cast<size_t>((kBlockSize - offset % kBlockSize) % kBlockSize);
  while (at + kBlockSize <= bytes.size()) {
    uint64_t o = offset + at;
    uint64_t h = BlockHash(bytes.subspan(at, kBlockSize));
    std::optional<uint64_t> first = Find(h);
    if (!first) {
      if (o % kStride == 0) Remember(h, o);
      at += kBlockSize;
      continue;
    }
    // Extend the run while the bytes match the earlier ones, never into
    // itself (the earlier range ends at or before `o`).
    uint64_t from = *first;
    uint64_t most = std::min<uint64_t>((bytes.size() - at) / kBlockSize * kBlockSize, o - from);
    uint64_t len = 0;
    while (len < most) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kCompare, most - len));
      earlier_.resize(want);
      ssize_t n;
      do n = ::pread(fd, earlier_.data(), want, static_cast<off_t>(from + len));
      while (n < 0 && errno == EINTR);
      if (n < 0) return ErrnoError(errno, "read");
      size_t same = 0;
      while (same + kBlockSize <= static_cast<size_t>(n) &&
             std::memcmp(earlier_.data() + same, bytes.data() + at + len + same, kBlockSize) == 0) {
        same += kBlockSize;
      }
      len += same;
      if (same < want) break;
    }
    if (len < kMinRun) {  // short, a hash collision, or the earlier bytes changed since: sent as they are
      at += static_cast<size_t>(std::max<uint64_t>(len, kBlockSize));
      continue;
    }
    Run* last = runs.empty() ? nullptr : &runs.back();
    if (last && last->offset + last->size == o && last->from + last->size == from && from + len <= last->offset) {
      last->size += len;  // one run still: it continues where the last one's source did, and ends before it
    } else {
      runs.push_back({o, from, len});
    }
    at += static_cast<size_t>(len);
  }
  return runs;
}

uint64_t RunDigest(std::span<const uint64_t> hashes) {
  std::string bytes;
  bytes.reserve(hashes.size() * 8);
  for (uint64_t h : hashes) PutU64(bytes, h);
  return chunk::Xxh64({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

BlockHasher::BlockHasher(uint64_t size) : size_(size) {
  hashes_.reserve(static_cast<size_t>((size + kBlockSize - 1) / kBlockSize));
  partial_.reserve(kBlockSize);
}

void BlockHasher::ZerosTo(uint64_t offset) {
  static const std::vector<uint8_t> zeros(kBlockSize, 0);
  static const uint64_t zero_hash = BlockHash(zeros);
  while (at_ < offset) {
    if (partial_.empty() && offset - at_ >= kBlockSize) {
      hashes_.push_back(zero_hash);
      at_ += kBlockSize;
      continue;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(offset - at_, kBlockSize - partial_.size()));
    partial_.insert(partial_.end(), n, 0);
    at_ += n;
    if (partial_.size() == kBlockSize) {
      hashes_.push_back(BlockHash(partial_));
      partial_.clear();
    }
  }
}

void BlockHasher::Add(uint64_t offset, std::span<const uint8_t> bytes) {
  if (offset < at_) return;  // never happens for bytes in offset order
  ZerosTo(offset);
  if (at_ + bytes.size() > size_) bytes = bytes.first(static_cast<size_t>(size_ - std::min(size_, at_)));
  while (!bytes.empty()) {
    if (partial_.empty() && bytes.size() >= kBlockSize) {
      hashes_.push_back(BlockHash(bytes.first(kBlockSize)));
      bytes = bytes.subspan(kBlockSize);
      at_ += kBlockSize;
      continue;
    }
    size_t n = std::min(bytes.size(), kBlockSize - partial_.size());
    partial_.insert(partial_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    at_ += n;
    if (partial_.size() == kBlockSize) {
      hashes_.push_back(BlockHash(partial_));
      partial_.clear();
    }
  }
}

void BlockHasher::AddBlock(uint64_t offset, std::span<const uint8_t> block, uint64_t hash) {
  if (offset >= at_) ZerosTo(offset);
  bool whole = block.size() == kBlockSize || (!block.empty() && offset + block.size() == size_);
  if (offset != at_ || !partial_.empty() || offset % kBlockSize != 0 || !whole || block.size() > kBlockSize) {
    return Add(offset, block);
  }
  hashes_.push_back(hash);
  at_ += block.size();
}

std::vector<uint64_t> BlockHasher::Finish() {
  ZerosTo(size_);
  if (!partial_.empty()) hashes_.push_back(BlockHash(partial_));
  partial_.clear();
  return std::move(hashes_);
}

std::string EncodeBlocks(const std::string& path, const FileBlocks& b) {
  std::string out(kMagic);
  out.reserve(out.size() + path.size() + 48 + b.hashes.size() * 8);
  PutU32(out, static_cast<uint32_t>(path.size()));
  out += path;
  PutU64(out, b.size);
  PutU64(out, static_cast<uint64_t>(b.mtime_sec));
  PutU32(out, b.mtime_nsec);
  PutU32(out, kBlockSize);
  PutU64(out, b.hashes.size());
  for (uint64_t h : b.hashes) PutU64(out, h);
  PutU64(out, chunk::Xxh64({reinterpret_cast<const uint8_t*>(out.data()), out.size()}));
  return out;
}

std::optional<std::string> PathOfRecord(std::string_view bytes) {
  Cursor c{bytes};
  if (c.Bytes(kMagic.size()) != kMagic) return std::nullopt;
  uint64_t n = c.Int(4);
  if (n > kMaxPath) return std::nullopt;
  auto path = c.Bytes(n);
  if (!c.ok) return std::nullopt;
  return std::string(path);
}

Result<FileBlocks> DecodeBlocks(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 8) return DataLoss("block record too short");
  auto body = bytes.substr(0, bytes.size() - 8);
  Cursor tail{bytes.substr(bytes.size() - 8)};
  if (tail.Int(8) != chunk::Xxh64({reinterpret_cast<const uint8_t*>(body.data()), body.size()})) {
    return DataLoss("block record checksum mismatch");
  }
  Cursor c{body};
  if (c.Bytes(kMagic.size()) != kMagic) return DataLoss("not a block record");
  uint64_t n = c.Int(4);
  if (n > kMaxPath || c.Bytes(n) != path) return DataLoss("block record of another path");
  FileBlocks b;
  b.size = c.Int(8);
  b.mtime_sec = static_cast<int64_t>(c.Int(8));
  b.mtime_nsec = static_cast<uint32_t>(c.Int(4));
  uint64_t block = c.Int(4);
  uint64_t count = c.Int(8);
  if (!c.ok || block != kBlockSize || count > kMaxBlocks || count != (b.size + kBlockSize - 1) / kBlockSize ||
      c.p.size() != count * 8) {
    return DataLoss("malformed block record");
  }
  b.hashes.resize(static_cast<size_t>(count));
  for (auto& h : b.hashes) h = c.Int(8);
  return b;
}

BlockIndex::BlockIndex(std::string dir) : dir_(std::move(dir)) {}

std::string BlockIndex::FileOf(const std::string& path) const {
  auto d = chunk::Sha256({reinterpret_cast<const uint8_t*>(path.data()), path.size()});
  return dir_ + "/" + chunk::Hex(std::span(d).first(16)) + std::string(kSuffix);
}

std::optional<FileBlocks> BlockIndex::Get(const std::string& path) {
  std::lock_guard lock(mu_);
  if (dir_.empty()) {
    auto it = mem_.find(path);
    if (it == mem_.end()) return std::nullopt;
    return it->second;
  }
  auto bytes = ReadFile(FileOf(path), size_t{1} << 36);
  if (!bytes) return std::nullopt;
  auto b = DecodeBlocks(*bytes, path);
  if (!b) {
    spdlog::debug("replication: ignoring the block record of '{}': {}", Printable(path), b.error().message());
    return std::nullopt;
  }
  return std::move(*b);
}

void BlockIndex::Put(const std::string& path, const FileBlocks& blocks) {
  std::lock_guard lock(mu_);
  if (dir_.empty()) {
    mem_[path] = blocks;
    return;
  }
  std::string file = FileOf(path), tmp = file + ".tmp";
  std::string bytes = EncodeBlocks(path, blocks);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  Status s = fd.valid() ? WriteAll(Env::Default(), fd.get(), bytes, tmp) : ErrnoError(errno, "create " + tmp);
  if (s.ok() && ::rename(tmp.c_str(), file.c_str()) != 0) s = ErrnoError(errno, "rename " + tmp);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    ::unlink(file.c_str());  // never leave an older record that might be taken for this version
    spdlog::warn("replication: cannot keep the block record of '{}' ({}): its next change goes by delta",
                 Printable(path), s.error().message());
  }
}

void BlockIndex::Drop(const std::string& path) {
  std::lock_guard lock(mu_);
  if (dir_.empty()) {
    mem_.erase(path);
  } else {
    ::unlink(FileOf(path).c_str());
  }
}

size_t BlockIndex::Prune(const std::set<std::string>& live) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  if (dir_.empty()) {
    for (auto it = mem_.begin(); it != mem_.end();) {
      if (live.count(it->first)) {
        ++it;
      } else {
        it = mem_.erase(it);
        ++n;
      }
    }
    return n;
  }
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (!name.ends_with(kSuffix)) {
      if (name.ends_with(".tmp")) std::filesystem::remove(e.path(), ec);
      continue;
    }
    // The header is enough to name the file: read just that much.
    UniqueFd fd(::open(e.path().c_str(), O_RDONLY | O_CLOEXEC));
    std::string head(kMagic.size() + 4 + kMaxPath, '\0');
    ssize_t r = fd.valid() ? ::pread(fd.get(), head.data(), head.size(), 0) : -1;
    auto path = r > 0 ? PathOfRecord(std::string_view(head).substr(0, static_cast<size_t>(r))) : std::nullopt;
    if (!path || !live.count(*path)) {
      std::filesystem::remove(e.path(), ec);
      ++n;
    }
  }
  return n;
}

}  // namespace lifeboat::replicate
