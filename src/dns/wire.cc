#include "dns/wire.h"

#include <cctype>
#include <cstring>

namespace lifeboat::dns {
namespace {

uint16_t Get16(std::span<const uint8_t> p, size_t off) { return static_cast<uint16_t>(p[off] << 8 | p[off + 1]); }

uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + 32) : c; }

// Reads a possibly compressed name at `off`. Pointers must point strictly
// backwards, which rules out loops. `next` is set to the offset after the
// name where it started.
bool ReadName(std::span<const uint8_t> p, size_t off, WireName& out, size_t& next) {
  size_t pos = off;
  bool jumped = false;
  out.size = 0;
  for (;;) {
    if (pos >= p.size()) return false;
    uint8_t len = p[pos];
    if ((len & 0xC0) == 0xC0) {
      if (pos + 1 >= p.size()) return false;
      size_t target = static_cast<size_t>(len & 0x3F) << 8 | p[pos + 1];
      if (target >= pos) return false;  // forward or self pointer: a possible loop
      if (!jumped) next = pos + 2;
      jumped = true;
      pos = target;
      continue;
    }
    if (len & 0xC0) return false;  // 0x40 and 0x80 label types are obsolete or unassigned
    if (len == 0) {
      if (size_t{out.size} + 1 > kMaxName) return false;
      out.bytes[out.size++] = 0;
      if (!jumped) next = pos + 1;
      return true;
    }
    if (pos + 1 + len > p.size()) return false;
    if (size_t{out.size} + 1 + len + 1 > kMaxName) return false;  // room for the root label
    std::memcpy(out.bytes + out.size, &p[pos], 1 + len);
    out.size = static_cast<uint8_t>(out.size + 1 + len);
    pos += 1 + len;
  }
}

// Skips one resource record at `off`; false if it does not fit.
bool SkipRecord(std::span<const uint8_t> p, size_t& off) {
  WireName scratch;
  size_t next = 0;
  if (!ReadName(p, off, scratch, next)) return false;
  if (next + 10 > p.size()) return false;
  size_t rdlen = Get16(p, next + 8);
  if (next + 10 + rdlen > p.size()) return false;
  off = next + 10 + rdlen;
  return true;
}

}  // namespace

std::string TypeName(uint16_t t) {
  switch (t) {
    case type::kA: return "A";
    case type::kNS: return "NS";
    case type::kCNAME: return "CNAME";
    case type::kSOA: return "SOA";
    case type::kPTR: return "PTR";
    case type::kMX: return "MX";
    case type::kTXT: return "TXT";
    case type::kAAAA: return "AAAA";
    case type::kSRV: return "SRV";
    case type::kOPT: return "OPT";
    case type::kIXFR: return "IXFR";
    case type::kAXFR: return "AXFR";
    case type::kANY: return "ANY";
    case type::kCAA: return "CAA";
  }
  return "TYPE" + std::to_string(t);
}

uint16_t TypeFromName(std::string_view n) {
  for (uint16_t t : {type::kA, type::kNS, type::kCNAME, type::kSOA, type::kMX, type::kTXT, type::kAAAA, type::kSRV,
                     type::kCAA}) {
    if (TypeName(t) == n) return t;
  }
  return 0;
}

bool EncodeName(std::string_view text, WireName& out) {
  out.size = 0;
  if (text == "." || text.empty()) {
    out.bytes[out.size++] = 0;
    return true;
  }
  if (text.back() == '.') text.remove_suffix(1);
  size_t start = 0;
  while (start <= text.size()) {
    size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    size_t len = dot - start;
    if (len == 0 || len > 63 || out.size + 1 + len + 1 > kMaxName) return false;
    out.bytes[out.size++] = static_cast<uint8_t>(len);
    std::memcpy(out.bytes + out.size, text.data() + start, len);
    out.size = static_cast<uint8_t>(out.size + len);
    start = dot + 1;
  }
  out.bytes[out.size++] = 0;
  return true;
}

std::string DecodeName(std::span<const uint8_t> wire) {
  std::string out;
  size_t i = 0;
  while (i < wire.size() && wire[i] != 0) {
    size_t len = wire[i];
    for (size_t k = 1; k <= len && i + k < wire.size(); ++k) {
      char c = static_cast<char>(wire[i + k]);
      if (c == '.' || c == '\\') {
        out += '\\';
        out += c;
      } else if (std::isprint(static_cast<unsigned char>(c))) {
        out += c;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(static_cast<unsigned char>(c)));
        out += buf;
      }
    }
    out += '.';
    i += 1 + len;
  }
  return out.empty() ? "." : out;
}

