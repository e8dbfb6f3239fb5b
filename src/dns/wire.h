// The DNS wire format (RFC 1035 section 4, RFC 6891 for EDNS): parsing
// queries strictly and writing responses into a caller's buffer with name
// compression. Nothing here allocates; see docs/format/dns.md for what is
// accepted and how each malformation is answered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lifeboat::dns {

namespace type {
inline constexpr uint16_t kA = 1, kNS = 2, kCNAME = 5, kSOA = 6, kPTR = 12, kMX = 15, kTXT = 16, kAAAA = 28,
                          kSRV = 33, kOPT = 41, kTSIG = 250, kIXFR = 251, kAXFR = 252, kANY = 255, kCAA = 257;
}
inline constexpr uint16_t kClassIN = 1;

namespace rcode {
inline constexpr uint16_t kNoError = 0, kFormErr = 1, kServFail = 2, kNxDomain = 3, kNotImp = 4, kRefused = 5,
                          kNotAuth = 9, kBadVers = 16, kBadKey = 17;
}

// "A", "AAAA", ... or "TYPE123".
std::string TypeName(uint16_t t);
// The type for a name this server serves ("A" -> 1), or 0.
uint16_t TypeFromName(std::string_view name);

inline constexpr size_t kMaxName = 255;        // bytes on the wire
inline constexpr size_t kHeaderSize = 12;
inline constexpr uint16_t kMaxUdpPayload = 1232;  // DNS flag day 2020
inline constexpr uint16_t kMinUdpPayload = 512;

// A domain name in uncompressed wire form ("\3www\7example\3com\0") held in a
// fixed buffer.
struct WireName {
  uint8_t bytes[kMaxName];
  uint8_t size = 0;
  std::span<const uint8_t> span() const { return {bytes, size}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(bytes), size}; }
};

// Wire form of a presentation name ("www.example.com." or relative to
// nothing); false if it breaks a label or length limit.
bool EncodeName(std::string_view text, WireName& out);
// Presentation form ("www.example.com.") of an uncompressed wire name.
std::string DecodeName(std::span<const uint8_t> wire);
// ASCII lower-casing of a wire name in place (labels' length bytes are < 64,
// so they are never changed).
void LowerName(WireName& name);

struct Edns {
  uint16_t udp_payload = 0;
  uint8_t version = 0;
  bool dnssec_ok = false;
};

// A query's TSIG record (RFC 8945), kept to answer BADKEY: this server
// knows no key. Spans point into the query packet.
struct Tsig {
  WireName key;                        // owner name, decompressed
  std::span<const uint8_t> algorithm;  // uncompressed wire name, as sent
  std::span<const uint8_t> time_and_fudge;  // Time Signed (48 bits) and Fudge (16)
};

// What a query asks, parsed from its bytes.
struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;  // as sent
  uint8_t opcode = 0;
  uint16_t qdcount = 0;
  WireName qname;      // as sent (case kept), decompressed
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  std::optional<Edns> edns;
  std::optional<Tsig> tsig;
  bool rd() const { return flags & 0x0100; }
};

enum class ParseOutcome {
  kOk,        // a well-formed query
  kDrop,      // too short for a header, or a response: send nothing
  kFormErr,   // answer FORMERR (id and, if it parsed, the question echoed)
  kNotImp,    // an opcode other than QUERY
  kBadEdns,   // a malformed OPT record: FORMERR
};

// Parses a query. On kFormErr/kNotImp the fields that did parse (id, flags,
// maybe the question and EDNS) are filled for the error response.
ParseOutcome ParseQuery(std::span<const uint8_t> packet, Query& q);

// Writes a message into a fixed buffer, compressing owner names. Writes past
// the end set overflow() instead of writing; the caller then truncates.
class MessageWriter {
 public:
  explicit MessageWriter(std::span<uint8_t> buffer) : buf_(buffer) {}

  void Header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar);
  // The question, with the name exactly as the query sent it.
  void Question(const WireName& name, uint16_t qtype, uint16_t qclass);
  // A resource record: `owner` compressed against names written before;
  // `fixed` is type, class, TTL, RDLENGTH and RDATA, already in wire form.
  void Record(std::span<const uint8_t> owner, std::span<const uint8_t> fixed);
  // The OPT pseudo-record of a response.
  void Opt(uint16_t payload, uint8_t ext_rcode, uint8_t version, bool dnssec_ok);
  // Overwrites the section counts (after truncation decided them).
  void SetCounts(uint16_t an, uint16_t ns, uint16_t ar);
  void SetFlags(uint16_t flags);

  size_t size() const { return size_; }
  bool overflow() const { return overflow_; }
  // Rewinds to an earlier size (to drop records that did not fit).
  void Truncate(size_t size);
  // Appends bytes as they are (a record whose names must not be compressed).
  void Raw(std::span<const uint8_t> bytes) { Put(bytes.data(), bytes.size()); }

 private:
  bool Put(const void* p, size_t n);
  void PutName(std::span<const uint8_t> name);
  // Offset in the message where `suffix` (wire form) was written, or -1.
  int FindSuffix(std::span<const uint8_t> suffix) const;

  std::span<uint8_t> buf_;
  size_t size_ = 0;
  bool overflow_ = false;
  // Offsets of names written so far (each suffix of each name), for compression.
  static constexpr int kMaxTargets = 64;
  uint16_t targets_[kMaxTargets];
  int ntargets_ = 0;
};

}  // namespace lifeboat::dns
