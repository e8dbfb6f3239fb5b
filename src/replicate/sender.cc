#include "replicate/sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "chunk/fastcdc.h"
#include "fstree/tree.h"
#include "replicate/direct_reader.h"

namespace lifeboat::replicate {
namespace {

constexpr size_t kFlushAt = 256 * 1024;
// The bytes of a DATA frame are read, hashed, searched for repeats and
// encrypted one after the other, and at the target decrypted and written:
// at 256 KiB they stay in the core's L2 cache through all of it. 1 MiB
// frames cost each side 10-60 % more CPU for a 4 GiB file (bench/RESULTS.md,
// "DATA frames of 256 KiB": the benchmark and the probes beside it).
constexpr size_t kDataFrame = 256 << 10;
// Read-ahead of the files to send: this many, or this many bytes, ahead.
constexpr size_t kPrefetchFiles = 64;
constexpr uint64_t kPrefetchBytes = 32 << 20;
// DATA frames at least this large are sent from their own buffer.
constexpr size_t kDirectRead = 64 << 10;
// A DATA frame's header: length, type, offset, byte count.
constexpr size_t kFrameHeader = 4 + 1 + 8 + 4;
// A file at least this large, sent whole, is read past the page cache
// (DirectReader).
constexpr uint64_t kDirectReadMin = 8 << 20;
// Files at least this large are sent as a delta even when the target has no
// file at the path: it may hold a partial copy from an interrupted transfer.
constexpr uint64_t kDeltaMinSize = 1 << 20;
constexpr size_t kDeltaWindow = 16;
// Reads of a file being planned for a patch: whole blocks.
constexpr size_t kPatchRead = 1 << 20;
// A patch is sent when at most this part of the file changed (1/4).
constexpr uint64_t kPatchMaxChangedPart = 4;
// Blocks compared before a file is read whole to plan a patch: more than 3/8
// of them different, and it goes as a delta at once.
constexpr uint64_t kPatchSamples = 64;
// Moved blocks are sent when at most this many of the sample are found
// neither where they were nor shifted by the change of size (several
// insertions of other sizes shift parts by other amounts, and content-defined
// chunks find those).
constexpr uint64_t kMovedMaxLost = kPatchSamples / 8;
static_assert(kPatchRead % kBlockSize == 0);

// Whether the block record describes the version `t` the target lists.
int64_t MillisBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

bool Matches(const FileBlocks& b, const Entry& t) {
  return b.size == t.size && b.mtime_sec == t.meta.mtime_sec && b.mtime_nsec == t.meta.mtime_nsec;
}

std::string MetaDiff(const Meta& a, const Meta& b) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (a.mode != b.mode) add("mode");
  if (a.uid != b.uid || a.gid != b.gid) add("owner");
  if (a.mtime_sec != b.mtime_sec || a.mtime_nsec != b.mtime_nsec) add("mtime");
  return out;
}

// A name as PickBasis compares it: without the leading dots and '#' that
// editors' and tools' temporary names add.
std::string_view BasisStem(std::string_view name) {
  while (!name.empty() && (name.front() == '.' || name.front() == '#')) name.remove_prefix(1);
  return name;
}

}  // namespace

bool BasisCandidate(std::string_view name, std::string_view sibling) {
  std::string_view a = BasisStem(name), b = BasisStem(sibling);
  size_t len = std::min(a.size(), b.size());
  return len > 0 && name != sibling && a.substr(0, len) == b.substr(0, len);
}

std::optional<std::string> PickBasis(std::string_view name, uint64_t size, const std::vector<Sibling>& siblings) {
  const Sibling* best = nullptr;
  size_t best_len = 0;
  uint64_t best_gap = 0;
  for (const auto& s : siblings) {
    if (s.size == 0 || !BasisCandidate(name, s.name)) continue;
    size_t len = std::min(BasisStem(name).size(), BasisStem(s.name).size());
    uint64_t gap = s.size > size ? s.size - size : size - s.size;
    if (best == nullptr || len > best_len || (len == best_len && gap < best_gap)) {
      best = &s;
      best_len = len;
      best_gap = gap;
    }
  }
  if (best == nullptr) return std::nullopt;
  return best->name;
}