void LowerName(WireName& name) {
  for (size_t i = 0; i < name.size; ++i) name.bytes[i] = Lower(name.bytes[i]);
}

ParseOutcome ParseQuery(std::span<const uint8_t> p, Query& q) {
  if (p.size() < kHeaderSize) return ParseOutcome::kDrop;
  q.id = Get16(p, 0);
  q.flags = Get16(p, 2);
  if (q.flags & 0x8000) return ParseOutcome::kDrop;  // a response: never answer one
  q.opcode = static_cast<uint8_t>((q.flags >> 11) & 0xF);
  q.qdcount = Get16(p, 4);
  uint16_t an = Get16(p, 6), ns = Get16(p, 8), ar = Get16(p, 10);
  q.qname.size = 0;
  q.edns.reset();
  q.tsig.reset();
  size_t off = kHeaderSize;
  if (q.qdcount == 1) {
    size_t next = 0;
    if (!ReadName(p, off, q.qname, next) || next + 4 > p.size()) {
      q.qname.size = 0;
      return ParseOutcome::kFormErr;
    }
    q.qtype = Get16(p, next);
    q.qclass = Get16(p, next + 2);
    off = next + 4;
  }
  // A query without exactly one question is FORMERR, and other opcodes
  // NOTIMP, both decided after the sections are read, so that the answer can
  // echo the query's OPT (RFC 6891 sections 6.1.1 and 7).
  bool bad_question_count = q.qdcount != 1 && q.opcode == 0;
  if (q.qdcount != 1) {
    for (int i = 0; i < q.qdcount; ++i) {
      WireName scratch;
      size_t next = 0;
      if (!ReadName(p, off, scratch, next) || next + 4 > p.size()) return ParseOutcome::kFormErr;
      off = next + 4;
    }
  }
  for (int i = 0; i < an + ns; ++i) {
    if (!SkipRecord(p, off)) return ParseOutcome::kFormErr;
  }
  for (int i = 0; i < ar; ++i) {
    size_t rr = off;
    if (!SkipRecord(p, off)) return ParseOutcome::kFormErr;
    // The record fits; is it an OPT?
    WireName owner;
    size_t next = 0;
    ReadName(p, rr, owner, next);
    if (Get16(p, next) == type::kTSIG) {
      // Last in the message (RFC 8945 section 5.1); RDATA: algorithm name
      // (uncompressed), time signed, fudge, MAC, original ID, error, other.
      if (i != ar - 1 || q.tsig) return ParseOutcome::kFormErr;
      size_t rd = next + 10, end = off;
      size_t alg_end = rd;
      while (alg_end < end && p[alg_end] != 0) {
        if (p[alg_end] > 63) return ParseOutcome::kFormErr;
        alg_end += 1 + p[alg_end];
        // A name is at most kMaxName bytes, with its root label (RFC 1035
        // section 3.1); the answer echoes it in a buffer of that bound.
        if (alg_end + 1 - rd > kMaxName) return ParseOutcome::kFormErr;
      }
      if (alg_end >= end || alg_end + 1 + 8 > end) return ParseOutcome::kFormErr;
      Tsig t;
      t.key = owner;
      t.algorithm = p.subspan(rd, alg_end + 1 - rd);
      t.time_and_fudge = p.subspan(alg_end + 1, 8);
      q.tsig = t;
      continue;
    }
    if (Get16(p, next) != type::kOPT) continue;
    if (q.edns || owner.size != 1) return ParseOutcome::kBadEdns;  // a second OPT, or not at the root
    Edns e;
    e.udp_payload = Get16(p, next + 2);
    e.version = p[next + 5];
    e.dnssec_ok = p[next + 6] & 0x80;
    // Options must tile RDATA exactly.
    size_t opt = next + 10, end = off;
    while (opt < end) {
      if (opt + 4 > end) return ParseOutcome::kBadEdns;
      size_t len = Get16(p, opt + 2);
      if (opt + 4 + len > end) return ParseOutcome::kBadEdns;
      opt += 4 + len;
    }
    q.edns = e;
  }
  if (off != p.size() || bad_question_count) return ParseOutcome::kFormErr;  // or bytes beyond the counts
  if (q.opcode != 0) return ParseOutcome::kNotImp;
  return ParseOutcome::kOk;
}

bool MessageWriter::Put(const void* p, size_t n) {
  if (overflow_ || size_ + n > buf_.size()) {
    overflow_ = true;
    return false;
  }
  std::memcpy(buf_.data() + size_, p, n);
  size_ += n;
  return true;
}

