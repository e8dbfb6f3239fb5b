// The data sections of the plan: volumes, databases and backup.
#include <libpq-fe.h>

#include "core/cron.h"
#include "core/strings.h"
#include "plan/load.h"
#include "plan/load_internal.h"

namespace lifeboat::plan {
namespace {

// Reads a { region: value } mapping; every serving region needs a value and a
// witness may have none. `what` names a value ("path") and `example` shows
// one; `check` validates one value and may rewrite it (returns an error text
// or "").
template <typename Check>
std::map<std::string, std::string> PerRegion(const Map& parent, std::string_view key, const Plan& plan,
                                             const std::string& what, const std::string& example, Check check) {
  Context& ctx = parent.ctx();
  std::map<std::string, std::string> out;
  YAML::Node node = parent.Get(key);
  if (!node.IsDefined()) {
    parent.Missing(key, "{ REGION: " + example + ", ... }");
    return out;
  }
  Map m = Map::Named(ctx, node, parent.Sub(key));
  if (!m.is_map()) return out;
  auto regions = NamesOf(plan.regions);
  for (const auto& e : m.entries()) {
    if (!CheckRef(ctx, e.key_node.Mark(), m.path(), e.key, regions, "region")) continue;
    const Region* r = plan.FindRegion(e.key);
    if (r->role == Role::kWitness) {
      ctx.Error(e.key_node.Mark(), m.Sub(e.key) + ": region '" + e.key + "' is a witness and holds no data",
                "remove it; only primary and standby regions hold data");
      continue;
    }
    auto v = ScalarOf(ctx, e.value, m.Sub(e.key), what);
    if (!v) continue;
    std::string problem = check(*v);
    if (!problem.empty()) {
      ctx.Error(e.value.Mark(), m.Sub(e.key) + ": " + problem);
      continue;
    }
    out[e.key] = *v;
  }
  for (const auto& r : plan.regions) {
    if (r.serves() && !m.Has(r.name)) {
      ctx.Error(m.mark(), m.path() + ": no " + what + " for region '" + r.name + "'",
                "every " + std::string(Name(r.role)) + " region holds a copy; add '" + r.name + ": " + example + "'");
    }
  }
  return out;
}

// Why a libpq connection string cannot be a database instance's, or "".
// A password in it would show in `plan show` and in logs: it comes from
// password_file or the environment instead.
std::string ConninfoProblem(const std::string& conninfo) {
  if (conninfo.empty()) return "empty connection string";
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err != nullptr ? std::string(err) : "cannot be parsed";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    PQfreemem(err);
    return "not a libpq connection string: " + why;
  }
  std::string problem;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k = o->keyword;
    if (k == "password") {
      problem = "holds a password, which would show in `plan show` and in logs; put it in the database's "
                "password_file (or LIFEBOAT_DB_<NAME>_PASSWORD) instead";
    } else if (k == "replication") {
      problem = "sets 'replication', which lifeboat chooses per connection; remove it";
    }
  }
  PQconninfoFree(opts);
  return problem;
}

}  // namespace

