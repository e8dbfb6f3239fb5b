#include "replicate/wire.h"

#include <cstring>

namespace lifeboat::replicate {

const char* TypeName(uint8_t type) {
  switch (static_cast<Type>(type)) {
    case Type::kHello: return "HELLO";
    case Type::kWelcome: return "WELCOME";
    case Type::kError: return "ERROR";
    case Type::kList: return "LIST";
    case Type::kEntries: return "ENTRIES";
    case Type::kListEnd: return "LIST_END";
    case Type::kDeltaReq: return "DELTA_REQ";
    case Type::kDeltaReqBasis: return "DELTA_REQ_BASIS";
    case Type::kDeltaChunks: return "DELTA_CHUNKS";
    case Type::kDeltaEnd: return "DELTA_END";
    case Type::kFileBegin: return "FILE_BEGIN";
    case Type::kData: return "DATA";
    case Type::kCopy: return "COPY";
    case Type::kFileEnd: return "FILE_END";
    case Type::kSymlink: return "SYMLINK";
    case Type::kMkdir: return "MKDIR";
    case Type::kHardlink: return "HARDLINK";
    case Type::kDelete: return "DELETE";
    case Type::kRename: return "RENAME";
    case Type::kSetMeta: return "SET_META";
    case Type::kPatchBegin: return "PATCH_BEGIN";
    case Type::kBaseBegin: return "BASE_BEGIN";
    case Type::kCopyBase: return "COPY_BASE";
    case Type::kRepeat: return "REPEAT";
    case Type::kCommit: return "COMMIT";
    case Type::kCommitted: return "COMMITTED";
  }
  return "unknown";
}

Writer::Writer(Type type) {
  buf_.reserve(64);
  buf_.append(4, '\0');
  buf_.push_back(static_cast<char>(type));
}

Writer& Writer::U8(uint8_t v) {
  buf_.push_back(static_cast<char>(v));
  return *this;
}

Writer& Writer::U32(uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) buf_.push_back(static_cast<char>(v >> s));
  return *this;
}

Writer& Writer::U64(uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) buf_.push_back(static_cast<char>(v >> s));
  return *this;
}

Writer& Writer::Str(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  buf_.append(s);
  return *this;
}

Writer& Writer::Raw(std::span<const uint8_t> b) {
  buf_.append(reinterpret_cast<const char*>(b.data()), b.size());
  return *this;
}

Writer& Writer::Put(const Meta& m) {
  return U32(m.mode).U32(m.uid).U32(m.gid).U64(static_cast<uint64_t>(m.mtime_sec)).U32(m.mtime_nsec);
}

Writer& Writer::Put(const Entry& e) {
  Str(e.path).U8(static_cast<uint8_t>(e.type)).Put(e.meta).U64(e.size).U64(e.ino).U32(e.nlink).Str(e.link);
  U8(e.has_hash ? 1 : 0);
  if (e.has_hash) Raw(e.hash);
  return *this;
}

std::string Writer::Finish() {
  uint32_t n = static_cast<uint32_t>(buf_.size() - 4);
  for (int i = 0; i < 4; ++i) buf_[i] = static_cast<char>(n >> (24 - 8 * i));
  return std::move(buf_);
}

bool Reader::Need(size_t n) {
  if (!ok_ || p_.size() < n) ok_ = false;
  return ok_;
}

uint8_t Reader::U8() {
  if (!Need(1)) return 0;
  uint8_t v = static_cast<uint8_t>(p_[0]);
  p_.remove_prefix(1);
  return v;
}

uint32_t Reader::U32() {
  if (!Need(4)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p_[i]);
  p_.remove_prefix(4);
  return v;
}

uint64_t Reader::U64() {
  if (!Need(8)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p_[i]);
  p_.remove_prefix(8);
  return v;
}

std::string Reader::Str(size_t max) { return std::string(View(max)); }

std::string_view Reader::View(size_t max) {
  uint32_t n = U32();
  if (n > max) ok_ = false;
  if (!Need(n)) return {};
  std::string_view s = p_.substr(0, n);
  p_.remove_prefix(n);
  return s;
}

void Reader::Raw(std::span<uint8_t> out) {
  if (!Need(out.size())) return;
  std::memcpy(out.data(), p_.data(), out.size());
  p_.remove_prefix(out.size());
}

