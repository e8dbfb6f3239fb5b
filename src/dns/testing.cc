#include "dns/testing.h"

namespace lifeboat::dns::testing {
namespace {

void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
uint16_t Get16(const std::vector<uint8_t>& p, size_t o) { return static_cast<uint16_t>(p[o] << 8 | p[o + 1]); }

// A name at `off` with pointers followed (bounded hops); advances `off`.
bool Name(const std::vector<uint8_t>& p, size_t& off, std::string& out) {
  size_t pos = off;
  bool jumped = false;
  out.clear();
  for (int steps = 0; steps < 256; ++steps) {  // up to 127 labels plus pointer hops
    if (pos >= p.size()) return false;
    uint8_t len = p[pos];
    if ((len & 0xC0) == 0xC0) {
      if (pos + 1 >= p.size()) return false;
      if (!jumped) off = pos + 2;
      jumped = true;
      pos = static_cast<size_t>(len & 0x3F) << 8 | p[pos + 1];
      continue;
    }
    if (len == 0) {
      if (!jumped) off = pos + 1;
      if (out.empty()) out.assign(1, '.');  // not = ".": GCC 12 false -Wrestrict
      return true;
    }
    if (pos + 1 + len > p.size()) return false;
    out.append(reinterpret_cast<const char*>(&p[pos + 1]), len);
    out += '.';
    pos += 1 + len;
  }
  return false;
}

}  // namespace

std::vector<uint8_t> MakeQuery(const std::string& name, uint16_t qtype, QueryOptions o) {
  std::vector<uint8_t> q;
  Put16(q, o.id);
  Put16(q, o.flags);
  Put16(q, o.qdcount);
  Put16(q, 0);
  Put16(q, 0);
  Put16(q, o.edns_payload ? 1 : 0);
  WireName n;
  EncodeName(name, n);
  for (int i = 0; i < o.qdcount; ++i) {
    q.insert(q.end(), n.bytes, n.bytes + n.size);
    Put16(q, qtype);
    Put16(q, kClassIN);
  }
  if (o.edns_payload) {
    q.push_back(0);
    Put16(q, type::kOPT);
    Put16(q, *o.edns_payload);
    q.push_back(0);
    q.push_back(o.edns_version);
    Put16(q, o.dnssec_ok ? 0x8000 : 0);
    Put16(q, 0);
  }
  return q;
}

std::optional<Response> ParseResponse(const std::vector<uint8_t>& p) {
  if (p.size() < 12) return std::nullopt;
  Response r;
  r.id = Get16(p, 0);
  r.flags = Get16(p, 2);
  r.rcode = r.flags & 0xF;
  uint16_t qd = Get16(p, 4), an = Get16(p, 6), ns = Get16(p, 8), ar = Get16(p, 10);
  size_t off = 12;
  if (qd == 1) {
    if (!Name(p, off, r.qname) || off + 4 > p.size()) return std::nullopt;
    r.qtype = Get16(p, off);
    off += 4;
  }
  for (int section = 0; section < 3; ++section) {
    int count = section == 0 ? an : section == 1 ? ns : ar;
    for (int i = 0; i < count; ++i) {
      Rr rr;
      if (!Name(p, off, rr.owner) || off + 10 > p.size()) return std::nullopt;
      rr.type = Get16(p, off);
      uint16_t klass = Get16(p, off + 2);
      rr.ttl = static_cast<uint32_t>(Get16(p, off + 4)) << 16 | Get16(p, off + 6);
      size_t len = Get16(p, off + 8);
      off += 10;
      if (off + len > p.size()) return std::nullopt;
      rr.rdata.assign(p.begin() + static_cast<long>(off), p.begin() + static_cast<long>(off + len));
      off += len;
      if (rr.type == type::kOPT) {
        r.has_opt = true;
        r.opt_payload = klass;
        r.opt_do = rr.ttl & 0x8000;
        r.rcode = static_cast<uint16_t>(r.rcode | ((rr.ttl >> 24) << 4));
        continue;
      }
      (section == 0 ? r.answer : section == 1 ? r.authority : r.additional).push_back(rr);
    }
  }
  if (off != p.size()) return std::nullopt;
  return r;
}

}  // namespace lifeboat::dns::testing
