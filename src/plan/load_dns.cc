// The dns: section of the plan: zone, listeners, SOA, NS and records.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <sstream>
#include <unordered_map>

#include "core/strings.h"
#include "plan/load.h"
#include "plan/load_internal.h"
#include "rdata/rdata.h"

namespace lifeboat::plan {
namespace {

using namespace std::chrono_literals;

// Names and values go through the one rdata codec (rdata/rdata.h), which the
// DNS server encodes with too.
Result<std::string> Absolute(std::string_view name, const std::string& zone) { return rdata::AbsoluteName(name, zone); }

bool InZone(const std::string& name, const std::string& zone) {
  if (zone == ".") return true;
  return name == zone || (name.size() > zone.size() && name.compare(name.size() - zone.size(), zone.size(), zone) == 0 &&
                          name[name.size() - zone.size() - 1] == '.');
}

Result<std::string> CheckValue(const std::string& type, const std::string& v, const std::string& zone) {
  return rdata::Normalize(type, v, zone);
}

using EndpointIndex = std::unordered_map<std::string, const Endpoint*>;

// A policy record's endpoint must have an address of the record's family.
void CheckEndpointFamily(Context& ctx, const EndpointIndex& endpoints, const YAML::Mark& at, const std::string& path,
                         const std::string& type, const std::string& endpoint) {
  auto found = endpoints.find(endpoint);
  if (found == endpoints.end()) return;
  const Endpoint* ep = found->second;
  in_addr a4;
  in6_addr a6;
  bool v4 = inet_pton(AF_INET, ep->address.host.c_str(), &a4) == 1;
  bool v6 = inet_pton(AF_INET6, ep->address.host.c_str(), &a6) == 1;
  if ((type == "A" && !v4) || (type == "AAAA" && !v6)) {
    ctx.Error(at, path + ": endpoint '" + endpoint + "' has address " + ep->address.ToString() +
                      ", which cannot answer an " + type + " record",
              type == "A" ? "give the endpoint an IPv4 address" : "give the endpoint an IPv6 address");
  }
}

}  // namespace

void LoadDns(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  YAML::Node node = top.Get("dns");
  if (!node.IsDefined()) return;
  Map m(ctx, node, "dns", {"zone", "listen", "soa", "ns", "records"});
  if (!m.is_map()) return;
  Dns dns;
  std::string zone;
  if (m.Str("zone", zone, true)) {
    if (zone.empty() || zone.back() != '.') zone += '.';
    auto z = Absolute(zone, ".");
    if (!z) {
      ctx.Error(m.Get("zone").Mark(), "dns.zone: " + z.error().message());
    } else {
      dns.zone = *z;
    }
  }
  if (dns.zone.empty()) return;  // nothing below can be checked without it
  std::vector<std::string> listen{"0.0.0.0:53"};
  m.StrList("listen", listen);
  YAML::Node ln = m.Get("listen");
  for (size_t i = 0; i < listen.size(); ++i) {
    auto a = ParseAddress(listen[i]);
    if (!a) {
      ctx.Error(ln.IsSequence() ? ln[i].Mark() : ln.Mark(), "dns.listen: " + a.error().message());
    } else {
      dns.listen.push_back(*a);
    }
  }
  std::vector<std::string> ns;
  if (m.StrList("ns", ns, true)) {
    YAML::Node nn = m.Get("ns");
    for (size_t i = 0; i < ns.size(); ++i) {
      auto n = Absolute(ns[i], dns.zone);
      if (!n) {
        ctx.Error(nn.IsSequence() ? nn[i].Mark() : nn.Mark(), "dns.ns: " + n.error().message());
      } else {
        dns.ns.push_back(*n);
      }
    }
    if (ns.empty()) ctx.Error(nn.Mark(), "dns.ns: empty", "name at least one name server, e.g. [ns1." + dns.zone + "]");
  }
  Map soa(ctx, m.Get("soa"), "dns.soa", {"mname", "rname", "serial", "refresh", "retry", "expire", "minimum", "ttl"});
  std::string mname = dns.ns.empty() ? "ns1." + dns.zone : dns.ns[0];
  std::string rname = "hostmaster." + dns.zone;
  soa.Str("mname", mname);
  if (soa.Str("rname", rname) && rname.find('@') != std::string::npos) {
    ctx.Error(soa.Get("rname").Mark(), "dns.soa.rname: '" + rname + "' is an e-mail address",
              "write the mailbox as a name: replace '@' with '.', e.g. ops.example.com.");
  }
  for (auto [key, value, out] : {std::tuple{"mname", mname, &dns.soa.mname}, std::tuple{"rname", rname, &dns.soa.rname}}) {
    auto n = Absolute(value, dns.zone);
    if (!n) {
      if (key != std::string_view("rname") || value.find('@') == std::string::npos) {  // rname's '@': said above
        ctx.Error(soa.Has(key) ? soa.Get(key).Mark() : soa.mark(), soa.Sub(key) + ": " + n.error().message());
      }
    } else {
      *out = *n;
    }
  }
  int serial = 1;
  if (soa.Int("serial", serial, 0, 2147483647)) dns.soa.serial = static_cast<uint32_t>(serial);
  soa.Dur("refresh", dns.soa.refresh);
  soa.Dur("retry", dns.soa.retry);
  soa.Dur("expire", dns.soa.expire);
  soa.Dur("minimum", dns.soa.minimum);
  soa.Dur("ttl", dns.soa.ttl);
  for (auto key : {"refresh", "retry", "expire", "minimum", "ttl"}) {
    Duration d = key == std::string_view("refresh") ? dns.soa.refresh
                 : key == std::string_view("retry") ? dns.soa.retry
                 : key == std::string_view("expire") ? dns.soa.expire
                 : key == std::string_view("minimum") ? dns.soa.minimum
                                                      : dns.soa.ttl;
    if (d % 1s != Duration::zero() || d > std::chrono::seconds(2147483647)) {
      ctx.Error(soa.Get(key).Mark(), soa.Sub(key) + ": a DNS time must be whole seconds up to 68 years");
    }
  }

  auto endpoints = NamesOf(plan.endpoints);
  EndpointIndex endpoint_index;
  for (const auto& ep : plan.endpoints) endpoint_index.emplace(ep.name, &ep);
  // name -> the record types there, each with the line of its first record
  std::unordered_map<std::string, std::vector<std::pair<std::string, int>>> types_at;
  YAML::Node records = m.Get("records");
  if (records.IsDefined() && !records.IsSequence()) {
    ctx.Error(records.Mark(), "dns.records: expected a list of records, got " + KindOf(records),
              "write one '- { name: ..., type: ... }' per record");
  } else if (records.IsDefined()) {
    for (size_t i = 0; i < records.size() && !ctx.full(); ++i) {
      YAML::Node rn = records[i];
      Map r(ctx, rn, "dns.records[" + std::to_string(i) + "]",
            {"name", "type", "ttl", "policy", "value", "primary", "secondary", "targets", "fail_open"});
      if (!r.is_map()) continue;
      Record rec;
      std::string name;
      if (r.Str("name", name, true)) {
        auto n = Absolute(name, dns.zone);
        if (!n) {
          ctx.Error(r.Get("name").Mark(), r.Sub("name") + ": " + n.error().message());
        } else if (!InZone(*n, dns.zone)) {
          ctx.Error(r.Get("name").Mark(), r.Sub("name") + ": '" + *n + "' is outside the zone " + dns.zone,
                    "write it relative to the zone, or as a name ending in ." + dns.zone);
        } else {
          rec.name = *n;
        }
      }
      r.Enum("type", rec.type,
             {{"A", std::string("A")}, {"AAAA", std::string("AAAA")}, {"CNAME", std::string("CNAME")},
              {"TXT", std::string("TXT")}, {"MX", std::string("MX")}, {"SRV", std::string("SRV")},
              {"CAA", std::string("CAA")}},
             true);
      if (r.Dur("ttl", rec.ttl) && (rec.ttl % 1s != Duration::zero() || rec.ttl > std::chrono::seconds(2147483647))) {
        ctx.Error(r.Get("ttl").Mark(), r.Sub("ttl") + ": a TTL must be whole seconds up to 68 years");
      }
      r.Enum("policy", rec.policy,
             {{"simple", RecordPolicy::kSimple}, {"failover", RecordPolicy::kFailover},
              {"weighted", RecordPolicy::kWeighted}, {"multivalue", RecordPolicy::kMultivalue}});
      bool is_policy = rec.policy != RecordPolicy::kSimple;
      if (is_policy && !rec.type.empty() && rec.type != "A" && rec.type != "AAAA") {
        ctx.Error(r.Get("policy").Mark(), r.Sub("policy") + ": only A and AAAA records take a routing policy",
                  "remove 'policy', or make the record type A or AAAA");
      }
      r.Bool("fail_open", rec.fail_open);
      auto only = [&](const char* key, bool allowed, const char* which) {
        if (r.Has(key) && !allowed) {
          ctx.Error(r.Get(key).Mark(), r.Sub(key) + ": only " + which + " records have '" + key + "'");
        }
      };
      only("value", !is_policy, "simple");
      only("primary", rec.policy == RecordPolicy::kFailover, "failover");
      only("secondary", rec.policy == RecordPolicy::kFailover, "failover");
      only("targets", rec.policy == RecordPolicy::kWeighted || rec.policy == RecordPolicy::kMultivalue,
           "weighted and multivalue");
      only("fail_open", is_policy, "failover, weighted and multivalue");
      switch (rec.policy) {
        case RecordPolicy::kSimple: {
          std::vector<std::string> values;
          if (r.StrList("value", values, true) && !rec.type.empty()) {
            YAML::Node vn = r.Get("value");
            if (values.empty()) ctx.Error(vn.Mark(), r.Sub("value") + ": empty", "give at least one value");
            if (rec.type == "CNAME" && values.size() > 1) {
              ctx.Error(vn.Mark(), r.Sub("value") + ": a CNAME has exactly one target");
            }
            for (size_t k = 0; k < values.size(); ++k) {
              auto v = CheckValue(rec.type, values[k], dns.zone);
              if (!v) {
                ctx.Error(vn.IsSequence() ? vn[k].Mark() : vn.Mark(), r.Sub("value") + ": " + v.error().message());
              } else {
                rec.values.push_back(*v);
              }
            }
          }
          break;
        }
        case RecordPolicy::kFailover:
          for (auto [key, out] : {std::pair{"primary", &rec.primary}, std::pair{"secondary", &rec.secondary}}) {
            if (r.Str(key, *out, true) && CheckRef(ctx, r.Get(key).Mark(), r.Sub(key), *out, endpoints, "endpoint")) {
              CheckEndpointFamily(ctx, endpoint_index, r.Get(key).Mark(), r.Sub(key), rec.type, *out);
            }
          }
          if (!rec.primary.empty() && rec.primary == rec.secondary) {
            ctx.Error(r.Get("secondary").Mark(), r.Sub("secondary") + ": the same endpoint as the primary",
                      "fail over to an endpoint in another region");
          }
          break;
        case RecordPolicy::kWeighted:
        case RecordPolicy::kMultivalue: {
          YAML::Node tn = r.Get("targets");
          if (!tn.IsDefined()) {
            r.Missing("targets", "[ { endpoint: NAME, weight: N }, ... ]");
            break;
          }
          if (!tn.IsSequence() || tn.size() == 0) {
            ctx.Error(tn.Mark(), r.Sub("targets") + ": expected a non-empty list of targets, got " + KindOf(tn));
            break;
          }
          int total = 0;
          for (size_t k = 0; k < tn.size(); ++k) {
            std::string tpath = r.Sub("targets") + "[" + std::to_string(k) + "]";
            WeightedTarget t;
            YAML::Mark at = tn[k].Mark();
            if (tn[k].IsScalar() && rec.policy == RecordPolicy::kMultivalue) {
              t.endpoint = tn[k].Scalar();
            } else {
              Map tm(ctx, tn[k], tpath, {"endpoint", "weight"});
              tm.Str("endpoint", t.endpoint, true);
              if (tm.Has("endpoint")) at = tm.Get("endpoint").Mark();
              if (rec.policy == RecordPolicy::kWeighted) {
                tm.Int("weight", t.weight, 0, 255);
              } else if (tm.Has("weight")) {
                ctx.Error(tm.Get("weight").Mark(), tpath + ".weight: only weighted records have weights");
              }
            }
            total += t.weight;
            if (t.endpoint.empty()) continue;
            if (CheckRef(ctx, at, tpath, t.endpoint, endpoints, "endpoint")) {
              CheckEndpointFamily(ctx, endpoint_index, at, tpath, rec.type, t.endpoint);
            }
            for (const auto& prev : rec.targets) {
              if (prev.endpoint == t.endpoint) ctx.Error(at, tpath + ": endpoint '" + t.endpoint + "' is listed twice");
            }
            rec.targets.push_back(t);
          }
          if (rec.policy == RecordPolicy::kWeighted && total == 0) {
            ctx.Error(tn.Mark(), r.Sub("targets") + ": every weight is 0", "give at least one target a weight above 0");
          }
          break;
        }
      }
      if (rec.name.empty() || rec.type.empty()) continue;
      // One record per name and type; CNAME alone at its name and never at the apex.
      // One error per offending record (ten TXT records of one name gave 45).
      auto& types_here = types_at[rec.name];
      bool seen_type = false;
      for (const auto& [prev_type, line] : types_here) {
        if (prev_type == rec.type) {
          ctx.Error(r.Get("name").Mark(),
                    r.Sub("name") + ": a second " + rec.type + " record for " + rec.name + " (the first is on line " +
                        std::to_string(line) + ")",
                    "list every value in one record's 'value' (or 'targets')");
          seen_type = true;
          break;
        }
        if (prev_type == "CNAME" || rec.type == "CNAME") {
          ctx.Error(r.Get("name").Mark(), r.Sub("name") + ": " + rec.name + " has a CNAME and a " +
                                              (rec.type == "CNAME" ? prev_type : rec.type) + " record (line " +
                                              std::to_string(line) + ")",
                    "a name with a CNAME can have no other record (RFC 1034 3.6.2)");
          break;
        }
      }
      if (rec.type == "CNAME" && rec.name == dns.zone) {
        ctx.Error(r.Get("name").Mark(), r.Sub("name") + ": a CNAME cannot be at the zone apex",
                  "the apex has SOA and NS records; use an A record with a policy instead");
      }
      if (!seen_type) types_here.emplace_back(rec.type, r.Get("name").Mark().line + 1);
      dns.records.push_back(std::move(rec));
    }
  }
  plan.dns = std::move(dns);
}

}  // namespace lifeboat::plan
