#include "repo/repository.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <set>
#include <spdlog/spdlog.h>
#include <unordered_set>

#include "chunk/hash.h"
#include "core/bytes.h"
#include "core/clock.h"

namespace lifeboat::repo {
namespace {

constexpr std::string_view kAadPackHeader = "lifeboat pack header", kAadIndex = "lifeboat index",
                           kAadSnapshot = "lifeboat snapshot", kAadLock = "lifeboat lock", kAadKey = "lifeboat key";
constexpr size_t kIndexPacksPerFile = 4096;
constexpr size_t kPendingPacksBeforeIndex = 64;
constexpr uint64_t kMaxObjectSize = 512ull << 20;
// Room beyond the target size a pack's buffer is reserved with, so that it
// rarely grows by doubling (a chunk is at most 512 KiB by default).
constexpr size_t kMaxChunkReserve = 1 << 20;

std::string BlobAad(BlobType type, const Id& id) {
  std::string aad(1, static_cast<char>(type));
  aad.append(reinterpret_cast<const char*>(id.data()), id.size());
  return aad;
}

std::string BaseName(const std::string& name) { return name.substr(name.rfind('/') + 1); }

std::string Short(const Id& id) { return HexOf(id).substr(0, 12); }

Id Sha(std::string_view b) { return chunk::Sha256({reinterpret_cast<const uint8_t*>(b.data()), b.size()}); }

}  // namespace

std::string PackName(const Id& pack) {
  std::string hex = HexOf(pack);
  return "data/" + hex.substr(0, 2) + "/" + hex;
}

// ---------------------------------------------------------------- open/init

Status Repository::Init(storage::Backend& backend, bool encrypted, const std::string& password,
                        chunk::ChunkParams chunker) {
  if (encrypted && password.empty()) {
    return InvalidArgument("an encrypted repository needs a password (LIFEBOAT_REPO_PASSWORD or password_file)");
  }
  LB_RETURN_IF_ERROR(backend.Prepare());
  auto existing = backend.Get("config");
  if (existing.ok()) return FailedPrecondition(backend.Describe() + " already holds a repository");
  if (existing.error().code() != Code::kNotFound) return existing.error();

  Keys keys = NewKeys(encrypted);
  Config config;
  std::array<uint8_t, 16> rid;
  RandomBytes(rid);
  config.id = HexOf(rid);
  config.encrypted = encrypted;
  config.chunker = chunker;
  if (encrypted) {
    KeyFile kf;
    std::array<uint8_t, 16> salt;
    RandomBytes(salt);
    LB_ASSIGN_OR_RETURN(KeyBytes kek, DeriveKey(password, salt, kf.kdf));
    Keys wrap;
    wrap.enc = kek;
    std::string master(reinterpret_cast<const char*>(keys.enc.data()), 32);
    master.append(reinterpret_cast<const char*>(keys.mac.data()), 32);
    std::string sealed = Seal(wrap, kAadKey, master);
    kf.salt_hex = HexOf(salt);
    kf.data_hex = HexOf({reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size()});
    kf.host = Hostname();
    kf.created = TimeText(NowUnixNs());
    std::string text = kf.ToJson();
    LB_RETURN_IF_ERROR(backend.Put("keys/" + HexOf(Sha(text)), text));
  } else {
    config.mac_key_hex = HexOf(keys.mac);
  }
  return backend.Put("config", config.ToJson());  // last: a repository exists once its config does
}

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<storage::Backend> backend,
                                                     const std::string& password) {
  auto text = backend->Get("config");
  if (!text.ok()) {
    if (text.error().code() == Code::kNotFound) {
      return FailedPrecondition("no repository at " + backend->Describe() + " (run `lifeboat repo init` first)");
    }
    return text.error();
  }
  LB_ASSIGN_OR_RETURN(Config config, Config::FromJson(*text));
  Keys keys;
  keys.encrypted = config.encrypted;
  if (!config.encrypted) {
    if (!ParseHex(config.mac_key_hex, keys.mac)) return Error(Code::kDataLoss, "config: bad mac_key");
  } else {
    if (password.empty()) {
      return FailedPrecondition("the repository at " + backend->Describe() +
                                " is encrypted: set LIFEBOAT_REPO_PASSWORD, or the location's password_file");
    }
    LB_ASSIGN_OR_RETURN(auto key_files, backend->List("keys"));
    if (key_files.empty()) return Error(Code::kDataLoss, "the repository has no key files (keys/ is empty)");
    bool opened = false;
    for (const auto& k : key_files) {
      auto kt = backend->Get(k.name);
      if (!kt.ok()) continue;
      auto kf = KeyFile::FromJson(*kt);
      if (!kf.ok()) {
        spdlog::warn("repository: {} is damaged: {}", k.name, kf.error().message());
        continue;
      }
      std::vector<uint8_t> salt(kf->salt_hex.size() / 2), data(kf->data_hex.size() / 2);
      if (!ParseHex(kf->salt_hex, salt) || !ParseHex(kf->data_hex, data)) continue;
      LB_ASSIGN_OR_RETURN(KeyBytes kek, DeriveKey(password, salt, kf->kdf));
      Keys wrap;
      wrap.enc = kek;
      auto master = repo::Open(wrap, kAadKey, {reinterpret_cast<const char*>(data.data()), data.size()});
      if (!master.ok() || master->size() != 64) continue;
      std::memcpy(keys.enc.data(), master->data(), 32);
      std::memcpy(keys.mac.data(), master->data() + 32, 32);
      opened = true;
      break;
    }
    if (!opened) return PermissionDenied("wrong password: no key of the repository at " + backend->Describe() + " opens with it");
  }
  return std::unique_ptr<Repository>(new Repository(std::move(backend), std::move(config), keys));
}

