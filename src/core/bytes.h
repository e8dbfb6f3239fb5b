// Little-endian byte encoding for the project's binary formats (backup
// repository files). ByteReader never reads past its input: a short or
// malformed input makes it !ok() and every later read returns zeros, so a
// decoder checks ok() once at the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace lifeboat {

class ByteWriter {
 public:
  ByteWriter& U8(uint8_t v) {
    buf_.push_back(static_cast<char>(v));
    return *this;
  }
  ByteWriter& U32(uint32_t v) { return Le(v, 4); }
  ByteWriter& U64(uint64_t v) { return Le(v, 8); }
  ByteWriter& I64(int64_t v) { return Le(static_cast<uint64_t>(v), 8); }
  ByteWriter& Raw(std::span<const uint8_t> b) {
    buf_.append(reinterpret_cast<const char*>(b.data()), b.size());
    return *this;
  }
  ByteWriter& Raw(std::string_view b) {
    buf_.append(b);
    return *this;
  }
  // u32 length, then the bytes.
  ByteWriter& Str(std::string_view s) { return U32(static_cast<uint32_t>(s.size())).Raw(s); }
  size_t size() const { return buf_.size(); }
  std::string& buffer() { return buf_; }
  std::string Take() { return std::move(buf_); }

 private:
  ByteWriter& Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string buf_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : p_(in) {}
  uint8_t U8() { return static_cast<uint8_t>(Le(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  int64_t I64() { return static_cast<int64_t>(Le(8)); }
  // Fills `out` (zeros when short).
  void Raw(std::span<uint8_t> out) {
    if (!Need(out.size())) {
      std::memset(out.data(), 0, out.size());
      return;
    }
    std::memcpy(out.data(), p_.data(), out.size());
    p_.remove_prefix(out.size());
  }
  std::string_view Bytes(size_t n) {
    if (!Need(n)) return {};
    auto v = p_.substr(0, n);
    p_.remove_prefix(n);
    return v;
  }
  // A Str() of at most `max` bytes; longer is malformed.
  std::string Str(size_t max) {
    uint32_t n = U32();
    if (n > max) ok_ = false;
    return ok_ ? std::string(Bytes(n)) : std::string();
  }
  // A count of items each at least `min_item` bytes long, checked against
  // what is left, so a hostile count cannot make the caller reserve memory.
  uint32_t Count(size_t min_item) {
    uint32_t n = U32();
    if (ok_ && min_item > 0 && n > p_.size() / min_item) ok_ = false;
    return ok_ ? n : 0;
  }
  void Fail() { ok_ = false; }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && p_.empty(); }
  size_t left() const { return p_.size(); }

 private:
  bool Need(size_t n) {
    if (!ok_ || p_.size() < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  uint64_t Le(int n) {
    if (!Need(static_cast<size_t>(n))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_.remove_prefix(static_cast<size_t>(n));
    return v;
  }
  std::string_view p_;
  bool ok_ = true;
};

}  // namespace lifeboat