std::string Link::BasisFor(const std::string& path, uint64_t size) {
  std::string dir = ParentOf(path);
  std::string_view name = std::string_view(path).substr(dir.empty() ? 0 : dir.size() + 1);
  auto fd = OpenDirBeneath(root_.get(), dir);
  if (!fd) return "";
  auto names = fstree::ListNames(fd->get());
  if (!names) return "";
  std::vector<Sibling> siblings;
  for (const auto& n : *names) {
    if (IsTempName(n) || !BasisCandidate(name, n)) continue;
    struct stat st;
    if (::fstatat(fd->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    siblings.push_back({n, static_cast<uint64_t>(st.st_size)});
  }
  auto best = PickBasis(name, size, siblings);
  return best ? JoinPath(dir, *best) : "";
}

size_t ChunkIdHash::operator()(const ChunkId& id) const {
  size_t h;
  std::memcpy(&h, id.data(), sizeof(h));
  return h;
}

std::vector<Root> WithParents(std::vector<Root> roots) {
  size_t n = roots.size();
  for (size_t i = 0; i < n; ++i) {
    if (!roots[i].path.empty()) roots.push_back({ParentOf(roots[i].path), false});
  }
  return NormalizeRoots(std::move(roots));
}

std::vector<Root> NormalizeRoots(std::vector<Root> roots) {
  std::sort(roots.begin(), roots.end(), [](const Root& a, const Root& b) {
    return a.path != b.path ? a.path < b.path : a.recursive > b.recursive;
  });
  std::vector<Root> out;
  std::vector<std::string> recursive;
  for (auto& r : roots) {
    bool covered =
        std::any_of(recursive.begin(), recursive.end(), [&](const std::string& d) { return IsWithin(r.path, d); });
    if (covered) continue;
    if (!out.empty() && out.back().path == r.path) continue;
    if (r.recursive) recursive.push_back(r.path);
    out.push_back(std::move(r));
  }
  return out;
}

Link::Link(LinkConfig config, std::unique_ptr<Conn> conn, UniqueFd root)
    : config_(std::move(config)), conn_(std::move(conn)), root_(std::move(root)) {
  reader_ = std::thread([this] { ReadLoop(); });
}

Link::~Link() {
  conn_->Shutdown();
  reader_.join();
}

Result<std::unique_ptr<Link>> Link::Open(const LinkConfig& config, uint8_t mode) {
  UniqueFd root(::open(config.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoError(errno, "open volume " + config.root);
  LB_ASSIGN_OR_RETURN(auto conn, Conn::Connect(config.target, config.key, config.connect_timeout));
  conn->SetRateLimit(config.bandwidth);
  LB_RETURN_IF_ERROR(
      conn->Send(EncodeHello({kProtocolVersion, config.volume, config.region, config.epoch, mode})));
  LB_ASSIGN_OR_RETURN(auto reply, conn->Recv(std::chrono::seconds(10)));
  if (reply.type == static_cast<uint8_t>(Type::kError)) {
    return DecodeError(reply).Wrap("target " + config.target.ToString() + " refused");
  }
  if (reply.type != static_cast<uint8_t>(Type::kWelcome)) {
    return InvalidArgument(std::string("expected WELCOME, got ") + TypeName(reply.type));
  }
  std::unique_ptr<Link> link(new Link(config, std::move(conn), std::move(root)));
  // WELCOME's features: absent from older receivers.
  if (reply.payload.size() >= 4) {
    Reader r(reply.payload);
    uint32_t features = r.U32();
    link->patches_ = (features & kFeaturePatch) != 0;
    link->basis_ = (features & kFeatureBasis) != 0;
    link->moves_ = (features & kFeatureBase) != 0;
    link->repeats_ = (features & kFeatureRepeat) != 0;
  }
  return link;
}

void Link::ReadLoop() {
  while (true) {
    auto f = conn_->Recv();
    std::lock_guard lock(mu_);
    if (!f) {
      if (!failed_) failed_ = f.error();
      cv_.notify_all();
      return;
    }
    if (f->type == static_cast<uint8_t>(Type::kError)) {
      failed_ = DecodeError(*f).Wrap("target " + config_.target.ToString());
      cv_.notify_all();
      return;
    }
    inbox_.push_back(std::move(*f));
    cv_.notify_all();
  }
}

Result<Frame> Link::Next() {
  LB_RETURN_IF_ERROR(Flush());
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !inbox_.empty() || failed_; });
  if (!inbox_.empty()) {
    Frame f = std::move(inbox_.front());
    inbox_.pop_front();
    return f;
  }
  return *failed_;
}

void Link::Queue(std::string frame) {
  out_ += frame;
  if (out_.size() >= kFlushAt) {
    if (Status st = Flush(); !st.ok() && !send_failed_) send_failed_ = st.error();
  }
}

Result<UniqueFd> Link::OpenSource(const std::string& path) {
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  if (int fd = fstree::TryOpenBeneath(root_.get(), path, kFlags); fd >= 0) return UniqueFd(fd);
  auto parent = OpenParent(root_.get(), path);
  if (!parent) return parent.error().code() == Code::kNotFound ? Result<UniqueFd>(UniqueFd()) : parent.error();
  UniqueFd fd(::openat(parent->dir.get(), parent->base.c_str(), kFlags));
  if (!fd.valid() && errno != ENOENT && errno != ELOOP) return ErrnoError(errno, "open '" + Printable(path) + "'");
  return fd;
}

Status Link::Flush() {
  if (send_failed_) return *send_failed_;  // the session is broken; the caller ends it
  if (out_.empty()) return Ok();
  std::string out = std::move(out_);
  out_.clear();
  return SendNow(out);
}

Status Link::SendNow(std::string_view frames) {
  {
    std::lock_guard lock(mu_);
    if (failed_) return *failed_;  // the target has ended the session: sending more is waste
  }
  Status st = conn_->Send(frames);
  if (!st.ok()) {
    // The target's ERROR, read by ReadLoop, explains the end better than a
    // send error; it may be a moment behind.
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::seconds(1), [&] { return failed_.has_value(); })) return *failed_;
  }
  return st;
}

Result<Link::Sent> Link::QueueRead(int fd, uint64_t off, size_t len, const std::string& path, BlockHasher* hasher,
                                   RepeatFinder* repeats) {
  // The frame is built around the bytes where they are read: a large one in
  // a buffer of its own, sent at once after what is queued; a small one at
  // the end of the queue.
  len = std::min(len, kDataFrame);
  bool direct = len >= kDirectRead;
  if (direct && data_frame_.size() < kFrameHeader + kDataFrame) data_frame_.resize(kFrameHeader + kDataFrame);
  std::string& buf = direct ? data_frame_ : out_;
  size_t at = direct ? 0 : out_.size();
  if (!direct) out_.resize(at + kFrameHeader + len);
  ssize_t n;
  do n = ::pread(fd, buf.data() + at + kFrameHeader, len, static_cast<off_t>(off));
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    if (!direct) out_.resize(at);
    if (n < 0) return ErrnoError(errno, "read '" + Printable(path) + "'");
    return Sent{};
  }
  auto* bytes = reinterpret_cast<uint8_t*>(buf.data() + at + kFrameHeader);
  if (direct) return SendRead(fd, off, bytes, static_cast<size_t>(n), path, hasher, repeats);
  LB_ASSIGN_OR_RETURN(auto sent, HashAndRepeat(fd, off, {bytes, static_cast<size_t>(n)}, path, hasher, repeats, &at));
  if (sent) return *sent;
  PutDataHeader(bytes, off, static_cast<size_t>(n));
  out_.resize(at + kFrameHeader + static_cast<size_t>(n));
  if (out_.size() >= kFlushAt) {
    if (Status st = Flush(); !st.ok() && !send_failed_) send_failed_ = st.error();
  }
  return Sent{static_cast<size_t>(n), 0};
}

Result<std::optional<Link::Sent>> Link::HashAndRepeat(int fd, uint64_t off, std::span<const uint8_t> bytes,
                                                      const std::string& path, BlockHasher* hasher,
                                                      RepeatFinder* repeats, const size_t* queued_at) {
  if (hasher) hasher->Add(off, bytes);
  if (!repeats) return std::optional<Sent>();
  auto runs = repeats->Scan(fd, off, bytes);
  if (!runs.ok()) return runs.error().Wrap("'" + Printable(path) + "'");
  if (runs->empty()) return std::optional<Sent>();
  return std::optional<Sent>(QueueRepeats(off, bytes, *runs, queued_at));
}

