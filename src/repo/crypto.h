// The repository's cryptography (OpenSSL):
//  - blob ids: HMAC-SHA256 under the repository's id key, so the ids of a
//    repository's chunks reveal nothing about contents to anyone without it;
//  - authenticated encryption: AES-256-GCM with a random 96-bit nonce per
//    sealed object, laid out as nonce || ciphertext || tag, with associated
//    data that binds it to its role (a blob to its id);
//  - key derivation from a password: scrypt (N=2^15, r=8, p=1).
// An unencrypted repository (an explicit choice at init) uses the same
// calls with a Keys whose `encrypted` is false: Seal and Open pass bytes
// through, and ids are still HMACs (under a key stored in the config).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

namespace lifeboat::repo {

using Id = std::array<uint8_t, 32>;
using KeyBytes = std::array<uint8_t, 32>;

struct Keys {
  KeyBytes enc{};  // AES-256-GCM
  KeyBytes mac{};  // HMAC-SHA256 blob ids
  bool encrypted = true;
};

inline constexpr size_t kNonceSize = 12, kTagSize = 16, kSealOverhead = kNonceSize + kTagSize;

Keys NewKeys(bool encrypted);
KeyBytes RandomKey();
void RandomBytes(std::span<uint8_t> out);

// HMAC-SHA256(keys.mac, data).
Id BlobId(const Keys& keys, std::span<const uint8_t> data);
inline Id BlobId(const Keys& keys, std::string_view data) {
  return BlobId(keys, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

// Appends the sealed form of `plain` to `out`.
void Seal(const Keys& keys, std::string_view aad, std::string_view plain, std::string& out);
inline std::string Seal(const Keys& keys, std::string_view aad, std::string_view plain) {
  std::string out;
  Seal(keys, aad, plain, out);
  return out;
}
// The plaintext, or DataLoss when the bytes were changed (or the key is wrong).
Result<std::string> Open(const Keys& keys, std::string_view aad, std::string_view sealed);

struct ScryptParams {
  uint64_t n = 1 << 15;
  uint32_t r = 8, p = 1;
};
// A key-encryption key from a password; InvalidArgument for parameters out
// of bounds (N a power of two in [2^10, 2^20], r in [1, 32], p in [1, 16]).
Result<KeyBytes> DeriveKey(std::string_view password, std::span<const uint8_t> salt, const ScryptParams& params);

std::string HexOf(std::span<const uint8_t> b);
// Parses lower- or upper-case hex of exactly out.size() bytes.
bool ParseHex(std::string_view hex, std::span<uint8_t> out);

}  // namespace lifeboat::repo