void MessageWriter::Header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
  uint8_t h[kHeaderSize] = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), static_cast<uint8_t>(flags >> 8),
                            static_cast<uint8_t>(flags), static_cast<uint8_t>(qd >> 8), static_cast<uint8_t>(qd),
                            static_cast<uint8_t>(an >> 8), static_cast<uint8_t>(an), static_cast<uint8_t>(ns >> 8),
                            static_cast<uint8_t>(ns), static_cast<uint8_t>(ar >> 8), static_cast<uint8_t>(ar)};
  size_ = 0;
  overflow_ = false;
  ntargets_ = 0;
  Put(h, sizeof h);
}

void MessageWriter::SetCounts(uint16_t an, uint16_t ns, uint16_t ar) {
  if (size_ < kHeaderSize) return;
  uint8_t* h = buf_.data();
  h[6] = static_cast<uint8_t>(an >> 8), h[7] = static_cast<uint8_t>(an);
  h[8] = static_cast<uint8_t>(ns >> 8), h[9] = static_cast<uint8_t>(ns);
  h[10] = static_cast<uint8_t>(ar >> 8), h[11] = static_cast<uint8_t>(ar);
}

void MessageWriter::SetFlags(uint16_t flags) {
  if (size_ < kHeaderSize) return;
  buf_[2] = static_cast<uint8_t>(flags >> 8);
  buf_[3] = static_cast<uint8_t>(flags);
}

void MessageWriter::Truncate(size_t size) {
  size_ = size;
  overflow_ = false;
  while (ntargets_ > 0 && targets_[ntargets_ - 1] >= size) --ntargets_;
}

int MessageWriter::FindSuffix(std::span<const uint8_t> suffix) const {
  for (int t = 0; t < ntargets_; ++t) {
    // Walk the name at targets_[t] (following pointers) beside `suffix`.
    size_t pos = targets_[t], i = 0;
    bool equal = true;
    for (int guard = 0; guard < 128; ++guard) {
      uint8_t len = buf_[pos];
      if ((len & 0xC0) == 0xC0) {
        pos = static_cast<size_t>(len & 0x3F) << 8 | buf_[pos + 1];
        continue;
      }
      if (i >= suffix.size() || suffix[i] != len) {
        equal = false;
        break;
      }
      if (len == 0) break;
      for (size_t k = 1; k <= len; ++k) {
        if (Lower(buf_[pos + k]) != Lower(suffix[i + k])) {
          equal = false;
          break;
        }
      }
      if (!equal) break;
      pos += 1 + len;
      i += 1 + len;
    }
    if (equal) return targets_[t];
  }
  return -1;
}

void MessageWriter::PutName(std::span<const uint8_t> name) {
  // Suffixes of this name become compression targets only once the whole
  // name is written: matching against a half-written name would read bytes
  // not yet there and could point the name into itself.
  uint16_t fresh[kMaxTargets];
  int nfresh = 0;
  size_t i = 0;
  bool pointed = false;
  while (i < name.size() && name[i] != 0) {
    int t = FindSuffix(name.subspan(i));
    if (t >= 0) {
      uint8_t ptr[2] = {static_cast<uint8_t>(0xC0 | (t >> 8)), static_cast<uint8_t>(t)};
      Put(ptr, 2);
      pointed = true;
      break;
    }
    if (size_ < 0x3FFF && nfresh < kMaxTargets) fresh[nfresh++] = static_cast<uint16_t>(size_);
    size_t len = name[i];
    Put(&name[i], 1 + len);
    i += 1 + len;
  }
  if (!pointed) {
    uint8_t root = 0;
    Put(&root, 1);
  }
  if (overflow_) return;
  for (int k = 0; k < nfresh && ntargets_ < kMaxTargets; ++k) targets_[ntargets_++] = fresh[k];
}

void MessageWriter::Question(const WireName& name, uint16_t qtype, uint16_t qclass) {
  PutName(name.span());
  uint8_t tail[4] = {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), static_cast<uint8_t>(qclass >> 8),
                     static_cast<uint8_t>(qclass)};
  Put(tail, 4);
}

void MessageWriter::Record(std::span<const uint8_t> owner, std::span<const uint8_t> fixed) {
  PutName(owner);
  Put(fixed.data(), fixed.size());
}

void MessageWriter::Opt(uint16_t payload, uint8_t ext_rcode, uint8_t version, bool dnssec_ok) {
  uint8_t opt[11] = {0,
                     static_cast<uint8_t>(type::kOPT >> 8),
                     static_cast<uint8_t>(type::kOPT),
                     static_cast<uint8_t>(payload >> 8),
                     static_cast<uint8_t>(payload),
                     ext_rcode,
                     version,
                     static_cast<uint8_t>(dnssec_ok ? 0x80 : 0),
                     0,
                     0,
                     0};
  Put(opt, sizeof opt);
}

}  // namespace lifeboat::dns