// ---------------------------------------------------------------- objects

Result<std::string> Repository::SaveObject(const std::string& dir, std::string_view aad, std::string_view plain) {
  ByteWriter w;
  auto z = Compress(plain, 3);
  w.U8(z ? kFlagZstd : 0).U32(static_cast<uint32_t>(plain.size())).Raw(z ? std::string_view(*z) : plain);
  std::string body = Seal(keys_, aad, w.buffer());
  std::string id = HexOf(Sha(body));
  LB_RETURN_IF_ERROR(backend_->Put(dir + "/" + id, body));
  return id;
}

Result<std::string> Repository::LoadObject(const std::string& name, std::string_view aad) {
  LB_ASSIGN_OR_RETURN(std::string body, backend_->Get(name));
  if (HexOf(Sha(body)) != BaseName(name)) return Error(Code::kDataLoss, name + ": content does not match its name (damaged)");
  auto plain = repo::Open(keys_, aad, body);
  if (!plain.ok()) return Error(Code::kDataLoss, name + ": " + plain.error().message());
  ByteReader r(*plain);
  uint8_t flags = r.U8();
  uint32_t raw = r.U32();
  if (!r.ok() || (flags & ~kFlagZstd) != 0 || raw > kMaxObjectSize) return Error(Code::kDataLoss, name + ": bad header");
  std::string_view rest = r.Bytes(r.left());
  if (flags & kFlagZstd) {
    if (raw > kMaxBlobSize * 8) return Error(Code::kDataLoss, name + ": too large");
    auto out = raw <= kMaxBlobSize ? Decompress(rest, raw) : Result<std::string>(Error(Code::kDataLoss, "too large"));
    if (!out.ok()) return Error(Code::kDataLoss, name + ": " + out.error().message());
    return out;
  }
  if (rest.size() != raw) return Error(Code::kDataLoss, name + ": length does not match");
  return std::string(rest);
}

// ---------------------------------------------------------------- index

void Repository::AddToIndex(const Id& pack, const std::vector<PackEntry>& entries, bool pending) {
  std::unique_lock lock(mu_);
  if (packs_.count(pack) != 0) return;
  packs_[pack] = entries.size();
  for (const auto& e : entries) index_.try_emplace(e.id, BlobLocation{pack, e});
  if (pending) pending_.push_back({pack, entries});
}

