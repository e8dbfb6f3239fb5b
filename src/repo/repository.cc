// The repository: opening, initializing, and the sealed objects every part is stored as.
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
#include "repo/repository_internal.h"

namespace lifeboat::repo {

using namespace detail;


std::string PackName(const Id& pack) {
  std::string hex = HexOf(pack);
  return "data/" + hex.substr(0, 2) + "/" + hex;
}

// ---------------------------------------------------------------- open/init

Status Repository::Init(storage::Backend& backend, bool encrypted, const std::string& password,
                        chunk::ChunkParams chunker, const ScryptParams& kdf) {
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
    kf.kdf = kdf;
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

}  // namespace lifeboat::repo
