// Answer(): query bytes in, response bytes out, from a snapshot, with no
// allocation and no lock. The hot path of the DNS server; the rules are in
// docs/format/dns.md.
#include "dns/zone.h"

#include <algorithm>
#include <cstring>

namespace lifeboat::dns {
namespace {

constexpr size_t kMaxCnameChain = 8;  // links of a CNAME chain followed inside the zone

bool InZone(std::string_view name, std::string_view apex) {
  if (name.size() < apex.size()) return false;
  if (name.size() == apex.size()) return name == apex;
  // `apex` must be a whole-label suffix: walk labels from the front.
  std::string_view rest = name;
  while (rest.size() > apex.size()) rest.remove_prefix(1 + static_cast<uint8_t>(rest[0]));
  return rest == apex;
}

uint16_t Flags(const Query& q, uint16_t rcode, bool aa) {
  uint16_t f = 0x8000 | (q.flags & 0x7800) | (q.flags & 0x0100);  // QR, opcode, RD copied
  if (aa) f |= 0x0400;
  return static_cast<uint16_t>(f | (rcode & 0xF));
}

}  // namespace

size_t Answer(const Snapshot& snap, std::span<const uint8_t> packet, std::span<uint8_t> out, Transport transport,
              uint32_t random, AnswerInfo& info) {
  Query q;
  ParseOutcome parsed = ParseQuery(packet, q);
  info = AnswerInfo{};
  info.qtype = q.qtype;
  if (parsed == ParseOutcome::kDrop) return 0;

  size_t limit = 65535;
  if (transport == Transport::kUdp) {
    limit = q.edns ? std::clamp<size_t>(q.edns->udp_payload, kMinUdpPayload, kMaxUdpPayload) : kMinUdpPayload;
  }
  MessageWriter w(out.subspan(0, std::min(limit, out.size())));
  bool has_question = q.qname.size > 0;
  auto finish_error = [&](uint16_t rc) {
    info.rcode = rc;
    uint16_t ext = rc >> 4;
    w.Header(q.id, Flags(q, rc & 0xF, false), has_question ? 1 : 0, 0, 0, q.edns ? 1 : 0);
    if (has_question) w.Question(q.qname, q.qtype, q.qclass);
    // The DO bit is copied into every response (RFC 3225 section 3).
    if (q.edns) w.Opt(kMaxUdpPayload, static_cast<uint8_t>(ext), 0, q.edns->dnssec_ok);
    return w.overflow() ? 0 : w.size();
  };
  switch (parsed) {
    case ParseOutcome::kFormErr:
    case ParseOutcome::kBadEdns:
      if (parsed == ParseOutcome::kBadEdns) q.edns.reset();  // do not echo a malformed OPT
      return finish_error(rcode::kFormErr);
    case ParseOutcome::kNotImp:
      has_question = false;  // the sections of another opcode mean something else
      return finish_error(rcode::kNotImp);
    default:
      break;
  }
  if (q.tsig) {
    // This server knows no TSIG key: NOTAUTH with an unsigned TSIG record
    // saying BADKEY (RFC 8945 section 5.2.2), never an unsigned answer to a
    // client that expects a signed one.
    info.rcode = rcode::kNotAuth;
    w.Header(q.id, Flags(q, rcode::kNotAuth, false), has_question ? 1 : 0, 0, 0, (q.edns ? 1 : 0) + 1);
    if (has_question) w.Question(q.qname, q.qtype, q.qclass);
    if (q.edns) w.Opt(kMaxUdpPayload, 0, 0, q.edns->dnssec_ok);
    uint8_t tsig[kMaxName * 2 + 32];
    size_t n = 0;
    auto put = [&](std::span<const uint8_t> b) {
      std::memcpy(tsig + n, b.data(), b.size());
      n += b.size();
    };
    auto put16 = [&](uint16_t v) {
      tsig[n++] = static_cast<uint8_t>(v >> 8);
      tsig[n++] = static_cast<uint8_t>(v);
    };
    put(q.tsig->key.span());
    put16(type::kTSIG);
    put16(type::kANY);  // class ANY
    put16(0);           // TTL 0
    put16(0);
    size_t rdlength_at = n;
    put16(0);
    put(q.tsig->algorithm);
    put(q.tsig->time_and_fudge);
    put16(0);     // MAC size: no MAC
    put16(q.id);  // original ID
    put16(rcode::kBadKey);
    put16(0);  // other len
    uint16_t rdlength = static_cast<uint16_t>(n - rdlength_at - 2);
    tsig[rdlength_at] = static_cast<uint8_t>(rdlength >> 8);
    tsig[rdlength_at + 1] = static_cast<uint8_t>(rdlength);
    w.Raw({tsig, n});
    return w.overflow() ? 0 : w.size();
  }
  if (q.edns && q.edns->version > 0) return finish_error(rcode::kBadVers);
  if (q.qclass != kClassIN || q.qtype == type::kAXFR || q.qtype == type::kIXFR || q.qtype == type::kOPT) {
    return finish_error(rcode::kRefused);
  }
  WireName lower = q.qname;
  LowerName(lower);
  if (!InZone(lower.view(), snap.apex())) return finish_error(rcode::kRefused);  // no recursion, ever

  const Node* node = snap.Find(lower.view());
  // Collect the answer: follow CNAMEs inside the zone. Whole RRsets, never
  // a part of one (RFC 2181 section 5: it was cut at 64 records).
  struct Part {
    std::span<const uint8_t> owner;
    const RRSet* set = nullptr;
    int pick = -1;  // a weighted set answers with one record
  };
  Part parts[kMaxCnameChain + 1];
  size_t nparts = 0;
  bool data = false;  // the chain ended at the type asked for
  uint16_t rc = rcode::kNoError;
  auto owner_of = [&](const Node* n, size_t hop) {
    return hop == 0 ? q.qname.span()
                    : std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(n->owner.data()), n->owner.size());
  };
  auto push_set = [&](const RRSet& s, std::span<const uint8_t> owner) {
    if (s.records.empty()) return;
    Part part{owner, &s, -1};
    if (!s.cumulative.empty()) {
      uint32_t pick = random % s.cumulative.back();
      part.pick = static_cast<int>(std::upper_bound(s.cumulative.begin(), s.cumulative.end(), pick) -
                                   s.cumulative.begin());
    }
    parts[nparts++] = part;
  };
  bool chain_left_zone = false;
  for (size_t hop = 0;; ++hop) {
    if (!node) {
      rc = rcode::kNxDomain;
      break;
    }
    std::span<const uint8_t> owner = owner_of(node, hop);
    const RRSet* cname = node->Find(type::kCNAME);
    if (cname && q.qtype != type::kCNAME && q.qtype != type::kANY) {  // ANY gets the CNAME, unfollowed
      push_set(*cname, owner);
      std::string_view target = node->cname;
      if (hop + 1 >= kMaxCnameChain || !InZone(target, snap.apex())) {
        chain_left_zone = true;  // the resolver follows it from here
        break;
      }
      node = snap.Find(target);
      continue;
    }
    const RRSet* set = nullptr;
    if (q.qtype == type::kANY) {
      // RFC 8482: answer ANY with one RRset, not all of them.
      for (const auto& s : node->rrsets) {
        if (!s.records.empty()) {
          set = &s;
          break;
        }
      }
    } else {
      set = node->Find(q.qtype);
    }
    if (set) {
      info.outcome = set->outcome;  // a policy with every target down has an empty set: NODATA
      push_set(*set, owner);
      data = !set->records.empty();
    }
    break;
  }
  // NXDOMAIN and NODATA carry the SOA, also at the end of a CNAME chain
  // (RFC 2308 section 2.2); a chain leaving the zone is not negative here.
  bool negative = rc == rcode::kNxDomain || (!data && !chain_left_zone);
  info.rcode = rc;