Status Repository::LoadIndex(std::vector<std::string>* errors) {
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("index"));
  for (const auto& f : files) {
    {
      std::shared_lock lock(mu_);
      if (loaded_index_.count(f.name)) continue;
    }
    auto plain = LoadObject(f.name, kAadIndex);
    Result<std::vector<IndexPack>> packs = plain.ok() ? DecodeIndex(*plain) : Result<std::vector<IndexPack>>(plain.error());
    if (!packs.ok()) {
      std::string msg = f.name + ": " + packs.error().message();
      if (errors == nullptr) return Error(Code::kDataLoss, msg);
      errors->push_back(msg);
      continue;
    }
    for (const auto& p : *packs) AddToIndex(p.pack, p.blobs, false);
    std::unique_lock lock(mu_);
    loaded_index_.insert(f.name);
  }
  return Ok();
}

std::optional<BlobLocation> Repository::Find(const Id& id) const {
  std::shared_lock lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

size_t Repository::blob_count() const {
  std::shared_lock lock(mu_);
  return index_.size();
}

bool Repository::Claim(const Id& id) {
  std::unique_lock lock(mu_);
  if (index_.count(id) != 0) return false;
  return claimed_.emplace(id, true).second;
}

Result<std::vector<PackEntry>> Repository::ReadPackHeader(const std::string& name, uint64_t size) {
  if (size < 4) return Error(Code::kDataLoss, name + ": too short to be a pack");
  LB_ASSIGN_OR_RETURN(std::string tail, backend_->Get(name, size - 4, 4));
  ByteReader r(tail);
  uint32_t hlen = r.U32();
  if (hlen > size - 4 || hlen > (64u << 20)) return Error(Code::kDataLoss, name + ": bad header length");
  LB_ASSIGN_OR_RETURN(std::string sealed, backend_->Get(name, size - 4 - hlen, hlen));
  auto plain = repo::Open(keys_, kAadPackHeader, sealed);
  if (!plain.ok()) return Error(Code::kDataLoss, name + ": header: " + plain.error().message());
  auto entries = DecodePackHeader(*plain, size - 4 - hlen);
  if (!entries.ok()) return Error(Code::kDataLoss, name + ": " + entries.error().message());
  return entries;
}

Result<size_t> Repository::AdoptUnindexedPacks() {
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  size_t adopted = 0;
  for (const auto& f : files) {
    Id pack;
    if (!ParseHex(BaseName(f.name), pack)) continue;
    {
      std::shared_lock lock(mu_);
      if (packs_.count(pack) != 0) continue;
    }
    auto entries = ReadPackHeader(f.name, f.size);
    if (!entries.ok()) {
      spdlog::warn("repository: cannot adopt {}: {}", f.name, entries.error().message());
      continue;
    }
    AddToIndex(pack, *entries, true);
    ++adopted;
  }
  if (adopted > 0) LB_RETURN_IF_ERROR(FlushIndex());
  return adopted;
}

Status Repository::WriteIndexFiles(const std::vector<IndexPack>& packs, std::vector<std::string>* written) {
  for (size_t i = 0; i < packs.size(); i += kIndexPacksPerFile) {
    std::vector<IndexPack> part(packs.begin() + static_cast<ptrdiff_t>(i),
                                packs.begin() + static_cast<ptrdiff_t>(std::min(packs.size(), i + kIndexPacksPerFile)));
    LB_ASSIGN_OR_RETURN(std::string id, SaveObject("index", kAadIndex, EncodeIndex(part)));
    if (written != nullptr) written->push_back("index/" + id);
  }
  return Ok();
}

Result<uint64_t> Repository::ReplaceIndex(const std::vector<IndexPack>& packs,
                                          const std::vector<storage::ObjectInfo>& old_index,
                                          std::vector<std::string>& written) {
  // New files first: until the old ones are gone, both list every blob.
  LB_RETURN_IF_ERROR(WriteIndexFiles(packs, &written));
  std::set<std::string> keep(written.begin(), written.end());
  uint64_t replaced = 0;
  for (const auto& f : old_index) {
    if (keep.count(f.name)) continue;
    LB_RETURN_IF_ERROR(backend_->Delete(f.name));
    ++replaced;
  }
  return replaced;
}

Status Repository::FlushIndex() {
  std::lock_guard write_lock(index_write_mu_);
  std::vector<IndexPack> packs;
  {
    std::unique_lock lock(mu_);
    packs.swap(pending_);
  }
  if (packs.empty()) return Ok();
  Status s = WriteIndexFiles(packs);
  if (!s.ok()) {
    std::unique_lock lock(mu_);
    pending_.insert(pending_.end(), packs.begin(), packs.end());
  }
  return s;
}

// ---------------------------------------------------------------- blobs

Status Repository::AddBlob(Packer& packer, BlobType type, const Id& id, std::string_view data, int level) {
  if (data.size() > kMaxBlobSize) return InvalidArgument("blob of " + std::to_string(data.size()) + " bytes is too large");
  std::optional<std::string> z;
  if (type == BlobType::kTree || level > 0) z = Compress(data, type == BlobType::kTree ? 3 : level);
  if (packer.data.capacity() < kPackTargetSize) packer.data.reserve(kPackTargetSize + kMaxChunkReserve);
  PackEntry e;
  e.type = type;
  e.flags = z ? kFlagZstd : 0;
  e.offset = static_cast<uint32_t>(packer.data.size());
  e.raw_length = static_cast<uint32_t>(data.size());
  e.id = id;
  Seal(keys_, BlobAad(type, id), z ? std::string_view(*z) : data, packer.data);
  e.length = static_cast<uint32_t>(packer.data.size() - e.offset);
  packer.entries.push_back(e);
  packer.raw_bytes += data.size();
  if (packer.data.size() >= kPackTargetSize) return FlushPacker(packer);
  return Ok();
}

Result<Id> Repository::UploadPack(Packer& packer) {
  std::string header = Seal(keys_, kAadPackHeader, EncodePackHeader(packer.entries));
  packer.data += header;
  ByteWriter w;
  w.U32(static_cast<uint32_t>(header.size()));
  packer.data += w.buffer();
  Id pack = Sha(packer.data);
  LB_RETURN_IF_ERROR(backend_->Put(PackName(pack), packer.data));
  stored_bytes_ += packer.data.size();
  return pack;
}

Status Repository::FlushPacker(Packer& packer) {
  if (packer.empty()) return Ok();
  LB_ASSIGN_OR_RETURN(Id pack, UploadPack(packer));
  AddToIndex(pack, packer.entries, true);
  packer = Packer{};
  bool flush;
  {
    std::shared_lock lock(mu_);
    flush = pending_.size() >= kPendingPacksBeforeIndex;
  }
  if (flush) return FlushIndex();
  return Ok();
}

Result<std::string> Repository::ReadBlob(const BlobLocation& where, std::string_view stored) {
  const PackEntry& e = where.entry;
  auto what = [&] { return "blob " + Short(e.id) + " in pack " + Short(where.pack); };
  auto plain = repo::Open(keys_, BlobAad(e.type, e.id), stored);
  if (!plain.ok()) return Error(Code::kDataLoss, what() + ": " + plain.error().message());
  std::string data;
  if (e.flags & kFlagZstd) {
    auto d = Decompress(*plain, e.raw_length);
    if (!d.ok()) return Error(Code::kDataLoss, what() + ": " + d.error().message());
    data = std::move(*d);
  } else {
    data = std::move(*plain);
  }
  if (data.size() != e.raw_length || BlobId(keys_, data) != e.id) {
    return Error(Code::kDataLoss, what() + ": content does not match its id");
  }
  return data;
}

Result<std::string> Repository::LoadBlob(const Id& id) {
  auto where = Find(id);
  if (!where) return NotFound("blob " + Short(id) + " is not in the index");
  auto stored = backend_->Get(PackName(where->pack), where->entry.offset, where->entry.length);
  if (!stored.ok()) {
    if (stored.error().code() == Code::kNotFound) {
      return Error(Code::kDataLoss, "pack " + Short(where->pack) + " is missing (blob " + Short(id) + ")");
    }
    return Error(stored.error().code(), "pack " + Short(where->pack) + ": " + stored.error().message());
  }
  return ReadBlob(*where, *stored);
}

Result<Tree> Repository::LoadTree(const Id& id) {
  LB_ASSIGN_OR_RETURN(std::string plain, LoadBlob(id));
  auto t = DecodeTree(plain);
  if (!t.ok()) return Error(Code::kDataLoss, "tree " + Short(id) + ": " + t.error().message());
  return t;
}

Result<Id> Repository::SaveTree(Packer& packer, const Tree& tree) {
  std::string plain = EncodeTree(tree);
  Id id = BlobId(keys_, plain);
  if (Claim(id)) LB_RETURN_IF_ERROR(AddBlob(packer, BlobType::kTree, id, plain));
  return id;
}

// ---------------------------------------------------------------- snapshots

Result<std::string> Repository::SaveSnapshot(const Snapshot& s) { return SaveObject("snapshots", kAadSnapshot, s.ToJson()); }

Result<std::vector<Snapshot>> Repository::ListSnapshots(std::vector<std::string>* errors) {
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("snapshots"));
  std::vector<Snapshot> out;
  for (const auto& f : files) {
    auto plain = LoadObject(f.name, kAadSnapshot);
    Result<Snapshot> s = plain.ok() ? Snapshot::FromJson(*plain) : Result<Snapshot>(plain.error());
    if (!s.ok()) {
      if (s.error().code() == Code::kNotFound) continue;  // deleted meanwhile
      std::string msg = f.name + ": " + s.error().message();
      if (errors == nullptr) return Error(Code::kDataLoss, msg);
      errors->push_back(msg);
      continue;
    }
    s->id = BaseName(f.name);
    out.push_back(std::move(*s));
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    return std::tie(a.time_ns, a.id) < std::tie(b.time_ns, b.id);
  });
  return out;
}

