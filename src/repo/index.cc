// The repository's index: which pack holds each blob; loading, adding, writing and replacing it.
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

}  // namespace lifeboat::repo