void LoadVolumes(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map volumes = Map::Named(ctx, top.Get("volumes"), "volumes");
  for (const auto& e : volumes.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "volume")) continue;
    Map m(ctx, e.value, volumes.Sub(e.key), {"path", "replication"});
    if (!m.is_map()) continue;
    Volume v;
    v.name = e.key;
    // backup-restore keeps data by backups alone: a volume replicates only when the plan says so.
    if (plan.pattern == Pattern::kBackupRestore && !m.Has("replication")) v.replication.mode = ReplicationMode::kOff;
    v.path = PerRegion(m, "path", plan, "path", "/srv/" + e.key, [&ctx](std::string& p) { return ctx.Resolve(p); });
    Map rep(ctx, m.Get("replication"), m.Sub("replication"),
            {"mode", "port", "coalesce", "verify_every", "bandwidth", "key_file"});
    rep.Enum("mode", v.replication.mode, {{"continuous", ReplicationMode::kContinuous}, {"off", ReplicationMode::kOff}});
    int port = v.replication.port;
    if (rep.Int("port", port, 1, 65535)) v.replication.port = static_cast<uint16_t>(port);
    rep.Dur("coalesce", v.replication.coalesce);
    if (rep.Str("key_file", v.replication.key_file)) {
      ctx.ResolvePath(rep.Get("key_file").Mark(), rep.Sub("key_file"), v.replication.key_file);
    }
    if (rep.Dur("verify_every", v.replication.verify_every) &&
        v.replication.verify_every < std::chrono::minutes(1) && v.replication.verify_every != Duration::zero()) {
      ctx.Error(rep.Get("verify_every").Mark(), rep.Sub("verify_every") + ": verifying more than once a minute "
                                                                          "rereads the whole volume constantly",
                "use 1m or more, or 0s to turn periodic verification off");
    }
    if (rep.OptRate("bandwidth", v.replication.bandwidth) && v.replication.bandwidth->bytes_per_second == 0) {
      ctx.Error(rep.Get("bandwidth").Mark(), rep.Sub("bandwidth") + ": 0 would never send anything",
                "remove it for no limit");
    }
    for (const auto& other : plan.volumes) {
      for (const auto& [region, path] : v.path) {
        auto it = other.path.find(region);
        if (it == other.path.end()) continue;
        const std::string& a = path;
        const std::string& b = it->second;
        bool nested = a == b || (a.starts_with(b) && a[b.size()] == '/') || (b.starts_with(a) && b[a.size()] == '/');
        if (nested) {
          ctx.Error(m.mark(), m.Sub("path") + "." + region + ": " + a + " overlaps volume '" + other.name +
                                  "' (" + b + ")",
                    "volumes must not contain one another");
        }
      }
    }
    plan.volumes.push_back(std::move(v));
  }
}

void LoadDatabases(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map dbs = Map::Named(ctx, top.Get("databases"), "databases");
  for (const auto& e : dbs.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "database")) continue;
    Map m(ctx, e.value, dbs.Sub(e.key), {"engine", "instances", "mode", "when_standby_down", "max_lag_on_failover",
                                          "data_dir", "bin_dir", "password_file"});
    if (!m.is_map()) continue;
    Database d;
    d.name = e.key;
    m.Enum("engine", d.engine, {{"postgresql", std::string("postgresql")}}, true);
    d.instances = PerRegion(m, "instances", plan, "connection string", "\"host=10.0.1.30 dbname=" + e.key + "\"",
                            [](std::string& s) { return ConninfoProblem(s); });
    m.Enum("mode", d.mode, {{"async", DbMode::kAsync}, {"sync", DbMode::kSync}});
    StandbyDown down = StandbyDown::kBlock;
    if (m.Enum("when_standby_down", down, {{"block", StandbyDown::kBlock}, {"degrade", StandbyDown::kDegrade}})) {
      d.when_standby_down = down;
      if (d.mode != DbMode::kSync) {
        ctx.Warning(m.KeyMark("when_standby_down"), m.Sub("when_standby_down") + ": only a sync database waits for "
                                                                                "its standby",
                    "remove it, or set 'mode: sync'");
      }
    } else if (d.mode == DbMode::kSync && m.Has("mode")) {
      m.Missing("when_standby_down", "block (commits wait while the standby is away) or degrade (they go on "
                                     "asynchronously and an alert fires)");
    }
    m.SizeOf("max_lag_on_failover", d.max_lag_on_failover);
    if (m.Has("data_dir")) {
      Map dirs = Map::Named(ctx, m.Get("data_dir"), m.Sub("data_dir"));
      auto regions = NamesOf(plan.regions);
      for (const auto& de : dirs.entries()) {
        if (!CheckRef(ctx, de.key_node.Mark(), dirs.path(), de.key, regions, "region")) continue;
        if (!d.instances.count(de.key)) {
          ctx.Error(de.key_node.Mark(), dirs.Sub(de.key) + ": region '" + de.key + "' has no instance of " + e.key);
          continue;
        }
        auto dir = ScalarOf(ctx, de.value, dirs.Sub(de.key), "path");
        if (!dir) continue;
        ctx.ResolvePath(de.value.Mark(), dirs.Sub(de.key), *dir);
        d.data_dir[de.key] = *dir;
      }
    }
    if (m.Str("bin_dir", d.bin_dir)) ctx.ResolvePath(m.Get("bin_dir").Mark(), m.Sub("bin_dir"), d.bin_dir);
    if (m.Str("password_file", d.password_file)) {
      ctx.ResolvePath(m.Get("password_file").Mark(), m.Sub("password_file"), d.password_file);
    }
    plan.databases.push_back(std::move(d));
  }
}

