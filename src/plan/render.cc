#include "plan/render.h"

#include <yaml-cpp/yaml.h>

namespace lifeboat::plan {
namespace {

using Json = nlohmann::ordered_json;

std::string Dur(Duration d) { return FormatDuration(d); }

// Record names are stored absolute; show them relative to the zone as written.
std::string Relative(const std::string& name, const std::string& zone) {
  if (name == zone) return "@";
  if (name.size() > zone.size() && name.ends_with("." + zone)) return name.substr(0, name.size() - zone.size() - 1);
  return name;
}

void Emit(YAML::Emitter& out, const Json& j) {
  if ((j.is_object() || j.is_array()) && j.empty()) {
    out << YAML::Flow << (j.is_object() ? YAML::BeginMap : YAML::BeginSeq)
        << (j.is_object() ? YAML::EndMap : YAML::EndSeq);
  } else if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      Emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    bool flat = std::all_of(j.begin(), j.end(), [](const Json& e) { return e.is_primitive(); });
    out << (flat ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
    for (const auto& e : j) Emit(out, e);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << j.get<std::string>();  // yaml-cpp quotes only where a plain scalar would not read back
  } else if (j.is_boolean()) {
    out << (j.get<bool>() ? "true" : "false");
  } else if (j.is_number()) {
    out << j.dump();
  } else {
    out << YAML::Null;
  }
}

}  // namespace

Json ToJson(const Plan& p) {
  Json j;
  j["name"] = p.name;
  j["pattern"] = Name(p.pattern);
  Json obj = Json::object();
  if (p.objectives.rto) obj["rto"] = Dur(*p.objectives.rto);
  if (p.objectives.rpo) obj["rpo"] = Dur(*p.objectives.rpo);
  j["objectives"] = obj;
  Json regions = Json::object();
  for (const auto& r : p.regions) regions[r.name] = {{"role", Name(r.role)}, {"agent", r.agent.ToString()}};
  j["regions"] = regions;
  Json checks = Json::object();
  for (const auto& c : p.checks) {
    Json cj = {{"type", Name(c.type)}};
    if (c.type == CheckType::kHttp || c.type == CheckType::kHttps) {
      cj["path"] = c.path;
      if (!c.host.empty()) cj["host"] = c.host;
      cj["expect_status"] = std::to_string(c.expect_status.lo) + "-" + std::to_string(c.expect_status.hi);
      if (!c.expect_body.empty()) cj["expect_body"] = c.expect_body;
    }
    if (c.type == CheckType::kHttps) cj["tls_verify"] = c.tls_verify;
    if (c.type == CheckType::kPostgres) {
      cj["database"] = c.database;
      cj["role"] = c.role;
    }
    if (c.type == CheckType::kCalculated) {
      cj["children"] = c.children;
      if (c.min_healthy == 0) {
        cj["min_healthy"] = "all";
      } else {
        cj["min_healthy"] = c.min_healthy;
      }
    }
    cj["interval"] = Dur(c.interval);
    cj["timeout"] = Dur(c.timeout);
    cj["fall"] = c.fall;
    cj["rise"] = c.rise;
    cj["invert"] = c.invert;
    cj["vantage_quorum"] = c.vantage_quorum == 0 ? Json("majority") : Json(c.vantage_quorum);
    checks[c.name] = cj;
  }
  j["checks"] = checks;
  Json endpoints = Json::object();
  for (const auto& e : p.endpoints) {
    Json ej = {{"region", e.region}, {"address", e.address.ToString()}};
    if (!e.check.empty()) ej["check"] = e.check;
    endpoints[e.name] = ej;
  }
  j["endpoints"] = endpoints;
  if (p.dns) {
    const Dns& d = *p.dns;
    Json dj;
    dj["zone"] = d.zone;
    Json listen = Json::array();
    for (const auto& a : d.listen) listen.push_back(a.ToString());
    dj["listen"] = listen;
    dj["soa"] = {{"mname", d.soa.mname},       {"rname", d.soa.rname},       {"serial", d.soa.serial},
                 {"refresh", Dur(d.soa.refresh)}, {"retry", Dur(d.soa.retry)}, {"expire", Dur(d.soa.expire)},
                 {"minimum", Dur(d.soa.minimum)}, {"ttl", Dur(d.soa.ttl)}};
    dj["ns"] = d.ns;
    Json records = Json::array();
    for (const auto& r : d.records) {
      Json rj = {{"name", Relative(r.name, d.zone)}, {"type", r.type}, {"ttl", Dur(r.ttl)}, {"policy", Name(r.policy)}};
      switch (r.policy) {
        case RecordPolicy::kSimple: rj["value"] = r.values; break;
        case RecordPolicy::kFailover:
          rj["primary"] = r.primary;
          rj["secondary"] = r.secondary;
          break;
        case RecordPolicy::kWeighted:
        case RecordPolicy::kMultivalue: {
          Json t = Json::array();
          for (const auto& wt : r.targets) {
            Json tj = {{"endpoint", wt.endpoint}};
            if (r.policy == RecordPolicy::kWeighted) tj["weight"] = wt.weight;
            t.push_back(tj);
          }
          rj["targets"] = t;
          break;
        }
      }
      if (r.policy != RecordPolicy::kSimple) rj["fail_open"] = r.fail_open;
      records.push_back(rj);
    }
    dj["records"] = records;
    j["dns"] = dj;
  }
  if (p.proxy) {
    Json listeners = Json::object();
    for (const auto& l : p.proxy->listeners) {
      Json eps = Json::array();
      for (const auto& t : l.endpoints) {
        eps.push_back(l.policy == ProxyPolicy::kWeighted ? Json{{"endpoint", t.endpoint}, {"weight", t.weight}}
                                                         : Json(t.endpoint));
      }
      listeners[l.name] = {{"listen", l.listen.ToString()},
                           {"protocol", Name(l.protocol)},
                           {"policy", Name(l.policy)},
                           {"endpoints", eps},
                           {"connect_timeout", Dur(l.connect_timeout)},
                           {"idle_timeout", Dur(l.idle_timeout)},
                           {"drain", Dur(l.drain)},
                           {"max_connections", l.max_connections},
                           {"proxy_protocol", l.proxy_protocol ? "v2" : "none"},
                           {"fail_open", l.fail_open}};
    }
    j["proxy"] = {{"threads", p.proxy->threads}, {"listeners", listeners}};
  }
  j["routing_controls"] = {{"safety", {{"min_on", p.routing_controls.min_on}}}};
  if (!p.routing_controls.token_file.empty()) j["routing_controls"]["token_file"] = p.routing_controls.token_file;
  Json volumes = Json::object();
  for (const auto& v : p.volumes) {
    Json rep = {{"mode", Name(v.replication.mode)},
                {"port", v.replication.port},
                {"coalesce", Dur(v.replication.coalesce)},
                {"verify_every", Dur(v.replication.verify_every)}};
    if (v.replication.bandwidth) rep["bandwidth"] = FormatRate(*v.replication.bandwidth);
    if (!v.replication.key_file.empty()) rep["key_file"] = v.replication.key_file;
    Json path = Json::object();
    for (const auto& [region, dir] : v.path) path[region] = dir;
    volumes[v.name] = {{"path", path}, {"replication", rep}};
  }
  j["volumes"] = volumes;
  Json dbs = Json::object();
  for (const auto& d : p.databases) {
    Json inst = Json::object();
    for (const auto& [region, conn] : d.instances) inst[region] = conn;
    Json dj = {{"engine", d.engine}, {"instances", inst}, {"mode", Name(d.mode)},
               {"max_lag_on_failover", FormatSize(d.max_lag_on_failover)}};
    if (d.when_standby_down) dj["when_standby_down"] = Name(*d.when_standby_down);
    if (!d.data_dir.empty()) {
      Json dirs = Json::object();
      for (const auto& [region, dir] : d.data_dir) dirs[region] = dir;
      dj["data_dir"] = dirs;
    }
    if (!d.bin_dir.empty()) dj["bin_dir"] = d.bin_dir;
    if (!d.password_file.empty()) dj["password_file"] = d.password_file;
    dbs[d.name] = dj;
  }
  j["databases"] = dbs;
  Json locs = Json::object();
  for (const auto& l : p.backup.locations) {
    Json lj = {{"type", Name(l.type)}};
    if (l.type == LocationType::kFilesystem) {
      lj["path"] = l.path;
    } else {
      lj["endpoint"] = l.endpoint;
      lj["bucket"] = l.bucket;
      lj["prefix"] = l.prefix;
      lj["region"] = l.s3_region;
      lj["addressing"] = Name(l.addressing);
    }
    lj["access"] = Name(l.access);
    if (!l.password_file.empty()) lj["password_file"] = l.password_file;
    locs[l.name] = lj;
  }
  Json scheds = Json::object();
  for (const auto& s : p.backup.schedules) {
    Json sj = {{"cron", s.cron}, {"location", s.location}};
    if (s.cluster.empty()) {
      sj["volumes"] = s.volumes;
    } else {
      sj["cluster"] = s.cluster;
      for (auto [key, list] : {std::pair{"namespaces", &s.namespaces}, {"exclude_namespaces", &s.exclude_namespaces},
                               {"resources", &s.resources}, {"exclude_resources", &s.exclude_resources}}) {
        if (!list->empty()) sj[key] = *list;
      }
      if (!s.selector.empty()) sj["selector"] = s.selector;
      sj["include_cluster_resources"] = s.include_cluster_resources;
      if (s.volume_data) sj["volume_data"] = true;
    }
    sj["ttl"] = Dur(s.ttl);
    scheds[s.name] = sj;
    if (s.keep.any()) {
      Json k = Json::object();
      for (auto [key, n] : {std::pair{"last", s.keep.last}, {"hourly", s.keep.hourly}, {"daily", s.keep.daily},
                            {"weekly", s.keep.weekly}, {"monthly", s.keep.monthly}}) {
        if (n > 0) k[key] = n;
      }
      scheds[s.name]["keep"] = k;
    }
  }
  j["backup"] = {{"locations", locs}, {"schedules", scheds}};
  Json hooks = Json::object();
  for (const auto& h : p.failover.hooks) hooks[h.name] = {{"run", h.run}, {"timeout", Dur(h.timeout)}};
  j["failover"] = {{"mode", Name(p.failover.mode)},
                   {"quorum", p.failover.quorum},
                   {"grace", Dur(p.failover.grace)},
                   {"lease", Dur(p.failover.lease)},
                   {"self_fence", p.failover.self_fence},
                   {"steps", p.failover.steps},
                   {"hooks", hooks}};
  const StateConfig& st = p.state;
  Json state = {{"store", Name(st.store)}};
  if (st.store == StoreKind::kEmbedded) {
    if (!st.path.empty()) state["path"] = st.path;  // empty: next to the data dirs, known only to the agent
  } else {
    state["endpoints"] = st.endpoints;
    state["prefix"] = st.prefix;
    Json tls = Json::object();
    if (!st.ca_file.empty()) tls["ca_file"] = st.ca_file;
    if (!st.cert_file.empty()) tls["cert_file"] = st.cert_file;
    if (!st.key_file.empty()) tls["key_file"] = st.key_file;
    if (!tls.empty()) state["tls"] = tls;
  }
  state["timeout"] = Dur(st.timeout);
  j["state"] = state;
  Json clusters = Json::object();
  for (const auto& c : p.clusters) {
    Json cj = {{"kubeconfig", c.kubeconfig}};
    if (!c.context.empty()) cj["context"] = c.context;
    cj["qps"] = c.qps;
    cj["burst"] = c.burst;
    if (!c.scale.empty()) {
      Json scale = Json::array();
      for (const auto& t : c.scale) {
        scale.push_back({{t.kind == "Deployment" ? "deployment" : "statefulset", t.ns + "/" + t.name},
                         {"replicas", t.replicas}});
      }
      cj["scale"] = scale;
      cj["scale_timeout"] = Dur(c.scale_timeout);
    }
    if (c.node_agent_namespace != "lifeboat") cj["node_agent_namespace"] = c.node_agent_namespace;
    if (c.volume_wait != std::chrono::minutes(10)) cj["volume_wait"] = Dur(c.volume_wait);
    if (c.restore) {
      const ClusterRestorePlan& r = *c.restore;
      Json rj = {{"from", r.from}, {"location", r.location}};
      if (!r.namespaces.empty()) rj["namespaces"] = r.namespaces;
      if (!r.exclude_namespaces.empty()) rj["exclude_namespaces"] = r.exclude_namespaces;
      if (!r.namespace_map.empty()) rj["namespace_map"] = r.namespace_map;
      if (!r.storage_class_map.empty()) rj["storage_class_map"] = r.storage_class_map;
      rj["existing"] = r.update_existing ? "update" : "skip";
      cj["restore"] = rj;
    }
    clusters[c.region] = cj;
  }
  if (!p.clusters.empty()) j["clusters"] = clusters;
  return j;
}

std::string ToYaml(const Plan& plan) {
  YAML::Emitter out;
  Emit(out, ToJson(plan));
  return std::string(out.c_str()) + "\n";
}

}  // namespace lifeboat::plan
