// Content hashes: SHA-256 (OpenSSL; SHA-NI where the CPU has it). Chunks and
// whole files are named by it in the replication protocol and, later, in the
// backup repository (keyed there).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lifeboat::chunk {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::span<const uint8_t> data);
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