void LoadBackup(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map b(ctx, top.Get("backup"), "backup", {"locations", "schedules"});
  Map locs = Map::Named(ctx, b.Get("locations"), "backup.locations");
  for (const auto& e : locs.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "location")) continue;
    Map m(ctx, e.value, locs.Sub(e.key), {"type", "path", "endpoint", "bucket", "prefix", "region", "addressing", "access", "password_file"});
    if (!m.is_map()) continue;
    Location l;
    l.name = e.key;
    m.Enum("type", l.type, {{"filesystem", LocationType::kFilesystem}, {"s3", LocationType::kS3}}, true);
    m.Enum("access", l.access, {{"ReadWrite", Access::kReadWrite}, {"ReadOnly", Access::kReadOnly}});
    if (m.Str("password_file", l.password_file)) {
      ctx.ResolvePath(m.Get("password_file").Mark(), m.Sub("password_file"), l.password_file);
    }
    if (l.type == LocationType::kFilesystem) {
      if (m.Str("path", l.path, true)) ctx.ResolvePath(m.Get("path").Mark(), m.Sub("path"), l.path);
      for (const char* k : {"endpoint", "bucket", "prefix", "region", "addressing"}) {
        if (m.Has(k)) ctx.Error(m.Get(k).Mark(), m.Sub(k) + ": only s3 locations have '" + std::string(k) + "'");
      }
    } else {
      if (m.Str("endpoint", l.endpoint, true) && !l.endpoint.starts_with("http://") &&
          !l.endpoint.starts_with("https://")) {
        ctx.Error(m.Get("endpoint").Mark(), m.Sub("endpoint") + ": '" + l.endpoint + "' is not an http(s) URL",
                  "write it as https://s3.example.com");
      }
      m.Str("bucket", l.bucket, true);
      m.Str("prefix", l.prefix);
      m.Str("region", l.s3_region);
      m.Enum("addressing", l.addressing,
             {{"auto", S3Addressing::kAuto}, {"path", S3Addressing::kPath}, {"virtual", S3Addressing::kVirtual}});
      if (m.Has("path")) ctx.Error(m.Get("path").Mark(), m.Sub("path") + ": s3 locations have a bucket and prefix, not a path");
    }
    plan.backup.locations.push_back(std::move(l));
  }
  Map scheds = Map::Named(ctx, b.Get("schedules"), "backup.schedules");
  auto locations = NamesOf(plan.backup.locations);
  auto volumes = NamesOf(plan.volumes);
  for (const auto& e : scheds.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "schedule")) continue;
    Map m(ctx, e.value, scheds.Sub(e.key),
          {"cron", "location", "volumes", "cluster", "namespaces", "exclude_namespaces", "resources",
           "exclude_resources", "selector", "include_cluster_resources", "volume_data", "ttl", "keep"});
    if (!m.is_map()) continue;
    Schedule s;
    s.name = e.key;
    if (m.Str("cron", s.cron, true)) {
      auto c = CronSchedule::Parse(s.cron);
      if (!c) ctx.Error(m.Get("cron").Mark(), m.Sub("cron") + ": " + c.error().message());
    }
    if (m.Str("location", s.location, true) &&
        CheckRef(ctx, m.Get("location").Mark(), m.Sub("location"), s.location, locations, "backup location")) {
      if (plan.FindLocation(s.location)->access == Access::kReadOnly) {
        ctx.Error(m.Get("location").Mark(), m.Sub("location") + ": location '" + s.location + "' is ReadOnly",
                  "schedules write backups; point it at a ReadWrite location");
      }
    }
    if (m.Str("cluster", s.cluster)) {
      CheckRef(ctx, m.Get("cluster").Mark(), m.Sub("cluster"), s.cluster, NamesOf(plan.regions), "region");
      if (m.Has("volumes")) {
        ctx.Error(m.Get("volumes").Mark(), m.Sub("volumes") + ": a schedule backs up volumes or a cluster, not both",
                  "make two schedules");
      }
    } else {
      for (const char* k : {"namespaces", "exclude_namespaces", "resources", "exclude_resources", "selector",
                            "include_cluster_resources", "volume_data"}) {
        if (m.Has(k)) {
          ctx.Error(m.KeyMark(k), m.Sub(k) + ": selects what a cluster backup holds, and this schedule has no cluster",
                    "add cluster: REGION, or remove it");
        }
      }
    }
    m.StrList("namespaces", s.namespaces);
    m.StrList("exclude_namespaces", s.exclude_namespaces);
    m.StrList("resources", s.resources);
    m.StrList("exclude_resources", s.exclude_resources);
    m.Str("selector", s.selector);
    m.Bool("volume_data", s.volume_data);
    m.Enum("include_cluster_resources", s.include_cluster_resources,
           {{"auto", std::string("auto")}, {"true", std::string("true")}, {"false", std::string("false")}});
    if (s.cluster.empty() && !m.Has("volumes")) {
      ctx.Error(e.value.Mark(), scheds.Sub(e.key) + ": backs up neither volumes nor a cluster",
                "add volumes: [a, b, ...] or cluster: REGION");
    }
    if (s.cluster.empty() && m.StrList("volumes", s.volumes)) {
      YAML::Node vn = m.Get("volumes");
      for (size_t i = 0; i < s.volumes.size(); ++i) {
        CheckRef(ctx, vn.IsSequence() ? vn[i].Mark() : vn.Mark(), m.Sub("volumes"), s.volumes[i], volumes, "volume");
      }
      if (s.volumes.empty()) ctx.Error(vn.Mark(), m.Sub("volumes") + ": empty", "name the volumes to back up");
    }
    if (m.Dur("ttl", s.ttl) && s.ttl < std::chrono::hours(1)) {
      ctx.Error(m.Get("ttl").Mark(), m.Sub("ttl") + ": " + FormatDuration(s.ttl) + " would delete backups almost at once",
                "keep backups for at least 1h; 720h is 30 days");
    }
    if (m.Has("keep")) {
      Map k(ctx, m.Get("keep"), m.Sub("keep"), {"last", "hourly", "daily", "weekly", "monthly"});
      if (k.is_map()) {
        k.Int("last", s.keep.last, 0, 100000);
        k.Int("hourly", s.keep.hourly, 0, 100000);
        k.Int("daily", s.keep.daily, 0, 100000);
        k.Int("weekly", s.keep.weekly, 0, 100000);
        k.Int("monthly", s.keep.monthly, 0, 100000);
      }
    }
    plan.backup.schedules.push_back(std::move(s));
  }
}