void Link::PutDataHeader(uint8_t* bytes, uint64_t off, size_t n) {
  uint8_t* h = bytes - kFrameHeader;
  auto put = [&](size_t pos, uint64_t v, int width) {
    for (int i = 0; i < width; ++i) h[pos + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * (width - 1 - i)));
  };
  put(0, 1 + 8 + 4 + static_cast<uint64_t>(n), 4);
  h[4] = static_cast<uint8_t>(Type::kData);
  put(5, off, 8);
  put(13, static_cast<uint64_t>(n), 4);
}

Result<Link::Sent> Link::SendRead(int fd, uint64_t off, uint8_t* bytes, size_t n, const std::string& path,
                                  BlockHasher* hasher, RepeatFinder* repeats) {
  if (n == 0) return Sent{};
  LB_ASSIGN_OR_RETURN(auto sent, HashAndRepeat(fd, off, {bytes, n}, path, hasher, repeats, nullptr));
  if (sent) return *sent;
  PutDataHeader(bytes, off, n);
  LB_RETURN_IF_ERROR(Flush());
  if (Status st = SendNow({reinterpret_cast<const char*>(bytes - kFrameHeader), kFrameHeader + n}); !st.ok()) {
    if (!send_failed_) send_failed_ = st.error();
    return st.error();
  }
  return Sent{n, 0};
}

Link::Sent Link::QueueRepeats(uint64_t off, std::span<const uint8_t> bytes,
                              const std::vector<RepeatFinder::Run>& runs, const size_t* queued_at) {
  // A small read sits at the end of the queue, where the frames go: move it out first.
  std::string moved;
  if (queued_at) {
    moved.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    bytes = {reinterpret_cast<const uint8_t*>(moved.data()), moved.size()};
    out_.resize(*queued_at);
  }
  auto literal = [&](uint64_t from, uint64_t to) {
    if (from == to) return;
    auto part = bytes.subspan(static_cast<size_t>(from - off), static_cast<size_t>(to - from));
    Queue(Writer(Type::kData).U64(from).Str({reinterpret_cast<const char*>(part.data()), part.size()}).Finish());
  };
  Sent sent{bytes.size(), 0};
  uint64_t at = off;
  for (const auto& r : runs) {
    literal(at, r.offset);
    Queue(Writer(Type::kRepeat).U64(r.offset).U64(r.from).U64(r.size).Finish());
    sent.repeated += static_cast<size_t>(r.size);
    at = r.offset + r.size;
  }
  literal(at, off + bytes.size());
  return sent;
}

void Link::QueueLiteral(std::string& bytes, uint64_t offset, Progress* progress) {
  if (bytes.empty()) return;
  Queue(Writer(Type::kData).U64(offset).Str(bytes).Finish());
  if (progress) progress->bytes_literal += bytes.size();
  bytes.clear();
}

Status Link::RequestLists(const std::vector<Root>& roots, uint8_t flags) {
  for (const auto& r : roots) {
    Queue(Writer(Type::kList).U32(next_id_++).Str(r.path).U8(flags | (r.recursive ? kListRecursive : 0)).Finish());
  }
  return Flush();
}

Status Link::CollectLists(size_t count, std::map<std::string, Entry>& target) {
  for (size_t done = 0; done < count;) {
    LB_ASSIGN_OR_RETURN(auto f, Next());
    Reader r(f.payload);
    if (f.type == static_cast<uint8_t>(Type::kListEnd)) {
      r.U32();
      LB_RETURN_IF_ERROR(r.Finish(f.type));
      ++done;
      continue;
    }
    if (f.type != static_cast<uint8_t>(Type::kEntries)) {
      return InvalidArgument(std::string("expected ENTRIES, got ") + TypeName(f.type));
    }
    r.U32();
    uint32_t n = r.U32();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
      Entry e = r.GetEntry();
      if (r.ok()) target.insert_or_assign(e.path, std::move(e));
    }
    LB_RETURN_IF_ERROR(r.Finish(f.type));
  }
  return Ok();
}

Status Link::ScanSource(const std::vector<Root>& roots, bool hashes, std::map<std::string, Entry>& out) {
  for (const auto& r : roots) {
    auto add = [&](Entry& e) -> Status {
      std::string p = e.path;
      out.insert_or_assign(std::move(p), std::move(e));
      return Ok();
    };
    LB_RETURN_IF_ERROR(WalkParallel(root_.get(), r.path, r.recursive, hashes, kScanThreads, add));
  }
  return Ok();
}

Status Link::AwaitCommit(uint64_t seq) {
  while (committed_ < seq) {
    LB_ASSIGN_OR_RETURN(auto f, Next());
    if (f.type != static_cast<uint8_t>(Type::kCommitted)) {
      return InvalidArgument(std::string("expected COMMITTED, got ") + TypeName(f.type));
    }
    Reader r(f.payload);
    committed_ = r.U64();
    LB_RETURN_IF_ERROR(r.Finish(f.type));
  }
  return Ok();
}

Result<std::unordered_map<ChunkId, uint32_t, ChunkIdHash>> Link::AwaitChunks() {
  std::unordered_map<ChunkId, uint32_t, ChunkIdHash> chunks;
  while (true) {
    LB_ASSIGN_OR_RETURN(auto f, Next());
    Reader r(f.payload);
    if (f.type == static_cast<uint8_t>(Type::kDeltaEnd)) {
      r.U32();
      LB_RETURN_IF_ERROR(r.Finish(f.type));
      return chunks;
    }
    if (f.type != static_cast<uint8_t>(Type::kDeltaChunks)) {
      return InvalidArgument(std::string("expected DELTA_CHUNKS, got ") + TypeName(f.type));
    }
    r.U32();
    uint32_t n = r.U32();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
      r.U64();
      uint32_t size = r.U32();
      ChunkId id;
      r.Raw(id);
      chunks.emplace(id, size);
    }
    LB_RETURN_IF_ERROR(r.Finish(f.type));
  }
}