Meta Reader::GetMeta() {
  Meta m;
  m.mode = U32();
  m.uid = U32();
  m.gid = U32();
  m.mtime_sec = static_cast<int64_t>(U64());
  m.mtime_nsec = U32();
  if (m.mtime_nsec >= 1'000'000'000 || m.mode > 07777) ok_ = false;
  return m;
}

Entry Reader::GetEntry() {
  Entry e;
  e.path = Path();
  uint8_t t = U8();
  if (t < 1 || t > 4) ok_ = false;
  e.type = static_cast<EntryType>(t);
  e.meta = GetMeta();
  e.size = U64();
  e.ino = U64();
  e.nlink = U32();
  e.link = Str(kMaxPath);
  uint8_t h = U8();
  if (h > 1) ok_ = false;
  e.has_hash = h == 1;
  if (e.has_hash) Raw(e.hash);
  return e;
}

Status Reader::Finish(uint8_t type) const {
  if (!ok_) return InvalidArgument(std::string("malformed ") + TypeName(type) + " frame");
  if (!p_.empty()) return InvalidArgument(std::string(TypeName(type)) + " frame has " + std::to_string(p_.size()) +
                                          " trailing bytes");
  return Ok();
}

Result<uint32_t> FrameLength(std::span<const uint8_t, 4> h) {
  uint32_t n = (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
  if (n == 0 || n > kMaxFrame) return InvalidArgument("frame length " + std::to_string(n) + " is out of range");
  return n;
}

Status ValidatePath(std::string_view path, bool allow_root) {
  if (path.empty()) return allow_root ? Ok() : InvalidArgument("empty path");
  if (path.size() > kMaxPath) return InvalidArgument("path longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return InvalidArgument("path contains a NUL byte");
  if (path.front() == '/') return InvalidArgument("absolute path '" + Printable(path) + "'");
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (comp.empty()) return InvalidArgument("empty component in '" + Printable(path) + "'");
    if (comp == "." || comp == "..") return InvalidArgument("path '" + Printable(path) + "' escapes with '" +
                                                            std::string(comp) + "'");
    if (comp.starts_with(".lifeboat~")) {
      return InvalidArgument("'" + Printable(path) + "': names starting with '.lifeboat~' are reserved");
    }
    if (slash == std::string_view::npos) return Ok();
    start = slash + 1;
  }
}

std::string EncodeHello(const Hello& h) {
  return Writer(Type::kHello).U32(h.version).Str(h.volume).Str(h.region).U64(h.epoch).U8(h.mode).Finish();
}

Result<Hello> DecodeHello(const Frame& f) {
  if (f.type != static_cast<uint8_t>(Type::kHello)) {
    return InvalidArgument(std::string("expected HELLO, got ") + TypeName(f.type));
  }
  Reader r(f.payload);
  Hello h;
  h.version = r.U32();
  h.volume = r.Str(256);
  h.region = r.Str(256);
  h.epoch = r.U64();
  h.mode = r.U8();
  LB_RETURN_IF_ERROR(r.Finish(f.type));
  if (h.mode > kModeReadOnly) return InvalidArgument("unknown session mode " + std::to_string(h.mode));
  return h;
}

namespace {

// The protocol's numbers for the codes, in the order of version 1 (1 to 11),
// then the codes added later. Never renumbered.
constexpr Code kWireCodes[] = {
    Code::kOk,           Code::kInvalidArgument,  Code::kNotFound,         Code::kAlreadyExists,
    Code::kFailedPrecondition, Code::kAborted,    Code::kUnavailable,      Code::kDeadlineExceeded,
    Code::kPermissionDenied,   Code::kResourceExhausted, Code::kDataLoss,  Code::kInternal,
    Code::kUnauthenticated,    Code::kCancelled,
};

}  // namespace

uint32_t WireCode(Code code) {
  for (uint32_t i = 0; i < std::size(kWireCodes); ++i) {
    if (kWireCodes[i] == code) return i;
  }
  return 11;  // Internal; every code is in the table
}

std::string EncodeError(const Error& e) {
  return Writer(Type::kError).U32(WireCode(e.code())).Str(e.message()).Finish();
}

Error DecodeError(const Frame& f) {
  Reader r(f.payload);
  uint32_t code = r.U32();
  std::string msg = r.Str(64 * 1024);
  if (!r.ok() || code == 0 || code >= std::size(kWireCodes)) return InvalidArgument("malformed ERROR frame");
  return Error(kWireCodes[code], msg);
}

}  // namespace lifeboat::replicate
