// Blobs: packing new ones (compress, seal, append, upload), reading them back.
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

}  // namespace lifeboat::repo