Status Link::SendFile(const Entry& s, const std::unordered_map<ChunkId, uint32_t, ChunkIdHash>* chunks,
                      const SyncOptions& options) {
  LB_ASSIGN_OR_RETURN(UniqueFd fd, OpenSource(s.path));
  if (!fd.valid()) return Ok();  // gone or replaced: a later event covers it
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat '" + Printable(s.path) + "'");
  if (!S_ISREG(st.st_mode)) return Ok();
  uint64_t size = static_cast<uint64_t>(st.st_size);
  Queue(Writer(Type::kFileBegin).Str(s.path).Put(MetaOf(st)).U64(size).Finish());
  LB_ASSIGN_OR_RETURN(auto extents, DataExtents(fd.get(), size));
  Progress* progress = options.progress;
  // The file counts max(scanned, current) bytes in both the total and the
  // done of the progress: a file that grew since the scan pushed done past
  // the total, holes and a shrunk file left it short.
  uint64_t counted = 0, counts_for = std::max(size, s.size);
  if (progress && size > s.size) progress->bytes_total += size - s.size;
  std::string literal;
  uint64_t literal_at = 0;
  auto flush_literal = [&] { QueueLiteral(literal, literal_at, progress); };
  // A large file's block hashes, from the bytes as they go: its next change
  // can then travel as an in-place patch.
  std::optional<BlockHasher> hasher;
  if (patches_ && config_.blocks != nullptr && size >= kPatchMinSize) hasher.emplace(size);
  // A file sent whole: its blocks that repeat earlier ones go as REPEAT.
  std::optional<RepeatFinder> repeats;
  uint64_t repeated = 0;
  if (repeats_ && size >= kDeltaMinSize && (chunks == nullptr || chunks->empty())) repeats.emplace();
  // A large file sent whole is read past the page cache, ahead of the send.
  std::unique_ptr<DirectReader> reader;
  if (size >= kDirectReadMin && (chunks == nullptr || chunks->empty())) {
    reader = DirectReader::Open(fd.get(), extents, kDataFrame, s.path);
  }
  auto emit = [&](uint64_t off, std::span<const uint8_t> b) -> Status {
    if (!literal.empty() && literal_at + literal.size() != off) flush_literal();
    if (literal.empty()) literal_at = off;
    literal.append(reinterpret_cast<const char*>(b.data()), b.size());
    if (literal.size() >= kDataFrame) flush_literal();
    if (progress) progress->bytes_done += b.size();
    counted += b.size();
    return Ok();
  };
  for (auto [off, len] : extents) {
    if (chunks != nullptr && !chunks->empty()) {
      auto params = chunk::ChunkParams::ForFileSize(size);
      LB_RETURN_IF_ERROR(chunk::ChunkRange(fd.get(), off, len, params, [&](uint64_t o, std::span<const uint8_t> b) {
        if (hasher) hasher->Add(o, b);
        ChunkId id = IdOf(b);
        auto it = chunks->find(id);
        if (it == chunks->end() || it->second != b.size()) return emit(o, b);
        flush_literal();
        Queue(Writer(Type::kCopy).U64(o).Raw(id).U32(static_cast<uint32_t>(b.size())).Finish());
        if (progress) progress->bytes_done += b.size();
        counted += b.size();
        return Status(Ok());
      }));
    } else {
      flush_literal();
      uint64_t done = 0;
      while (done < len) {
        // Read straight into the frame: the bytes are copied once, then encrypted.
        size_t want = static_cast<size_t>(std::min<uint64_t>(len - done, kDataFrame));
        Sent got;
        if (reader) {  // the reader cuts the extents into pieces the same way
          LB_ASSIGN_OR_RETURN(DirectReader::Piece piece, reader->Next());
          LB_ASSIGN_OR_RETURN(got, SendRead(fd.get(), piece.offset, piece.bytes, piece.size, s.path,
                                            hasher ? &*hasher : nullptr, repeats ? &*repeats : nullptr));
          done += want;
          // Its blocks repeat: the repeats found next are checked against
          // the file's earlier bytes, best read back from the page cache.
          if (got.repeated > 0) reader->ReadBuffered();
        } else {
          LB_ASSIGN_OR_RETURN(got, QueueRead(fd.get(), off + done, want, s.path, hasher ? &*hasher : nullptr,
                                             repeats ? &*repeats : nullptr));
          if (got.read == 0) break;  // shrank while read: its next event resends it
          done += got.read;
        }
        if (progress) {
          progress->bytes_done += got.read;
          progress->bytes_literal += got.read - got.repeated;
        }
        repeated += got.repeated;
        counted += got.read;
      }
    }
  }
  flush_literal();
  Queue(Writer(Type::kFileEnd).Finish());
  if (progress) {
    if (counted < counts_for) progress->bytes_done += counts_for - counted;
    progress->files_done += 1;
  }
  if (hasher) {
    // What was not read (the file shrank meanwhile) the target has as zeros,
    // and so does the record. A REPEAT gave the target the bytes sent at its
    // source offset, which the record holds only if the file did not change
    // while it was sent: else the record goes, and the next change is a delta.
    struct stat now;
    if (repeated > 0 && (::fstat(fd.get(), &now) != 0 || now.st_size != st.st_size ||
                         now.st_ctim.tv_sec != st.st_ctim.tv_sec || now.st_ctim.tv_nsec != st.st_ctim.tv_nsec)) {
      config_.blocks->Drop(s.path);
    } else {
      Meta m = MetaOf(st);
      config_.blocks->Put(s.path, {size, m.mtime_sec, m.mtime_nsec, hasher->Finish()});
    }
  }
  return Ok();
}

std::optional<FileBlocks> Link::PatchBase(const Entry& s, const Entry& t, const SyncOptions& options) {
  // Verify repairs what it found different: the target's bytes are not what
  // the record says, so such a file is rebuilt, never patched.
  if (!patches_ || config_.blocks == nullptr || options.hashes || s.size < kPatchMinSize || t.nlink != 1) {
    return std::nullopt;
  }
  auto b = config_.blocks->Get(s.path);
  if (!b || !Matches(*b, t)) return std::nullopt;
  return b;
}

// Reads `want` bytes of `fd` at `off` into `buf`; what lies past the end
// (the file shrank since it was listed) reads as zeros.
static Status ReadPadded(int fd, uint8_t* buf, size_t want, uint64_t off, const std::string& path) {
  ssize_t n;
  do n = ::pread(fd, buf, want, static_cast<off_t>(off));
  while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError(errno, "read '" + Printable(path) + "'");
  if (static_cast<size_t>(n) < want) std::memset(buf + n, 0, want - static_cast<size_t>(n));
  return Ok();
}