Result<Snapshot> Repository::FindSnapshot(const std::string& prefix) {
  if (prefix.size() < 4 || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return InvalidArgument("'" + prefix + "' is not a backup id (at least 4 lower-case hex digits)");
  }
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("snapshots"));
  std::vector<std::string> match;
  for (const auto& f : files) {
    if (BaseName(f.name).starts_with(prefix)) match.push_back(f.name);
  }
  if (match.empty()) return NotFound("no backup " + prefix + " in " + backend_->Describe());
  if (match.size() > 1) return InvalidArgument("backup id " + prefix + " is ambiguous: give more digits");
  LB_ASSIGN_OR_RETURN(std::string plain, LoadObject(match[0], kAadSnapshot));
  LB_ASSIGN_OR_RETURN(Snapshot s, Snapshot::FromJson(plain));
  s.id = BaseName(match[0]);
  return s;
}

Status Repository::DeleteSnapshot(const std::string& id) { return backend_->Delete("snapshots/" + id); }

// ---------------------------------------------------------------- locks

Result<std::unique_ptr<Lock>> Repository::AcquireLock(bool exclusive, const std::string& operation, LockOptions options) {
  auto lock = std::make_unique<Lock>();
  if (read_only()) return lock;  // a ReadOnly location is never written, so nobody can prune it under us from here
  lock->info_ = {exclusive, Hostname(), operation, ::getpid(), NowUnixNs()};
  std::array<uint8_t, 16> rnd;
  RandomBytes(rnd);
  std::string name = "locks/" + HexOf(rnd);
  LB_RETURN_IF_ERROR(backend_->Put(name, Seal(keys_, kAadLock, lock->info_.ToJson())));
  auto others = backend_->List("locks");
  if (!others.ok()) {
    (void)backend_->Delete(name);
    return others.error();
  }
  for (const auto& o : *others) {
    if (o.name == name) continue;
    auto body = backend_->Get(o.name);
    if (!body.ok()) continue;  // released meanwhile
    auto plain = repo::Open(keys_, kAadLock, *body);
    auto info = plain.ok() ? LockInfo::FromJson(*plain) : Result<LockInfo>(plain.error());
    if (!info.ok()) {
      spdlog::warn("repository: ignoring unreadable lock {}: {}", o.name, info.error().message());
      continue;
    }
    bool stale = NowUnixNs() - info->time_ns > std::chrono::nanoseconds(options.stale_after).count() ||
                 (info->host == lock->info_.host && info->pid != lock->info_.pid && ::kill(static_cast<pid_t>(info->pid), 0) != 0 &&
                  errno == ESRCH);
    if (stale) {
      spdlog::info("repository: removing stale lock {} ({} pid {}, {})", o.name, info->host, info->pid, info->operation);
      (void)backend_->Delete(o.name);
      continue;
    }
    if (exclusive || info->exclusive) {
      (void)backend_->Delete(name);
      return FailedPrecondition("the repository is locked by " + info->operation + " on " + info->host + " (pid " +
                                std::to_string(info->pid) + ", " + (info->exclusive ? "exclusive" : "shared") +
                                ", refreshed " + TimeText(info->time_ns) +
                                "); try again when it ends (a lock left by a dead process turns stale after " +
                                std::to_string(options.stale_after.count() / 60) + "m)");
    }
  }
  lock->repo_ = this;
  lock->name_ = name;
  Lock* l = lock.get();
  lock->refresher_ = std::thread([l, options] {
    std::unique_lock g(l->mu_);
    while (!l->cv_.wait_for(g, options.refresh_every, [l] { return l->stop_; })) {
      l->info_.time_ns = NowUnixNs();
      Status s = l->repo_->backend_->Put(l->name_, Seal(l->repo_->keys_, kAadLock, l->info_.ToJson()));
      if (!s.ok()) spdlog::warn("repository: cannot refresh lock {}: {}", l->name_, s.error().message());
    }
  });
  return lock;
}

