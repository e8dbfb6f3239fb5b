#include "dns/zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "rdata/rdata.h"

namespace lifeboat::dns {
namespace {

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
    return DecodeName(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()));
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

}  // namespace lifeboat::dns