Result<Link::How> Link::PlanUpdate(const Entry& s, const FileBlocks& base, PatchPlan& plan) {
  LB_ASSIGN_OR_RETURN(UniqueFd fd, OpenSource(s.path));
  if (!fd.valid()) return How::kDelta;  // gone: SendFile finds so, and a later event covers it
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat '" + Printable(s.path) + "'");
  if (!S_ISREG(st.st_mode)) return How::kDelta;
  plan.size = static_cast<uint64_t>(st.st_size);
  plan.meta = MetaOf(st);
  plan.base = {base.size, base.mtime_sec, base.mtime_nsec, {}};
  plan.hashes.reserve(static_cast<size_t>((plan.size + kBlockSize - 1) / kBlockSize));
  // A sample of blocks first: when far more than a quarter of them differ
  // (an insertion or deletion early in the file shifts all that follows),
  // the file is not read whole here. Moved blocks, when most of the sample
  // is found where it was or shifted by the change of size; else a delta.
  std::vector<uint8_t> buf(kPatchRead);
  uint64_t common = std::min<uint64_t>((plan.size + kBlockSize - 1) / kBlockSize, base.hashes.size());
  int64_t shift = static_cast<int64_t>(plan.size) - static_cast<int64_t>(base.size);
  if (common >= kPatchSamples * 4) {
    size_t differ = 0, lost = 0;
    for (uint64_t k = 0; k < kPatchSamples; ++k) {
      uint64_t i = k * common / kPatchSamples;
      uint64_t off = i * kBlockSize;
      size_t want = static_cast<size_t>(std::min<uint64_t>(kBlockSize, plan.size - off));
      LB_RETURN_IF_ERROR(ReadPadded(fd.get(), buf.data(), want, off, s.path));
      if (BlockHash({buf.data(), want}) == base.hashes[i]) continue;
      ++differ;
      int64_t moved = static_cast<int64_t>(off) + shift;
      want = static_cast<size_t>(std::min<uint64_t>(kBlockSize, base.size - off));
      if (moved < 0 || static_cast<uint64_t>(moved) + want > plan.size) {
        ++lost;
        continue;
      }
      LB_RETURN_IF_ERROR(ReadPadded(fd.get(), buf.data(), want, static_cast<uint64_t>(moved), s.path));
      if (BlockHash({buf.data(), want}) != base.hashes[i]) ++lost;
    }
    if (differ > kPatchSamples * 3 / 8) return moves_ && lost <= kMovedMaxLost ? How::kMoved : How::kDelta;
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  for (uint64_t off = 0; off < plan.size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), plan.size - off));
    LB_RETURN_IF_ERROR(ReadPadded(fd.get(), buf.data(), want, off, s.path));
    for (size_t at = 0; at < want; at += kBlockSize) {
      size_t len = std::min<size_t>(kBlockSize, want - at);
      uint64_t h = BlockHash({buf.data() + at, len});
      size_t i = plan.hashes.size();
      plan.hashes.push_back(h);
      if (i < base.hashes.size() && base.hashes[i] == h) continue;
      uint64_t o = off + at;
      if (!plan.runs.empty() && plan.runs.back().first + plan.runs.back().second == o) {
        plan.runs.back().second += len;
      } else {
        plan.runs.emplace_back(o, len);
      }
      plan.changed += len;
    }
    // Too much differs for a patch (an insertion late in the file shifted
    // all that follows, or many scattered writes): the rest need not be read.
    if (plan.changed > plan.size / kPatchMaxChangedPart) return moves_ ? How::kMoved : How::kDelta;
    off += want;
  }
  return How::kPatch;
}

Status Link::SendPatch(const Entry& s, PatchPlan& plan, const SyncOptions& options) {
  Progress* progress = options.progress;
  auto opened = OpenSource(s.path);
  UniqueFd fd = opened ? std::move(*opened) : UniqueFd();
  if (!fd.valid()) {  // gone or replaced since planned (or unreadable): a later event covers it
    if (progress) progress->files_done += 1;
    config_.blocks->Drop(s.path);
    return Ok();
  }
  Queue(Writer(Type::kPatchBegin).Str(s.path).U64(plan.base.size).U64(static_cast<uint64_t>(plan.base.mtime_sec))
            .U32(plan.base.mtime_nsec).Put(plan.meta).U64(plan.size).Finish());
  std::vector<uint8_t> buf;
  for (auto [off, len] : plan.runs) {
    for (uint64_t done = 0; done < len;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(len - done, kDataFrame));
      buf.resize(want);
      // Shrank since planned: the target gets zeros there (and its size).
      LB_RETURN_IF_ERROR(ReadPadded(fd.get(), buf.data(), want, off + done, s.path));
      // The record describes what the target gets: the blocks sent are
      // hashed again as sent, since the file may have changed since it was
      // planned (runs start on block boundaries and frames hold whole blocks).
      for (size_t at = 0; at < want; at += kBlockSize) {
        size_t i = static_cast<size_t>((off + done + at) / kBlockSize);
        plan.hashes[i] = BlockHash({buf.data() + at, std::min<size_t>(kBlockSize, want - at)});
      }
      Queue(Writer(Type::kData).U64(off + done).Str({reinterpret_cast<const char*>(buf.data()), want}).Finish());
      if (progress) progress->bytes_literal += want;
      done += want;
    }
  }
  Queue(Writer(Type::kFileEnd).Finish());
  if (progress) {
    // Like SendFile: max(scanned, sent) in both the total and the done.
    if (plan.size > s.size) progress->bytes_total += plan.size - s.size;
    progress->bytes_done += std::max(s.size, plan.size);
    progress->files_done += 1;
    progress->files_patched += 1;
  }
  // Blocks not sent are as the target had them (unchanged when planned),
  // the ones sent as hashed above: the record is the target's new version
  // even when the file changed meanwhile (then its mtime moved, and the next
  // pass patches again).
  config_.blocks->Put(s.path, {plan.size, plan.meta.mtime_sec, plan.meta.mtime_nsec, std::move(plan.hashes)});
  return Ok();
}