namespace {

// clusters.REGION.scale: [{ deployment: NAMESPACE/NAME, replicas: N }, { statefulset: ... }]
void LoadScale(Context& ctx, const Map& m, Cluster& c) {
  YAML::Node list = m.Get("scale");
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    ctx.Error(list.Mark(), m.Sub("scale") + ": expected a list",
              "scale: [{ deployment: NAMESPACE/NAME, replicas: N }, { statefulset: NAMESPACE/NAME, replicas: N }]");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = m.Sub("scale") + "[" + std::to_string(i) + "]";
    Map w(ctx, list[i], path, {"deployment", "statefulset", "replicas"});
    if (!w.is_map()) continue;
    ScaleTarget t;
    std::string ref;
    bool dep = w.Has("deployment"), sts = w.Has("statefulset");
    if (dep == sts) {
      ctx.Error(w.mark(), path + ": name exactly one workload, as deployment: NAMESPACE/NAME or statefulset: NAMESPACE/NAME");
      continue;
    }
    const char* key = dep ? "deployment" : "statefulset";
    t.kind = dep ? "Deployment" : "StatefulSet";
    if (!w.Str(key, ref, true)) continue;
    auto slash = ref.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size() || ref.find('/', slash + 1) != std::string::npos) {
      ctx.Error(w.Get(key).Mark(), path + "." + key + ": " + Quote(ref) + " is not NAMESPACE/NAME",
                "write the namespace too, as in shop/web");
      continue;
    }
    t.ns = ref.substr(0, slash);
    t.name = ref.substr(slash + 1);
    w.Int("replicas", t.replicas, 0, 100000, true);
    for (const auto& o : c.scale) {
      if (o.kind == t.kind && o.ns == t.ns && o.name == t.name) {
        ctx.Error(w.mark(), path + ": " + key + " " + ref + " is listed twice");
      }
    }
    c.scale.push_back(std::move(t));
  }
}

// A map of OLD: NEW names (clusters.REGION.restore.namespace_map, ...).
std::map<std::string, std::string> LoadNameMap(Context& ctx, const Map& parent, std::string_view key) {
  std::map<std::string, std::string> out;
  if (!parent.Has(key)) return out;
  Map m = Map::Named(ctx, parent.Get(key), parent.Sub(key));
  for (const auto& e : m.entries()) {
    if (auto v = ScalarOf(ctx, e.value, m.Sub(e.key), "a name")) out[e.key] = *v;
  }
  return out;
}

