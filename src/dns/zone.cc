#include "dns/zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "rdata/rdata.h"

namespace lifeboat::dns {
namespace {

constexpr size_t kMaxCnameChain = 8;
constexpr size_t kMaxMultivalue = 8;

void Put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void Put32(std::vector<uint8_t>& v, uint32_t x) {
  Put16(v, static_cast<uint16_t>(x >> 16));
  Put16(v, static_cast<uint16_t>(x));
}

uint32_t Seconds(Duration d) { return static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(d).count()); }

Result<std::string> Wire(std::string_view presentation) {
  WireName n;
  if (!EncodeName(presentation, n)) return InvalidArgument("bad DNS name '" + std::string(presentation) + "'");
  LowerName(n);
  return std::string(n.view());
}

void AppendName(std::vector<uint8_t>& rdata, const std::string& wire) { rdata.insert(rdata.end(), wire.begin(), wire.end()); }

// TYPE CLASS TTL RDLENGTH RDATA.
std::vector<uint8_t> Fixed(uint16_t t, uint32_t ttl, const std::vector<uint8_t>& rdata) {
  std::vector<uint8_t> v;
  Put16(v, t);
  Put16(v, kClassIN);
  Put32(v, ttl);
  Put16(v, static_cast<uint16_t>(rdata.size()));
  v.insert(v.end(), rdata.begin(), rdata.end());
  return v;
}

// RDATA of a value the plan loader normalized, through the one codec below
// both (rdata/rdata.h).
Result<std::vector<uint8_t>> Rdata(uint16_t t, const std::string& value) {
  return rdata::Encode(TypeName(t), value);
}

Result<std::vector<uint8_t>> EndpointRecord(const plan::Plan& plan, const std::string& endpoint, uint16_t t,
                                            uint32_t ttl) {
  const plan::Endpoint* ep = plan.FindEndpoint(endpoint);
  if (!ep) return InvalidArgument("no endpoint " + endpoint);
  LB_ASSIGN_OR_RETURN(auto rdata, Rdata(t, ep->address.host));
  return Fixed(t, ttl, rdata);
}

// Resolves a policy record against the endpoints' state.
Result<RRSet> ResolvePolicy(const plan::Record& rec, const plan::Plan& plan, uint16_t t,
                            const std::function<bool(const std::string&)>& up) {
  RRSet set;
  set.type = t;
  uint32_t ttl = Seconds(rec.ttl);
  auto add = [&](const std::string& ep) -> Status {
    LB_ASSIGN_OR_RETURN(auto r, EndpointRecord(plan, ep, t, ttl));
    set.records.push_back(std::move(r));
    return Ok();
  };
  switch (rec.policy) {
    case plan::RecordPolicy::kFailover:
      if (up(rec.primary)) {
        LB_RETURN_IF_ERROR(add(rec.primary));
        set.outcome = Outcome::kPrimary;
      } else if (up(rec.secondary)) {
        LB_RETURN_IF_ERROR(add(rec.secondary));
        set.outcome = Outcome::kSecondary;
      } else if (rec.fail_open) {
        LB_RETURN_IF_ERROR(add(rec.primary));
        LB_RETURN_IF_ERROR(add(rec.secondary));
        set.outcome = Outcome::kFailOpen;
      } else {
        set.outcome = Outcome::kNoData;
      }
      break;
    case plan::RecordPolicy::kWeighted: {
      // Healthy targets with weight > 0; else healthy ones of weight 0 (evenly);
      // else, failing open, every target by its weight.
      std::vector<std::pair<std::string, uint32_t>> pick;
      for (const auto& tg : rec.targets) {
        if (tg.weight > 0 && up(tg.endpoint)) pick.emplace_back(tg.endpoint, tg.weight);
      }
      set.outcome = Outcome::kHealthy;
      if (pick.empty()) {
        for (const auto& tg : rec.targets) {
          if (up(tg.endpoint)) pick.emplace_back(tg.endpoint, 1);
        }
      }
      if (pick.empty() && rec.fail_open) {
        for (const auto& tg : rec.targets) pick.emplace_back(tg.endpoint, static_cast<uint32_t>(tg.weight));
        bool any = std::any_of(pick.begin(), pick.end(), [](const auto& p) { return p.second > 0; });
        if (!any) {
          for (auto& p : pick) p.second = 1;
        }
        set.outcome = Outcome::kFailOpen;
      }
      if (pick.empty()) set.outcome = Outcome::kNoData;
      uint32_t total = 0;
      for (const auto& [ep, w] : pick) {
        if (w == 0) continue;
        LB_RETURN_IF_ERROR(add(ep));
        total += w;
        set.cumulative.push_back(total);
      }
      break;
    }
    case plan::RecordPolicy::kMultivalue: {
      set.outcome = Outcome::kHealthy;
      for (const auto& tg : rec.targets) {
        if (set.records.size() < kMaxMultivalue && up(tg.endpoint)) LB_RETURN_IF_ERROR(add(tg.endpoint));
      }
      if (set.records.empty()) {
        if (rec.fail_open) {
          for (const auto& tg : rec.targets) {
            if (set.records.size() < kMaxMultivalue) LB_RETURN_IF_ERROR(add(tg.endpoint));
          }
          set.outcome = Outcome::kFailOpen;
        } else {
          set.outcome = Outcome::kNoData;
        }
      }
      break;
    }
    case plan::RecordPolicy::kSimple:
      break;
  }
  return set;
}

}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kNone: return "none";
    case Outcome::kPrimary: return "primary";
    case Outcome::kSecondary: return "secondary";
    case Outcome::kHealthy: return "healthy";
    case Outcome::kFailOpen: return "fail-open";
    case Outcome::kNoData: return "nodata";
  }
  return "?";
}