Status Link::SendMoved(const Entry& s, const FileBlocks& base, const SyncOptions& options) {
  Progress* progress = options.progress;
  auto opened = OpenSource(s.path);
  UniqueFd fd = opened ? std::move(*opened) : UniqueFd();
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    // Gone or replaced since planned (or unreadable): a later event covers it.
    if (progress) progress->files_done += 1;
    config_.blocks->Drop(s.path);
    return Ok();
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  Meta meta = MetaOf(st);
  Queue(Writer(Type::kBaseBegin).Str(s.path).U64(base.size).U64(static_cast<uint64_t>(base.mtime_sec))
            .U32(base.mtime_nsec).Put(meta).U64(size).Finish());
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  // The file is read once, in order: what is sent and what the new record
  // says are those bytes (a base block is copied only where its hash is
  // that of the bytes read at its new place).
  BlockHasher hasher(size);
  std::vector<uint8_t> buf;
  uint64_t buf_at = 0;  // the file offset of buf[0]
  auto have = [&](uint64_t p, uint64_t n) -> Result<const uint8_t*> {
    if (p + n > buf_at + buf.size()) {
      buf.erase(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(p - buf_at));
      buf_at = p;
      size_t old = buf.size();
      size_t want = static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(n - old, kPatchRead), size - p - old));
      buf.resize(old + want);
      LB_RETURN_IF_ERROR(ReadPadded(fd.get(), buf.data() + old, want, p + old, s.path));
    }
    return buf.data() + (p - buf_at);
  };
  std::string literal;
  uint64_t literal_at = 0;
  auto flush_literal = [&] { QueueLiteral(literal, literal_at, progress); };
  uint64_t copy_at = 0, copy_from = 0, copy_len = 0;  // a run of base blocks, sent as one COPY_BASE
  auto flush_copy = [&] {
    if (copy_len == 0) return;
    size_t first = static_cast<size_t>(copy_from / kBlockSize);
    size_t count = static_cast<size_t>((copy_len + kBlockSize - 1) / kBlockSize);
    uint64_t digest = RunDigest(std::span<const uint64_t>(base.hashes).subspan(first, count));
    Queue(Writer(Type::kCopyBase).U64(copy_at).U64(copy_from).U64(copy_len).U64(digest).Finish());
    copy_len = 0;
  };
  uint64_t blocks = base.hashes.size();
  int64_t shift = static_cast<int64_t>(size) - static_cast<int64_t>(base.size);
  // The base block that would lie at `p` unmoved (a = 0) or shifted (a = 1);
  // and how far `p` is past that grid.
  auto grid = [&](uint64_t p, int a) -> std::pair<int64_t, uint64_t> {
    int64_t q = static_cast<int64_t>(p) - (a == 0 ? 0 : shift);
    int64_t past = ((q % kBlockSize) + kBlockSize) % kBlockSize;
    return {(q - past) / static_cast<int64_t>(kBlockSize), static_cast<uint64_t>(past)};
  };
  for (uint64_t p = 0; p < size;) {
    bool copied = false;
    uint64_t next = size;
    for (int a = 0; a < (shift == 0 ? 1 : 2) && !copied; ++a) {
      auto [j, past] = grid(p, a);
      next = std::min(next, p + (kBlockSize - past));
      if (past != 0 || j < 0 || static_cast<uint64_t>(j) >= blocks) continue;
      uint64_t from = static_cast<uint64_t>(j) * kBlockSize;
      uint64_t len = std::min<uint64_t>(kBlockSize, base.size - from);
      if (len > size - p) continue;
      LB_ASSIGN_OR_RETURN(const uint8_t* b, have(p, len));
      uint64_t hash = BlockHash({b, static_cast<size_t>(len)});
      if (hash != base.hashes[static_cast<size_t>(j)]) continue;
      flush_literal();
      if (copy_len == 0 || copy_at + copy_len != p || copy_from + copy_len != from) {
        flush_copy();
        copy_at = p;
        copy_from = from;
      }
      copy_len += len;
      hasher.AddBlock(p, {b, static_cast<size_t>(len)}, hash);
      p += len;
      copied = true;
    }
    if (copied) continue;
    // Nothing of the base starts here: bytes up to the next place one could.
    uint64_t n = std::min(next, size) - p;
    LB_ASSIGN_OR_RETURN(const uint8_t* b, have(p, n));
    flush_copy();
    if (literal.empty()) literal_at = p;
    literal.append(reinterpret_cast<const char*>(b), static_cast<size_t>(n));
    hasher.Add(p, {b, static_cast<size_t>(n)});
    p += n;
    if (literal.size() >= kDataFrame) flush_literal();
  }
  flush_literal();
  flush_copy();
  Queue(Writer(Type::kFileEnd).Finish());
  if (progress) {
    if (size > s.size) progress->bytes_total += size - s.size;
    progress->bytes_done += std::max(s.size, size);
    progress->files_done += 1;
  }
  config_.blocks->Put(s.path, {size, meta.mtime_sec, meta.mtime_nsec, hasher.Finish()});
  return Ok();
}