Lock::~Lock() {
  if (repo_ == nullptr) return;
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  Status s = repo_->backend_->Delete(name_);
  if (!s.ok()) spdlog::warn("repository: cannot release lock {}: {}", name_, s.error().message());
}

// ---------------------------------------------------------------- check and prune

namespace {

// Every blob the snapshots use. Trees that cannot be loaded are reported.
struct Usage {
  std::unordered_set<Id, IdHash> blobs;
  std::vector<std::string> errors;
  uint64_t trees = 0;
  uint64_t unindexed = 0;  // blobs (chunks or directories) no index lists
};

void MarkTree(Repository& repo, const Id& root, const std::string& snapshot, Usage& u) {
  std::deque<std::pair<Id, std::string>> queue{{root, "/"}};
  while (!queue.empty()) {
    auto [id, path] = queue.front();
    queue.pop_front();
    if (!u.blobs.insert(id).second) continue;
    ++u.trees;
    auto tree = repo.LoadTree(id);
    if (!tree.ok()) {
      if (!repo.Has(id)) ++u.unindexed;
      u.errors.push_back("backup " + snapshot.substr(0, 8) + ": directory " + path + ": " + tree.error().message());
      continue;
    }
    for (const auto& n : tree->nodes) {
      std::string child = path + (path == "/" ? "" : "/") + n.name;
      if (n.type == NodeType::kDir) {
        queue.push_back({n.subtree, child});
      } else if (n.type == NodeType::kFile) {
        for (const auto& c : n.content) {
          if (u.blobs.insert(c).second && !repo.Has(c)) {
            ++u.unindexed;
            u.errors.push_back("backup " + snapshot.substr(0, 8) + ": file " + child + ": chunk " + Short(c) +
                               " is in no index");
          }
        }
      }
    }
  }
}

}  // namespace

