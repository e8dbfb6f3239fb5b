#include "repo/crypto.h"

#include "core/check.h"
#include "core/strings.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <stdexcept>


namespace lifeboat::repo {
namespace {

struct CipherCtx {
  CipherCtx() : c(EVP_CIPHER_CTX_new()) {}
  ~CipherCtx() { EVP_CIPHER_CTX_free(c); }
  EVP_CIPHER_CTX* c;
};

}  // namespace

void RandomBytes(std::span<uint8_t> out) {
  LB_CHECK(RAND_bytes(out.data(), static_cast<int>(out.size())) == 1, "the system's random generator failed");
}

KeyBytes RandomKey() {
  KeyBytes k;
  RandomBytes(k);
  return k;
}

Keys NewKeys(bool encrypted) {
  Keys k;
  k.enc = RandomKey();
  k.mac = RandomKey();
  k.encrypted = encrypted;
  return k;
}

Id BlobId(const Keys& keys, std::span<const uint8_t> data) {
  Id id;
  unsigned int len = 0;
  HMAC(EVP_sha256(), keys.mac.data(), static_cast<int>(keys.mac.size()), data.data(), data.size(), id.data(), &len);
  return id;
}

void Seal(const Keys& keys, std::string_view aad, std::string_view plain, std::string& out) {
  if (!keys.encrypted) {
    out.append(plain);
    return;
  }
  thread_local CipherCtx ctx;
  size_t at = out.size();
  out.resize(at + kNonceSize + plain.size() + kTagSize);
  auto* p = reinterpret_cast<uint8_t*>(out.data()) + at;
  RandomBytes({p, kNonceSize});
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, keys.enc.data(), p) == 1 &&
            EVP_EncryptUpdate(ctx.c, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.c, p + kNonceSize, &len, reinterpret_cast<const uint8_t*>(plain.data()),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.c, p + kNonceSize + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_GET_TAG, kTagSize, p + kNonceSize + plain.size()) == 1;
  LB_CHECK(ok, "AES-256-GCM encryption failed");
}

Result<std::string> Open(const Keys& keys, std::string_view aad, std::string_view sealed) {
  if (!keys.encrypted) return std::string(sealed);
  if (sealed.size() < kSealOverhead) {
    return Error(Code::kDataLoss, "sealed object of " + std::to_string(sealed.size()) + " bytes is too short");
  }
  thread_local CipherCtx ctx;
  const auto* p = reinterpret_cast<const uint8_t*>(sealed.data());
  size_t n = sealed.size() - kSealOverhead;
  std::string out(n, '\0');
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, keys.enc.data(), p) == 1 &&
            EVP_DecryptUpdate(ctx.c, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.c, reinterpret_cast<uint8_t*>(out.data()), &len, p + kNonceSize,
                              static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_TAG, kTagSize,
                                const_cast<uint8_t*>(p + kNonceSize + n)) == 1 &&
            EVP_DecryptFinal_ex(ctx.c, reinterpret_cast<uint8_t*>(out.data()) + len, &len) == 1;
  if (!ok) return Error(Code::kDataLoss, "authentication failed (the bytes were changed, or the key is wrong)");
  return out;
}

Result<KeyBytes> DeriveKey(std::string_view password, std::span<const uint8_t> salt, const ScryptParams& params) {
  if (params.n < (1u << 10) || params.n > (1u << 20) || (params.n & (params.n - 1)) != 0 || params.r < 1 ||
      params.r > 32 || params.p < 1 || params.p > 16) {
    return InvalidArgument("scrypt parameters out of bounds (N=" + std::to_string(params.n) +
                           ", r=" + std::to_string(params.r) + ", p=" + std::to_string(params.p) + ")");
  }
  KeyBytes k;
  uint64_t maxmem = 128ull * params.n * params.r * params.p + (64ull << 20);
  if (EVP_PBE_scrypt(password.data(), password.size(), salt.data(), salt.size(), params.n, params.r, params.p,
                     maxmem, k.data(), k.size()) != 1) {
    return Error(Code::kInternal, "scrypt failed");
  }
  return k;
}

std::string HexOf(std::span<const uint8_t> b) { return lifeboat::HexOf(b); }

bool ParseHex(std::string_view hex, std::span<uint8_t> out) { return lifeboat::ParseHex(hex, out); }

}  // namespace lifeboat::repo