Result<std::vector<Difference>> Link::Sync(const std::vector<std::pair<std::string, std::string>>& renames,
                                           std::vector<Root> roots, const SyncOptions& options) {
  for (const auto& [from, to] : renames) Queue(Writer(Type::kRename).Str(from).Str(to).Finish());
  // Writing an entry moves its directory's mtime at the target: compare the
  // parents too, so that their metadata is set again afterwards.
  roots = NormalizeRoots(WithParents(std::move(roots)));
  uint8_t flags = options.hashes ? kListHashes : 0;
  // Ask the target first, so that it lists while this side scans.
  LB_RETURN_IF_ERROR(RequestLists(roots, flags));
  std::map<std::string, Entry> source, target;
  auto started = std::chrono::steady_clock::now();
  LB_RETURN_IF_ERROR(ScanSource(roots, options.hashes, source));
  auto scanned = std::chrono::steady_clock::now();
  LB_RETURN_IF_ERROR(CollectLists(roots.size(), target));
  spdlog::debug("replication {}: {} entries here scanned in {} ms, {} at the target listed {} ms later", config_.volume,
                source.size(), MillisBetween(started, scanned), target.size(),
                MillisBetween(scanned, std::chrono::steady_clock::now()));
  // Hard links: a changed file may have names outside the roots; bring the
  // ones the index knows into the comparison.
  if (options.links != nullptr) {
    bool full = roots.size() == 1 && roots[0].path.empty() && roots[0].recursive;
    if (full) options.links->clear();
    std::map<uint64_t, int> seen;
    for (const auto& [path, e] : source) {
      if (e.type == EntryType::kFile && e.nlink > 1) {
        (*options.links)[e.ino].insert(path);
        ++seen[e.ino];
      }
    }
    std::vector<Root> extra;
    for (const auto& [ino, n] : seen) {
      auto& names = (*options.links)[ino];
      if (n >= static_cast<int>(names.size())) continue;
      for (const auto& p : names) {
        if (!source.count(p)) extra.push_back({p, false});
      }
    }
    if (!extra.empty()) {
      extra = WithParents(std::move(extra));
      std::erase_if(extra, [&](const Root& r) { return source.count(r.path) || target.count(r.path); });
      LB_RETURN_IF_ERROR(RequestLists(extra, flags));
      LB_RETURN_IF_ERROR(ScanSource(extra, options.hashes, source));
      LB_RETURN_IF_ERROR(CollectLists(extra.size(), target));
    }
  }

  std::vector<Difference> diffs;
  // Directories whose entries this pass changes at the target (which moves
  // their mtime there): their metadata is set again at the end.
  std::set<std::string> changed_dirs;
  for (const auto& [from, to] : renames) {
    changed_dirs.insert(ParentOf(from));
    changed_dirs.insert(ParentOf(to));
  }
  // 1. Whatever the target has that the source does not (or of another type).
  std::vector<std::string> deleted;
  for (const auto& [path, t] : target) {
    auto s = source.find(path);
    if (s != source.end() && s->second.type == t.type) continue;
    bool under_deleted = std::any_of(deleted.begin(), deleted.end(),
                                     [&p = path](const std::string& d) { return IsWithin(p, d); });
    if (under_deleted) continue;
    if (s == source.end()) {
      diffs.push_back({path, "extra", std::string(Name(t.type)) + " only at the target"});
    } else {
      diffs.push_back({path, "type", std::string(Name(s->second.type)) + " here, " + Name(t.type) + " at the target"});
    }
    if (path.empty()) continue;  // the root itself is never deleted
    deleted.push_back(path);
    changed_dirs.insert(ParentOf(path));
    if (options.apply) Queue(Writer(Type::kDelete).Str(path).Finish());
  }
  auto target_of = [&](const std::string& path, EntryType type) -> const Entry* {
    auto it = target.find(path);
    return it != target.end() && it->second.type == type ? &it->second : nullptr;
  };

  // 2. What the source has: decide per entry, sending in path order (parents
  // first). Files go through a window of delta requests sent ahead.
  struct Send {
    const Entry* entry;
    How how;
    std::unique_ptr<PatchPlan> patch;  // for kPatch; for kMoved, its base
    std::string basis;                 // for kDelta of a file the target lacks: its likely old version
    std::optional<FileBlocks> base;    // for kPlan: the recorded version the target holds
  };
  std::vector<Send> files;
  std::vector<std::pair<std::string, std::string>> links;  // path, leader
  std::vector<const Entry*> dir_meta;                       // directories whose metadata to set at the end
  std::map<uint64_t, std::string> leaders;  // source inode -> first path
  std::set<std::string> resent;
  for (const auto& [path, s] : source) {
    const Entry* t = target_of(path, s.type);
    switch (s.type) {
      case EntryType::kDir:
        if (t == nullptr) {
          if (!path.empty()) {
            diffs.push_back({path, "missing", "directory"});
            if (options.apply) Queue(Writer(Type::kMkdir).Str(path).Put(s.meta).Finish());
            changed_dirs.insert(ParentOf(path));
          }
          dir_meta.push_back(&s);
        } else if (!(t->meta == s.meta)) {
          diffs.push_back({path, "metadata", MetaDiff(s.meta, t->meta)});
          dir_meta.push_back(&s);
        }
        break;
      case EntryType::kFile: {
        if (s.nlink > 1) {
          auto [it, first] = leaders.emplace(s.ino, path);
          if (!first) {
            const Entry* lt = target_of(it->second, EntryType::kFile);
            if (t == nullptr || lt == nullptr || t->ino != lt->ino || resent.count(it->second)) {
              diffs.push_back({path, "link", "not a hard link of '" + Printable(it->second) + "' at the target"});
              links.emplace_back(path, it->second);
              changed_dirs.insert(ParentOf(path));
            }
            break;
          }
        }
        if (t == nullptr && options.defer && options.deferred != nullptr && options.defer(s)) {
          options.deferred->push_back(path);
          break;
        }
        bool content = t == nullptr || t->size != s.size || (options.hashes && t->has_hash && t->hash != s.hash) ||
                       (!options.hashes && (t->meta.mtime_sec != s.meta.mtime_sec ||
                                            t->meta.mtime_nsec != s.meta.mtime_nsec));
        if (t == nullptr) {
          diffs.push_back({path, "missing", "file"});
        } else if (content && (t->size != s.size || options.hashes)) {
          diffs.push_back({path, "content", t->size != s.size ? "size " + std::to_string(s.size) + " here, " +
                                                                    std::to_string(t->size) + " at the target"
                                                              : "different bytes"});
        } else if (!(t->meta == s.meta)) {
          diffs.push_back({path, "metadata", MetaDiff(s.meta, t->meta)});
        }
        if (content) {
          How how = (t != nullptr ? t->size > 0 : s.size >= kDeltaMinSize) ? How::kDelta : How::kWhole;
          auto base = t != nullptr && options.apply ? PatchBase(s, *t, options) : std::nullopt;
          if (base) how = How::kPlan;
          // A file the target lacks may be a new version saved under a
          // temporary name, about to be renamed over the old one: its delta
          // is taken against that old version too (where the target has the
          // directory: not in an initial sync).
          std::string basis;
          if (t == nullptr && how == How::kDelta && basis_ && target_of(ParentOf(path), EntryType::kDir) != nullptr) {
            basis = BasisFor(path, s.size);
          }
          files.push_back({&s, how, nullptr, std::move(basis), std::move(base)});
          resent.insert(path);
          changed_dirs.insert(ParentOf(path));
        } else if (!(t->meta == s.meta)) {
          if (options.apply) Queue(Writer(Type::kSetMeta).Str(path).Put(s.meta).Finish());
        }
        break;
      }
      case EntryType::kSymlink:
        if (t == nullptr || t->link != s.link) {
          diffs.push_back({path, t == nullptr ? "missing" : "content",
                           t == nullptr ? "symlink" : "points to '" + Printable(s.link) + "' here"});
          if (options.apply) Queue(Writer(Type::kSymlink).Str(path).Str(s.link).Put(s.meta).Finish());
          changed_dirs.insert(ParentOf(path));
        } else if (!(t->meta == s.meta)) {
          diffs.push_back({path, "metadata", MetaDiff(s.meta, t->meta)});
          if (options.apply) Queue(Writer(Type::kSetMeta).Str(path).Put(s.meta).Finish());
        }
        break;
      case EntryType::kOther:
        break;  // devices, fifos, sockets: not replicated (docs/operations.md)
    }
  }
  if (!options.apply) return diffs;
  spdlog::debug("replication {}: compared: {} files to send, {} ms after the scan began", config_.volume, files.size(),
                MillisBetween(started, std::chrono::steady_clock::now()));

  Progress* progress = options.progress;
  if (progress) {
    progress->files_total += files.size();
    for (const auto& f : files) progress->bytes_total += f.entry->size;
  }
  size_t ahead = 0;     // delta requests sent for files[0..ahead)
  size_t prefetched = 0;  // read-ahead asked for files[0..prefetched)
  uint64_t prefetch_bytes = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i].how == How::kPlan) {
      // Fixed blocks see bytes that moved only by the change of size (one
      // insertion or deletion): when much else changed, content-defined
      // chunks against the target's file find them.
      auto plan = std::make_unique<PatchPlan>();
      LB_ASSIGN_OR_RETURN(files[i].how, PlanUpdate(*files[i].entry, *files[i].base, *plan));
      if (files[i].how == How::kMoved) plan->base = std::move(*files[i].base);
      if (files[i].how != How::kDelta) files[i].patch = std::move(plan);
      files[i].base.reset();
    }
    // Ask the kernel for the next files' bytes now: from a cold cache, small
    // files read one by one wait on the disk one by one; asked ahead, their
    // reads overlap (the disk's queue) while this one is sent.
    if (prefetched <= i) prefetch_bytes = 0;
    for (; prefetched < files.size() && prefetched < i + kPrefetchFiles && prefetch_bytes < kPrefetchBytes;
         ++prefetched) {
      // Planning reads it whole (a patch: moments ago).
      if (files[prefetched].how == How::kPatch || files[prefetched].how == How::kPlan) continue;
      const Entry& e = *files[prefetched].entry;
      // Read past the page cache as it is sent, when it goes whole (DirectReader).
      if (files[prefetched].how != How::kMoved && e.size >= kDirectReadMin) continue;
      prefetch_bytes += e.size;
      if (auto f = OpenSource(e.path); f && f->valid()) {
        ::posix_fadvise(f->get(), 0, static_cast<off_t>(std::min<uint64_t>(e.size, kPrefetchBytes)), POSIX_FADV_WILLNEED);
      }
    }
    if (i < prefetched) prefetch_bytes -= std::min(prefetch_bytes, files[i].entry->size);
    // Requests go in file order (the replies are read in it): they stop at a
    // file not planned yet until the send reaches it.
    for (; ahead < files.size() && ahead < i + kDeltaWindow && files[ahead].how != How::kPlan; ++ahead) {
      if (files[ahead].how != How::kDelta) continue;
      const Entry& e = *files[ahead].entry;
      const std::string& basis = files[ahead].basis;
      Writer req(basis.empty() ? Type::kDeltaReq : Type::kDeltaReqBasis);
      req.U32(next_id_++).Str(e.path).U32(chunk::ChunkParams::ForFileSize(e.size).avg_size);
      if (!basis.empty()) req.Str(basis);
      Queue(req.Finish());
    }
    spdlog::debug("replication {}: sending '{}' ({} bytes) {}{}", config_.volume, Printable(files[i].entry->path),
                  files[i].entry->size,
                  files[i].how == How::kDelta   ? "as a delta"
                  : files[i].how == How::kPatch ? "in place"
                  : files[i].how == How::kMoved ? "by moved blocks"
                                                : "whole",
                  files[i].basis.empty() ? "" : " (basis '" + Printable(files[i].basis) + "')");
    if (files[i].how == How::kDelta) {
      LB_ASSIGN_OR_RETURN(auto chunks, AwaitChunks());
      LB_RETURN_IF_ERROR(SendFile(*files[i].entry, &chunks, options));
    } else if (files[i].how == How::kPatch) {
      LB_RETURN_IF_ERROR(SendPatch(*files[i].entry, *files[i].patch, options));
    } else if (files[i].how == How::kMoved) {
      LB_RETURN_IF_ERROR(SendMoved(*files[i].entry, files[i].patch->base, options));
    } else {
      LB_RETURN_IF_ERROR(SendFile(*files[i].entry, nullptr, options));
    }
  }
  for (const auto& [path, leader] : links) Queue(Writer(Type::kHardlink).Str(path).Str(leader).Finish());
  // 3. Directory metadata last: entries changing inside a directory move its mtime.
  for (const auto& [path, s] : source) {
    if (s.type == EntryType::kDir && changed_dirs.count(path) &&
        std::find(dir_meta.begin(), dir_meta.end(), &s) == dir_meta.end()) {
      dir_meta.push_back(&s);
    }
  }
  for (const Entry* d : dir_meta) Queue(Writer(Type::kSetMeta).Str(d->path).Put(d->meta).Finish());
  uint64_t seq = next_seq_++;
  Queue(Writer(Type::kCommit).U64(seq).Finish());
  LB_RETURN_IF_ERROR(AwaitCommit(seq));
  // After a pass over the whole tree, forget the large files that are gone.
  if (config_.blocks != nullptr && roots.size() == 1 && roots[0].path.empty() && roots[0].recursive) {
    std::set<std::string> live;
    for (const auto& [path, e] : source) {
      if (e.type == EntryType::kFile && e.size >= kPatchMinSize) live.insert(path);
    }
    config_.blocks->Prune(live);
  }
  return diffs;
}

}  // namespace lifeboat::replicate
