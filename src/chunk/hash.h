// Content hashes. SHA-256 (OpenSSL; SHA-NI where the CPU has it) names whole
// files (verify) and, later, backup chunks (keyed there). XXH3-128 names
// chunks in the replication protocol, where both ends trust each other and
// speed matters: it runs at memory speed, so chunking is bound by the cut
// search alone (as rsync 3.2 uses xxh128 for its block checksums).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lifeboat::chunk {

using Digest = std::array<uint8_t, 32>;
using Digest128 = std::array<uint8_t, 16>;

Digest Sha256(std::span<const uint8_t> data);
// XXH3-128 in its canonical (big-endian) byte form.
Digest128 Xxh128(std::span<const uint8_t> data);
// XXH3-64: the block hashes of replication's in-place updates (replicate/blocks.h).
uint64_t Xxh64(std::span<const uint8_t> data);
std::string Hex(std::span<const uint8_t> bytes);

// Incremental SHA-256.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  void Update(std::span<const uint8_t> data);
  // Feeds `n` zero bytes (holes of sparse files).
  void UpdateZeros(uint64_t n);
  Digest Finish();  // the hasher is reset afterwards

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace lifeboat::chunk
