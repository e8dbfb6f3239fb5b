// What the files of the repository implementation share (repository.cc,
// index.cc, blobs.cc, snapshots.cc, maintenance.cc): the AAD labels of each
// sealed object kind, size limits and small helpers. Not for other modules.
#pragma once

#include <string>
#include <string_view>

#include "chunk/hash.h"
#include "repo/repository.h"

namespace lifeboat::repo::detail {

constexpr std::string_view kAadPackHeader = "lifeboat pack header", kAadIndex = "lifeboat index",
                           kAadSnapshot = "lifeboat snapshot", kAadLock = "lifeboat lock", kAadKey = "lifeboat key";
constexpr size_t kIndexPacksPerFile = 4096;
constexpr size_t kPendingPacksBeforeIndex = 64;
constexpr uint64_t kMaxObjectSize = 512ull << 20;
// Room beyond the target size a pack's buffer is reserved with, so that it
// rarely grows by doubling (a chunk is at most 512 KiB by default).
constexpr size_t kMaxChunkReserve = 1 << 20;

inline std::string BlobAad(BlobType type, const Id& id) {
  std::string aad(1, static_cast<char>(type));
  aad.append(reinterpret_cast<const char*>(id.data()), id.size());
  return aad;
}

inline std::string BaseName(const std::string& name) { return name.substr(name.rfind('/') + 1); }

inline std::string Short(const Id& id) { return HexOf(id).substr(0, 12); }

inline Id Sha(std::string_view b) { return chunk::Sha256({reinterpret_cast<const uint8_t*>(b.data()), b.size()}); }


}  // namespace lifeboat::repo::detail