const RRSet* Node::Find(uint16_t t) const {
  for (const auto& s : rrsets) {
    if (s.type == t) return &s;
  }
  return nullptr;
}

const Node* Snapshot::Find(std::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

Result<std::shared_ptr<const Snapshot>> Snapshot::Build(const plan::Dns& dns, const plan::Plan& plan,
                                                        const std::function<bool(const std::string&)>& up,
                                                        uint64_t generation) {
  auto snap = std::make_shared<Snapshot>();
  snap->generation_ = generation;
  LB_ASSIGN_OR_RETURN(snap->apex_, Wire(dns.zone));
  auto node = [&](const std::string& owner) -> Node& {
    Node& n = snap->nodes_[owner];
    n.owner = owner;
    // Every name between it and the apex exists (empty non-terminals).
    std::string_view rest = owner;
    while (rest.size() > snap->apex_.size()) {
      rest.remove_prefix(1 + static_cast<uint8_t>(rest[0]));
      auto& parent = snap->nodes_[std::string(rest)];
      if (parent.owner.empty()) parent.owner = std::string(rest);
    }
    return n;
  };
  auto add = [&](const std::string& owner, RRSet set) {
    Node& n = node(owner);
    for (auto& existing : n.rrsets) {
      if (existing.type == set.type) {
        for (auto& r : set.records) existing.records.push_back(std::move(r));
        return;
      }
    }
    n.rrsets.push_back(std::move(set));
  };

  // SOA and NS at the apex.
  std::vector<uint8_t> soa;
  LB_ASSIGN_OR_RETURN(std::string mname, Wire(dns.soa.mname));
  LB_ASSIGN_OR_RETURN(std::string rname, Wire(dns.soa.rname));
  AppendName(soa, mname);
  AppendName(soa, rname);
  Put32(soa, dns.soa.serial);
  Put32(soa, Seconds(dns.soa.refresh));
  Put32(soa, Seconds(dns.soa.retry));
  Put32(soa, Seconds(dns.soa.expire));
  Put32(soa, Seconds(dns.soa.minimum));
  uint32_t soa_ttl = Seconds(dns.soa.ttl);
  add(snap->apex_, RRSet{type::kSOA, {Fixed(type::kSOA, soa_ttl, soa)}, {}, Outcome::kNone});
  snap->negative_soa_ = Fixed(type::kSOA, std::min(soa_ttl, Seconds(dns.soa.minimum)), soa);
  RRSet ns{type::kNS, {}, {}, Outcome::kNone};
  for (const auto& n : dns.ns) {
    LB_ASSIGN_OR_RETURN(auto rdata, Rdata(type::kNS, n));
    ns.records.push_back(Fixed(type::kNS, soa_ttl, rdata));
  }
  add(snap->apex_, std::move(ns));

  for (const auto& rec : dns.records) {
    uint16_t t = TypeFromName(rec.type);
    LB_ASSIGN_OR_RETURN(std::string owner, Wire(rec.name));
    RRSet set;
    if (rec.policy == plan::RecordPolicy::kSimple) {
      set.type = t;
      for (const auto& v : rec.values) {
        LB_ASSIGN_OR_RETURN(auto rdata, Rdata(t, v));
        set.records.push_back(Fixed(t, Seconds(rec.ttl), rdata));
      }
      if (t == type::kCNAME && !rec.values.empty()) {
        LB_ASSIGN_OR_RETURN(std::string target, Wire(rec.values[0]));
        node(owner).cname = target;
      }
    } else {
      LB_ASSIGN_OR_RETURN(set, ResolvePolicy(rec, plan, t, up));
      snap->policy_outcomes_.emplace_back(rec.name + " " + rec.type, set.outcome);
    }
    add(owner, std::move(set));
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

std::string Snapshot::MasterFile() const {
  auto presentation = [](std::string_view wire) {
    std::string out;
    for (size_t i = 0; i < wire.size() && wire[i] != 0; i += 1 + static_cast<uint8_t>(wire[i])) {
      out.append(wire.substr(i + 1, static_cast<uint8_t>(wire[i])));
      out += '.';
    }
    return out.empty() ? std::string(".") : out;
  };
  // Canonical order: by labels from the root (the apex first).
  auto key = [&](const std::string& wire) {
    std::vector<std::string> labels;
    for (size_t i = 0; i < wire.size() && wire[i] != 0; i += 1 + static_cast<uint8_t>(wire[i])) {
      labels.push_back(wire.substr(i + 1, static_cast<uint8_t>(wire[i])));
    }
    return std::vector<std::string>(labels.rbegin(), labels.rend());
  };
  std::vector<const Node*> nodes;
  for (const auto& [name, node] : nodes_) nodes.push_back(&node);
  std::sort(nodes.begin(), nodes.end(), [&](const Node* a, const Node* b) { return key(a->owner) < key(b->owner); });
  std::string out = "; zone " + presentation(apex_) + " as lifeboat answers it (snapshot " + std::to_string(generation_) +
                    ")\n$ORIGIN " + presentation(apex_) + "\n";
  for (const Node* node : nodes) {
    std::vector<const RRSet*> sets;
    for (const auto& set : node->rrsets) sets.push_back(&set);
    std::stable_sort(sets.begin(), sets.end(), [](const RRSet* a, const RRSet* b) {
      return (a->type == type::kSOA) > (b->type == type::kSOA);  // SOA first
    });
    for (const RRSet* set : sets) {
      if (!set->cumulative.empty()) out += "; weighted: one of these is answered per query\n";
      for (const auto& fixed : set->records) {
        uint32_t ttl = static_cast<uint32_t>(fixed[4]) << 24 | static_cast<uint32_t>(fixed[5]) << 16 |
                       static_cast<uint32_t>(fixed[6]) << 8 | fixed[7];
        std::string type_name = TypeName(set->type);
        auto value = rdata::Decode(type_name, std::span<const uint8_t>(fixed).subspan(10));
        out += presentation(node->owner) + " " + std::to_string(ttl) + " IN " + type_name + " " +
               (value.ok() ? *value : "; " + value.error().message()) + "\n";
      }
    }
  }
  return out;
}

namespace {

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
