#include "chunk/hash.h"

#include "core/check.h"
#include "core/strings.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <stdexcept>

namespace lifeboat::chunk {

struct Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Digest Sha256(std::span<const uint8_t> data) {
  Digest d;
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

uint64_t Xxh64(std::span<const uint8_t> data) { return XXH3_64bits(data.data(), data.size()); }

Digest128 Xxh128(std::span<const uint8_t> data) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(data.data(), data.size()));
  Digest128 d;
  static_assert(sizeof(c.digest) == sizeof(Digest128));
  for (size_t i = 0; i < d.size(); ++i) d[i] = c.digest[i];
  return d;
}

std::string Hex(std::span<const uint8_t> bytes) { return HexOf(bytes); }

Hasher::Hasher() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  LB_CHECK(ctx_->md != nullptr && EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1,
           "OpenSSL could not start a SHA-256 digest");
}
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::Update(std::span<const uint8_t> data) { EVP_DigestUpdate(ctx_->md, data.data(), data.size()); }

void Hasher::UpdateZeros(uint64_t n) {
  static const uint8_t kZeros[64 * 1024] = {};
  while (n > 0) {
    size_t k = n < sizeof(kZeros) ? static_cast<size_t>(n) : sizeof(kZeros);
    Update({kZeros, k});
    n -= k;
  }
}

Digest Hasher::Finish() {
  Digest d;
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, d.data(), &n);
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
  return d;
}

}  // namespace lifeboat::chunk
