#include "repo/format.h"

#include <zstd.h>

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/json_read.h"

namespace lifeboat::repo {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kPackMagic = "LBPK", kIndexMagic = "LBIX", kTreeMagic = "LBTR";
constexpr size_t kEntrySize = 1 + 1 + 4 + 4 + 32;  // type, flags, length, raw length, id
constexpr size_t kMaxName = 4096, kMaxLink = 65536;

Error Bad(std::string what) { return Error(Code::kDataLoss, std::move(what)); }

bool ReadMagic(ByteReader& r, std::string_view magic) {
  return r.Bytes(magic.size()) == magic && r.U8() == kFormatVersion;
}

void PutEntry(ByteWriter& w, const PackEntry& e) {
  w.U8(static_cast<uint8_t>(e.type)).U8(e.flags).U32(e.length).U32(e.raw_length).Raw(e.id);
}

bool GetEntry(ByteReader& r, PackEntry& e) {
  uint8_t t = r.U8();
  e.flags = r.U8();
  e.length = r.U32();
  e.raw_length = r.U32();
  r.Raw(e.id);
  if (!r.ok()) return false;
  if (t != static_cast<uint8_t>(BlobType::kData) && t != static_cast<uint8_t>(BlobType::kTree)) return false;
  if ((e.flags & ~kFlagZstd) != 0 || e.raw_length > kMaxBlobSize || e.length > kMaxBlobSize + kSealOverhead) {
    return false;
  }
  e.type = static_cast<BlobType>(t);
  return true;
}

// An integer member that fits T (json::IntOf: a float or a number out of
// range is refused); `what` names the file for the message.
template <class T>
Result<T> IntAt(const Json& j, std::string_view what, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return Bad(std::string(what) + ": '" + name + "' is missing");
  auto v = json::IntOf<T>(*it);
  if (!v) return Bad(std::string(what) + ": '" + name + "' is not an integer in range");
  return *v;
}

// The same for an optional member: `fallback` when it is absent.
template <class T>
Result<T> IntOr(const Json& j, std::string_view what, const char* name, T fallback) {
  if (!j.is_object()) return Bad(std::string(what) + ": '" + name + "' belongs in an object, and this is none");
  if (!j.contains(name)) return fallback;
  return IntAt<T>(j, what, name);
}

template <typename F>
auto JsonTry(std::string_view text, std::string_view what, F f) -> decltype(f(std::declval<const Json&>())) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Bad(std::string(what) + " is not a JSON object");
  try {
    return f(j);
  } catch (const Json::exception& e) {
    return Bad(std::string(what) + ": " + e.what());
  }
}

}  // namespace

std::string EncodePackHeader(const std::vector<PackEntry>& blobs) {
  ByteWriter w;
  w.Raw(kPackMagic).U8(kFormatVersion).U32(static_cast<uint32_t>(blobs.size()));
  for (const auto& b : blobs) PutEntry(w, b);
  return w.Take();
}

Result<std::vector<PackEntry>> DecodePackHeader(std::string_view plain, uint64_t data_size) {
  ByteReader r(plain);
  if (!ReadMagic(r, kPackMagic)) return Bad("pack header: bad magic or version");
  uint32_t n = r.Count(kEntrySize);
  if (!r.ok() || n > kMaxHeaderBlobs) return Bad("pack header: bad blob count");
  std::vector<PackEntry> out(n);
  uint64_t offset = 0;
  for (auto& e : out) {
    if (!GetEntry(r, e)) return Bad("pack header: malformed entry");
    e.offset = static_cast<uint32_t>(offset);
    offset += e.length;
    if (offset > data_size) return Bad("pack header: blobs extend past the pack's data");
  }
  if (!r.done()) return Bad("pack header: trailing bytes");
  if (offset != data_size) return Bad("pack header: blobs do not cover the pack's data");
  return out;
}

std::string EncodeIndex(const std::vector<IndexPack>& packs) {
  ByteWriter w;
  w.Raw(kIndexMagic).U8(kFormatVersion).U32(static_cast<uint32_t>(packs.size()));
  for (const auto& p : packs) {
    w.Raw(p.pack).U32(static_cast<uint32_t>(p.blobs.size()));
    for (const auto& b : p.blobs) {
      w.U32(b.offset);
      PutEntry(w, b);
    }
  }
  return w.Take();
}