  w.Header(q.id, Flags(q, rc, true), 1, 0, 0, 0);
  w.Question(q.qname, q.qtype, q.qclass);
  size_t after_question = w.size();
  uint16_t an = 0, ns = 0;
  for (size_t i = 0; i < nparts && !w.overflow(); ++i) {
    const Part& part = parts[i];
    if (part.pick >= 0) {
      w.Record(part.owner, part.set->records[static_cast<size_t>(part.pick)]);
      ++an;
      continue;
    }
    for (const auto& r : part.set->records) {
      if (w.overflow()) break;
      w.Record(part.owner, r);
      ++an;
    }
  }
  if (negative && !w.overflow()) {
    std::string_view apex = snap.apex();
    w.Record(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(apex.data()), apex.size()), snap.negative_soa());
    ns = 1;
  }
  // The addresses of in-zone name servers in an NS answer (RFC 1034 section
  // 4.3.2): dropped, without TC, when they do not fit (RFC 2181 section 9).
  uint16_t ar = 0;
  if (data && nparts > 0 && parts[nparts - 1].set->type == type::kNS && !w.overflow()) {
    size_t before = w.size();
    for (const auto& fixed : parts[nparts - 1].set->records) {
      std::string_view target(reinterpret_cast<const char*>(fixed.data() + 10), fixed.size() - 10);
      const Node* host = snap.Find(target);
      if (host == nullptr) continue;
      for (uint16_t t : {type::kA, type::kAAAA}) {
        const RRSet* addresses = host->Find(t);
        if (addresses == nullptr) continue;
        for (const auto& r : addresses->records) {
          w.Record(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(host->owner.data()), host->owner.size()), r);
          ++ar;
        }
      }
    }
    if (w.overflow() || (q.edns && w.size() + 11 > std::min(limit, out.size()))) {
      w.Truncate(before);
      ar = 0;
    }
  }
  // Room for the OPT record is reserved: it must never be what overflows.
  if (w.overflow() || (q.edns && w.size() + 11 > std::min(limit, out.size()))) {
    w.Truncate(after_question);
    w.SetFlags(static_cast<uint16_t>(Flags(q, rc, true) | 0x0200));  // TC
    an = ns = ar = 0;
    info.truncated = true;
  }
  if (q.edns) w.Opt(kMaxUdpPayload, 0, 0, q.edns->dnssec_ok);
  w.SetCounts(an, ns, static_cast<uint16_t>(ar + (q.edns ? 1 : 0)));
  return w.overflow() ? 0 : w.size();
}

}  // namespace lifeboat::dns