Result<CheckReport> Repository::Check(bool read_data, const std::function<void(const std::string&)>& progress) {
  CheckReport rep;
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  say("loading index");
  LB_RETURN_IF_ERROR(LoadIndex(&rep.errors));
  say("listing packs");
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  std::unordered_map<Id, uint64_t, IdHash> present;
  for (const auto& f : files) {
    Id p;
    if (!ParseHex(BaseName(f.name), p) || PackName(p) != f.name) {
      rep.warnings.push_back(f.name + ": not a pack name");
      continue;
    }
    present[p] = f.size;
  }
  std::unordered_map<Id, std::vector<PackEntry>, IdHash> by_pack;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, loc] : index_) by_pack[loc.pack].push_back(loc.entry);
    rep.blobs = index_.size();
    for (const auto& [p, n] : packs_) {
      if (by_pack.count(p) == 0) by_pack[p] = {};
    }
  }
  rep.packs = present.size();
  for (auto& [p, entries] : by_pack) {
    auto it = present.find(p);
    if (it == present.end()) {
      rep.errors.push_back("pack " + Short(p) + " is missing (" + std::to_string(entries.size()) + " blobs lost)");
      continue;
    }
    for (const auto& e : entries) {
      if (static_cast<uint64_t>(e.offset) + e.length + 4 > it->second) {
        rep.errors.push_back("pack " + Short(p) + " is " + std::to_string(it->second) +
                             " bytes, too short for the blobs the index lists (truncated?)");
        break;
      }
    }
  }
  size_t unindexed = 0;
  for (const auto& [p, size] : present) {
    if (by_pack.count(p) == 0) {
      rep.warnings.push_back("pack " + Short(p) +
                             " is in no index (left by an interrupted backup, or its index file was lost)");
      ++unindexed;
    }
  }
  say("reading snapshots");
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots(&rep.errors));
  rep.snapshots = snaps.size();
  Usage usage;
  for (const auto& s : snaps) {
    say("checking backup " + s.id.substr(0, 8));
    MarkTree(*this, s.TreeId(), s.id, usage);
  }
  rep.trees = usage.trees;
  rep.errors.insert(rep.errors.end(), usage.errors.begin(), usage.errors.end());
  if (usage.unindexed > 0) {
    rep.errors.push_back(
        "backups use " + std::to_string(usage.unindexed) + " blob(s) that no index lists: the index is damaged or lost" +
        std::string(unindexed > 0 ? " (" + std::to_string(unindexed) + " pack(s) are in no index and may hold them)" : "") +
        ". Run `lifeboat repo repair` to rebuild the index from the packs; prune refuses to run until then, so "
        "nothing is deleted");
  }
  if (read_data) {
    size_t done = 0;
    for (const auto& [p, size] : present) {
      ++done;
      say("reading pack " + std::to_string(done) + "/" + std::to_string(present.size()));
      auto body = backend_->Get(PackName(p));
      if (!body.ok()) {
        rep.errors.push_back("pack " + Short(p) + ": " + body.error().message());
        continue;
      }
      rep.bytes_read += body->size();
      if (Sha(*body) != p) rep.errors.push_back("pack " + Short(p) + ": content does not match its name (damaged)");
      auto it = by_pack.find(p);
      if (it == by_pack.end()) continue;
      for (const auto& e : it->second) {
        if (static_cast<uint64_t>(e.offset) + e.length > body->size()) continue;  // reported above
        auto blob = ReadBlob({p, e}, std::string_view(*body).substr(e.offset, e.length));
        if (!blob.ok()) rep.errors.push_back(blob.error().message());
      }
    }
  }
  return rep;
}