Result<std::vector<IndexPack>> DecodeIndex(std::string_view plain) {
  ByteReader r(plain);
  if (!ReadMagic(r, kIndexMagic)) return Bad("index: bad magic or version");
  uint32_t n = r.Count(32 + 4);
  std::vector<IndexPack> out(n);
  for (auto& p : out) {
    r.Raw(p.pack);
    uint32_t m = r.Count(4 + kEntrySize);
    if (!r.ok()) return Bad("index: truncated");
    p.blobs.resize(m);
    for (auto& b : p.blobs) {
      b.offset = r.U32();
      if (!GetEntry(r, b)) return Bad("index: malformed blob entry");
      if (static_cast<uint64_t>(b.offset) + b.length > 0xffffffffull) return Bad("index: blob beyond 4 GiB");
    }
  }
  if (!r.done()) return Bad("index: truncated or trailing bytes");
  return out;
}

std::string EncodeTree(const Tree& tree) {
  ByteWriter w;
  w.Raw(kTreeMagic).U8(kFormatVersion).U32(static_cast<uint32_t>(tree.nodes.size()));
  for (const auto& n : tree.nodes) {
    w.Str(n.name).U8(static_cast<uint8_t>(n.type)).U32(n.mode).U32(n.uid).U32(n.gid);
    w.I64(n.mtime_sec).U32(n.mtime_nsec).I64(n.ctime_sec).U32(n.ctime_nsec);
    w.U64(n.size).U64(n.inode).U32(n.nlink);
    switch (n.type) {
      case NodeType::kSymlink: w.Str(n.link); break;
      case NodeType::kDir: w.Raw(n.subtree); break;
      case NodeType::kFile:
        w.U32(static_cast<uint32_t>(n.content.size()));
        for (const auto& id : n.content) w.Raw(id);
        break;
    }
  }
  return w.Take();
}

Result<Tree> DecodeTree(std::string_view plain) {
  ByteReader r(plain);
  if (!ReadMagic(r, kTreeMagic)) return Bad("tree: bad magic or version");
  uint32_t n = r.Count(4 + 1 + 12 + 12 + 12 + 20);
  Tree t;
  t.nodes.resize(n);
  for (auto& node : t.nodes) {
    node.name = r.Str(kMaxName);
    uint8_t type = r.U8();
    node.mode = r.U32();
    node.uid = r.U32();
    node.gid = r.U32();
    node.mtime_sec = r.I64();
    node.mtime_nsec = r.U32();
    node.ctime_sec = r.I64();
    node.ctime_nsec = r.U32();
    node.size = r.U64();
    node.inode = r.U64();
    node.nlink = r.U32();
    if (!r.ok()) return Bad("tree: truncated");
    if (node.name.empty() || node.name == "." || node.name == ".." ||
        node.name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      return Bad("tree: invalid name");
    }
    if (node.mtime_nsec >= 1000000000u || node.ctime_nsec >= 1000000000u) return Bad("tree: invalid time");
    switch (type) {
      case static_cast<uint8_t>(NodeType::kSymlink):
        node.type = NodeType::kSymlink;
        node.link = r.Str(kMaxLink);
        if (node.link.find('\0') != std::string::npos) return Bad("tree: NUL in a symlink target");
        break;
      case static_cast<uint8_t>(NodeType::kDir):
        node.type = NodeType::kDir;
        r.Raw(node.subtree);
        break;
      case static_cast<uint8_t>(NodeType::kFile): {
        node.type = NodeType::kFile;
        uint32_t c = r.Count(32);
        node.content.resize(c);
        for (auto& id : node.content) r.Raw(id);
        break;
      }
      default:
        return Bad("tree: unknown node type " + std::to_string(type));
    }
    if (!r.ok()) return Bad("tree: truncated");
  }
  if (!r.done()) return Bad("tree: trailing bytes");
  for (size_t i = 1; i < t.nodes.size(); ++i) {
    if (!(t.nodes[i - 1].name < t.nodes[i].name)) return Bad("tree: names not sorted or not unique");
  }
  return t;
}