void LoadClusterRestore(Context& ctx, const Map& m, const Plan& plan, Cluster& c) {
  if (!m.Has("restore")) return;
  Map r(ctx, m.Get("restore"), m.Sub("restore"),
        {"from", "location", "namespaces", "exclude_namespaces", "namespace_map", "storage_class_map", "existing"});
  if (!r.is_map()) return;
  ClusterRestorePlan rp;
  if (r.Str("from", rp.from, true)) {
    CheckRef(ctx, r.Get("from").Mark(), r.Sub("from"), rp.from, NamesOf(plan.regions), "region");
  }
  if (r.Str("location", rp.location, true)) {
    CheckRef(ctx, r.Get("location").Mark(), r.Sub("location"), rp.location, NamesOf(plan.backup.locations),
             "backup location");
  }
  r.StrList("namespaces", rp.namespaces);
  r.StrList("exclude_namespaces", rp.exclude_namespaces);
  rp.namespace_map = LoadNameMap(ctx, r, "namespace_map");
  rp.storage_class_map = LoadNameMap(ctx, r, "storage_class_map");
  enum class Ex { kSkip, kUpdate };
  Ex ex = Ex::kSkip;
  r.Enum("existing", ex, {{"skip", Ex::kSkip}, {"update", Ex::kUpdate}});
  rp.update_existing = ex == Ex::kUpdate;
  c.restore = std::move(rp);
}

}  // namespace

void LoadClusters(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map clusters = Map::Named(ctx, top.Get("clusters"), "clusters");
  auto regions = NamesOf(plan.regions);
  for (const auto& e : clusters.entries()) {
    if (ctx.full()) return;
    if (!CheckRef(ctx, e.key_node.Mark(), clusters.path(), e.key, regions, "region")) continue;
    Map m(ctx, e.value, clusters.Sub(e.key),
          {"kubeconfig", "context", "qps", "burst", "scale", "scale_timeout", "restore", "node_agent_namespace",
           "volume_wait"});
    if (!m.is_map()) continue;
    Cluster c;
    c.region = e.key;
    if (m.Str("kubeconfig", c.kubeconfig, true) && c.kubeconfig != "in-cluster") {
      ctx.ResolvePath(m.Get("kubeconfig").Mark(), m.Sub("kubeconfig"), c.kubeconfig);
    }
    m.Str("context", c.context);
    m.Int("qps", c.qps, 1, 100000);
    m.Int("burst", c.burst, 1, 100000);
    LoadScale(ctx, m, c);
    if (m.Dur("scale_timeout", c.scale_timeout) && c.scale_timeout <= Duration::zero()) {
      ctx.Error(m.Get("scale_timeout").Mark(), m.Sub("scale_timeout") + ": must be above zero");
    }
    m.Str("node_agent_namespace", c.node_agent_namespace);
    if (m.Dur("volume_wait", c.volume_wait) && c.volume_wait <= Duration::zero()) {
      ctx.Error(m.Get("volume_wait").Mark(), m.Sub("volume_wait") + ": must be above zero");
    }
    LoadClusterRestore(ctx, m, plan, c);
    if (c.restore && c.restore->from == c.region) {
      ctx.Error(m.Get("restore").Mark(), m.Sub("restore.from") + ": " + c.region +
                                             " would restore its own cluster's backups into itself",
                "name the region whose cluster this one takes over (the primary's)");
    }
    plan.clusters.push_back(std::move(c));
  }
  // A schedule's cluster (read before this section) must be one of these.
  for (const auto& s : plan.backup.schedules) {
    if (s.cluster.empty() || plan.FindRegion(s.cluster) == nullptr || plan.FindCluster(s.cluster) != nullptr) continue;
    YAML::Node at = Child(Child(Child(top.Get("backup"), "schedules"), s.name), "cluster");
    ctx.Error(at.IsDefined() ? at.Mark() : top.KeyMark("backup"),
              "backup.schedules." + s.name + ".cluster: the plan has no cluster for region '" + s.cluster + "'",
              "add clusters." + s.cluster + ": { kubeconfig: FILE }");
  }
}

}  // namespace lifeboat::plan