Result<PruneReport> Repository::Prune(double repack_threshold) {
  // Order of writes, each step safe to be killed after (docs/format/repository.md,
  // "Prune"): new packs for the repacked blobs; index files that list every kept
  // blob exactly once; then the old index files go; then the packs nothing
  // lists any more. Until the old index files are gone every blob is reachable
  // through them; afterwards through the new ones.
  PruneReport rep;
  LB_RETURN_IF_ERROR(LoadIndex());
  LB_ASSIGN_OR_RETURN(auto old_index, backend_->List("index"));
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots());
  Usage usage;
  for (const auto& s : snaps) {
    MarkTree(*this, s.TreeId(), s.id, usage);
  }
  if (!usage.errors.empty()) {
    return Error(Code::kDataLoss, "prune refuses to run on a damaged repository (run `repo check`): " + usage.errors[0]);
  }
  // The copy of each used blob that is kept: the one the index points at.
  std::unordered_map<Id, std::vector<PackEntry>, IdHash> keep;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, loc] : index_) {
      if (usage.blobs.count(id)) keep[loc.pack].push_back(loc.entry);
    }
  }
  std::vector<IndexPack> next;  // the whole index after prune
  std::vector<Id> remove;
  Packer packer;
  auto flush = [&]() -> Status {
    if (packer.empty()) return Ok();
    LB_ASSIGN_OR_RETURN(Id pack, UploadPack(packer));
    next.push_back({pack, std::move(packer.entries)});
    packer = Packer{};
    return Ok();
  };
  for (const auto& f : files) {
    Id p;
    if (!ParseHex(BaseName(f.name), p)) continue;
    auto k = keep.find(p);
    if (k == keep.end()) {
      remove.push_back(p);
      rep.bytes_freed += f.size;
      continue;
    }
    std::vector<PackEntry>& used_entries = k->second;
    std::sort(used_entries.begin(), used_entries.end(),
              [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
    uint64_t used = 4;
    for (const auto& e : used_entries) used += e.length;
    bool repack = static_cast<double>(f.size - std::min<uint64_t>(used, f.size)) >
                  repack_threshold * static_cast<double>(f.size);
    if (!repack) {
      ++rep.packs_kept;
      next.push_back({p, std::move(used_entries)});
      continue;
    }
    LB_ASSIGN_OR_RETURN(std::string body, backend_->Get(f.name));
    for (const auto& e : used_entries) {
      if (static_cast<uint64_t>(e.offset) + e.length > body.size()) {
        return Error(Code::kDataLoss, "pack " + Short(p) + " is shorter than its index says (run `repo check`)");
      }
      PackEntry ne = e;
      ne.offset = static_cast<uint32_t>(packer.data.size());
      packer.data.append(body, e.offset, e.length);
      packer.entries.push_back(ne);
      if (packer.data.size() >= kPackTargetSize) LB_RETURN_IF_ERROR(flush());
    }
    remove.push_back(p);
    rep.bytes_freed += f.size;
    ++rep.packs_repacked;
  }
  LB_RETURN_IF_ERROR(flush());
  std::vector<std::string> written;
  LB_ASSIGN_OR_RETURN(rep.index_files_replaced, ReplaceIndex(next, old_index, written));
  for (const auto& p : remove) {
    LB_RETURN_IF_ERROR(backend_->Delete(PackName(p)));
    ++rep.packs_deleted;
  }
  // Under the exclusive lock no writer runs: any temporary file is a killed one's.
  LB_ASSIGN_OR_RETURN(rep.leftovers_removed, backend_->RemoveLeftovers());
  // This process's view becomes exactly what is stored now.
  uint64_t kept = 0;
  for (const auto& p : next) kept += p.blobs.size();
  std::unique_lock lock(mu_);
  rep.blobs_removed = index_.size() - std::min<uint64_t>(index_.size(), kept);
  index_.clear();
  packs_.clear();
  claimed_.clear();
  pending_.clear();
  for (const auto& p : next) {
    packs_[p.pack] = p.blobs.size();
    for (const auto& e : p.blobs) index_.try_emplace(e.id, BlobLocation{p.pack, e});
  }
  loaded_index_ = std::unordered_set<std::string>(written.begin(), written.end());
  return rep;
}

Result<RepairReport> Repository::Repair(const std::function<void(const std::string&)>& progress) {
  RepairReport rep;
  auto say = [&](const std::string& what) {
    if (progress) progress(what);
  };
  LB_ASSIGN_OR_RETURN(auto old_index, backend_->List("index"));
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  std::vector<IndexPack> packs;
  size_t done = 0;
  for (const auto& f : files) {
    say("reading pack headers " + std::to_string(++done) + "/" + std::to_string(files.size()));
    Id p;
    if (!ParseHex(BaseName(f.name), p) || PackName(p) != f.name) continue;
    auto entries = ReadPackHeader(f.name, f.size);
    if (!entries.ok()) {
      rep.unreadable_packs.push_back(entries.error().message());
      continue;
    }
    rep.blobs_indexed += entries->size();
    packs.push_back({p, std::move(*entries)});
  }
  rep.packs_indexed = packs.size();
  say("writing the index");
  std::vector<std::string> written;
  LB_ASSIGN_OR_RETURN(rep.index_files_replaced, ReplaceIndex(packs, old_index, written));
  {
    std::unique_lock lock(mu_);
    index_.clear();
    packs_.clear();
    claimed_.clear();
    pending_.clear();
    loaded_index_.clear();
  }
  LB_RETURN_IF_ERROR(LoadIndex());
  say("checking every backup against the new index");
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots());
  Usage usage;
  for (const auto& s : snaps) MarkTree(*this, s.TreeId(), s.id, usage);
  rep.still_missing = std::move(usage.errors);
  return rep;
}

}  // namespace lifeboat::repo