std::optional<std::string> Compress(std::string_view data, int level) {
  if (data.size() < 64) return std::nullopt;
  thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(), &ZSTD_freeCCtx);
  ZSTD_CCtx* cctx = ctx.get();
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n) || n > data.size() - data.size() / 32) return std::nullopt;
  out.resize(n);
  return out;
}

Result<std::string> Decompress(std::string_view data, uint32_t raw_length) {
  if (raw_length > kMaxBlobSize) return Bad("blob too large");
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  ZSTD_DCtx* dctx = ctx.get();
  std::string out(raw_length, '\0');
  size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n)) return Bad(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != raw_length) return Bad("zstd: decompressed to " + std::to_string(n) + " bytes, expected " +
                                  std::to_string(raw_length));
  return out;
}

std::string TimeText(int64_t unix_ns) {
  std::time_t t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Config::ToJson() const {
  Json j = {{"version", version},
            {"id", id},
            {"encryption", encrypted ? "aes-256-gcm" : "none"},
            {"compression", "zstd"},
            {"chunker", {{"min", chunker.min_size}, {"avg", chunker.avg_size}, {"max", chunker.max_size}}}};
  if (!encrypted) j["mac_key"] = mac_key_hex;
  return j.dump(2) + "\n";
}

Result<Config> Config::FromJson(std::string_view text) {
  return JsonTry(text, "config", [](const Json& j) -> Result<Config> {
    Config c;
    LB_ASSIGN_OR_RETURN(c.version, IntAt<int>(j, "config", "version"));
    if (c.version != kFormatVersion) {
      return Error(Code::kFailedPrecondition, "repository format version " + std::to_string(c.version) +
                                                  " is not supported (this lifeboat reads version " +
                                                  std::to_string(kFormatVersion) + ")");
    }
    c.id = j.at("id").get<std::string>();
    std::string enc = j.at("encryption").get<std::string>();
    if (enc != "aes-256-gcm" && enc != "none") return Bad("config: unknown encryption '" + enc + "'");
    c.encrypted = enc != "none";
    const Json& ch = j.at("chunker");
    LB_ASSIGN_OR_RETURN(c.chunker.min_size, IntAt<uint32_t>(ch, "config", "min"));
    LB_ASSIGN_OR_RETURN(c.chunker.avg_size, IntAt<uint32_t>(ch, "config", "avg"));
    LB_ASSIGN_OR_RETURN(c.chunker.max_size, IntAt<uint32_t>(ch, "config", "max"));
    if (!c.chunker.Valid()) return Bad("config: invalid chunker parameters");
    if (!c.encrypted) c.mac_key_hex = j.at("mac_key").get<std::string>();
    return c;
  });
}

std::string KeyFile::ToJson() const {
  Json j = {{"kdf", "scrypt"}, {"N", kdf.n},  {"r", kdf.r},       {"p", kdf.p},
            {"salt", salt_hex}, {"data", data_hex}, {"host", host}, {"created", created}};
  return j.dump(2) + "\n";
}

Result<KeyFile> KeyFile::FromJson(std::string_view text) {
  return JsonTry(text, "key file", [](const Json& j) -> Result<KeyFile> {
    KeyFile k;
    if (j.at("kdf").get<std::string>() != "scrypt") return Bad("key file: unknown kdf");
    LB_ASSIGN_OR_RETURN(k.kdf.n, IntAt<uint64_t>(j, "key file", "N"));
    LB_ASSIGN_OR_RETURN(k.kdf.r, IntAt<uint32_t>(j, "key file", "r"));
    LB_ASSIGN_OR_RETURN(k.kdf.p, IntAt<uint32_t>(j, "key file", "p"));
    k.salt_hex = j.at("salt").get<std::string>();
    k.data_hex = j.at("data").get<std::string>();
    k.host = j.value("host", "");
    k.created = j.value("created", "");
    return k;
  });
}

std::string Snapshot::ToJson() const {
  const auto& s = stats;
  Json j = {{"time_ns", time_ns},
            {"time", TimeText(time_ns)},
            {"host", host},
            {"source", source},
            {"path", path},
            {"tags", tags},
            {"schedule", schedule},
            {"tree", tree},
            {"parent", parent},
            {"root", {{"mode", root_mode}, {"uid", root_uid}, {"gid", root_gid}, {"mtime_sec", root_mtime_sec},
                      {"mtime_nsec", root_mtime_nsec}}},
            {"stats",
             {{"files", s.files},
              {"dirs", s.dirs},
              {"bytes", s.bytes},
              {"files_new", s.files_new},
              {"files_changed", s.files_changed},
              {"files_unchanged", s.files_unchanged},
              {"new_blobs", s.new_blobs},
              {"new_bytes", s.new_bytes},
              {"stored_bytes", s.stored_bytes},
              {"duration_seconds", s.duration_seconds},
              {"errors", s.errors}}}};
  return j.dump();
}

Result<Snapshot> Snapshot::FromJson(std::string_view text) {
  return JsonTry(text, "snapshot", [](const Json& j) -> Result<Snapshot> {
    Snapshot s;
    LB_ASSIGN_OR_RETURN(s.time_ns, IntAt<int64_t>(j, "snapshot", "time_ns"));
    s.host = j.at("host").get<std::string>();
    s.source = j.at("source").get<std::string>();
    s.path = j.value("path", "");
    s.tags = j.value("tags", std::vector<std::string>{});
    s.schedule = j.value("schedule", "");
    s.tree = j.at("tree").get<std::string>();
    s.parent = j.value("parent", "");
    Id tree;
    if (!ParseHex(s.tree, tree)) return Bad("snapshot: bad tree id");
    if (j.contains("root")) {
      const Json& r = j.at("root");
      LB_ASSIGN_OR_RETURN(uint32_t mode, IntOr<uint32_t>(r, "snapshot", "mode", 0755u));
      s.root_mode = mode & 07777u;
      LB_ASSIGN_OR_RETURN(s.root_uid, IntOr<uint32_t>(r, "snapshot", "uid", 0u));
      LB_ASSIGN_OR_RETURN(s.root_gid, IntOr<uint32_t>(r, "snapshot", "gid", 0u));
      LB_ASSIGN_OR_RETURN(s.root_mtime_sec, IntOr<int64_t>(r, "snapshot", "mtime_sec", 0));
      LB_ASSIGN_OR_RETURN(uint32_t nsec, IntOr<uint32_t>(r, "snapshot", "mtime_nsec", 0u));
      s.root_mtime_nsec = nsec % 1000000000u;
    }
    const Json& st = j.at("stats");
    auto& o = s.stats;
    LB_ASSIGN_OR_RETURN(o.files, IntOr<uint64_t>(st, "snapshot", "files", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.dirs, IntOr<uint64_t>(st, "snapshot", "dirs", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.bytes, IntOr<uint64_t>(st, "snapshot", "bytes", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.files_new, IntOr<uint64_t>(st, "snapshot", "files_new", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.files_changed, IntOr<uint64_t>(st, "snapshot", "files_changed", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.files_unchanged, IntOr<uint64_t>(st, "snapshot", "files_unchanged", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.new_blobs, IntOr<uint64_t>(st, "snapshot", "new_blobs", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.new_bytes, IntOr<uint64_t>(st, "snapshot", "new_bytes", uint64_t{0}));
    LB_ASSIGN_OR_RETURN(o.stored_bytes, IntOr<uint64_t>(st, "snapshot", "stored_bytes", uint64_t{0}));
    o.duration_seconds = st.value("duration_seconds", 0.0);
    LB_ASSIGN_OR_RETURN(o.errors, IntOr<uint64_t>(st, "snapshot", "errors", uint64_t{0}));
    return s;
  });
}

std::string LockInfo::ToJson() const {
  return Json{{"exclusive", exclusive}, {"host", host}, {"operation", operation}, {"pid", pid}, {"time_ns", time_ns}}
      .dump();
}

Result<LockInfo> LockInfo::FromJson(std::string_view text) {
  return JsonTry(text, "lock", [](const Json& j) -> Result<LockInfo> {
    LockInfo l;
    l.exclusive = j.at("exclusive").get<bool>();
    l.host = j.at("host").get<std::string>();
    l.operation = j.value("operation", "");
    LB_ASSIGN_OR_RETURN(l.pid, IntAt<int64_t>(j, "lock", "pid"));
    LB_ASSIGN_OR_RETURN(l.time_ns, IntAt<int64_t>(j, "lock", "time_ns"));
    return l;
  });
}

}  // namespace lifeboat::repo
