#include "plan/load.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <tuple>
#include <set>

#include "core/fs.h"
#include "core/strings.h"
#include "plan/load_internal.h"

namespace lifeboat::plan {
namespace {

using namespace std::chrono_literals;

bool ValidNameChars(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Finds the first byte that is not UTF-8 text (or is NUL) and its position.
bool CheckText(std::string_view text, int& line, int& column) {
  line = 1;
  column = 1;
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (c == 0 || len == 0 || i + len > text.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    i += len;
  }
  return true;
}

// Counts the documents of a YAML stream and where each starts, parsing at
// most kMaxDocs of them. (YAML::LoadAll in yaml-cpp 0.7 loops forever on
// input such as ",", pushing null documents; upstream fixed it in PR #1319.)
class DocumentCounter final : public YAML::EventHandler {
 public:
  static constexpr int kMaxDocs = 3;
  std::vector<YAML::Mark> starts;
  int content = 0;  // scalars, aliases, sequences and maps seen

  void OnDocumentStart(const YAML::Mark& m) override { starts.push_back(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++content; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { ++content; }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    ++content;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    ++content;
  }
  void OnMapEnd() override {}

  // Throws YAML::Exception for a syntax error.
  void Parse(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    for (int n = 0; n < kMaxDocs && parser.HandleNextDocument(*this); ++n) {
    }
  }
};

void LoadRegions(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  YAML::Node node = top.Get("regions");
  if (!node.IsDefined()) {
    top.Missing("regions", "{ name: { role: primary, agent: host:port }, ... }");
    return;
  }
  if (node.IsNull()) {
    ctx.Error(top.KeyMark("regions"), "regions: no regions defined", "name at least a primary and a standby region");
    return;
  }
  Map regions = Map::Named(ctx, node, "regions");
  std::map<std::string, std::string> agents;  // address -> region
  for (const auto& e : regions.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "region")) continue;
    Map m(ctx, e.value, regions.Sub(e.key), {"role", "agent"});
    Region r;
    r.name = e.key;
    m.Enum("role", r.role, {{"primary", Role::kPrimary}, {"standby", Role::kStandby}, {"witness", Role::kWitness}},
           true);
    if (m.Addr("agent", r.agent, true)) {
      auto [it, fresh] = agents.emplace(r.agent.ToString(), r.name);
      if (!fresh) {
        ctx.Error(m.Get("agent").Mark(),
                  m.Sub("agent") + ": " + r.agent.ToString() + " is also the agent address of region '" + it->second +
                      "'",
                  "give every region's agent its own host:port");
      }
    }
    plan.regions.push_back(std::move(r));
  }
  if (!regions.is_map()) return;
  if (plan.regions.empty()) {
    ctx.Error(regions.mark(), "regions: no regions defined", "name at least a primary and a standby region");
    return;
  }
  int primaries = static_cast<int>(std::count_if(plan.regions.begin(), plan.regions.end(),
                                                 [](const Region& r) { return r.role == Role::kPrimary; }));
  if (primaries == 0) {
    ctx.Error(regions.mark(), "regions: no region has role primary", "make exactly one region 'role: primary'");
  } else if (primaries > 1) {
    std::vector<std::string> names;
    for (const auto& r : plan.regions) {
      if (r.role == Role::kPrimary) names.push_back(r.name);
    }
    ctx.Error(regions.mark(), "regions: " + std::to_string(primaries) + " regions have role primary (" +
                                  Join(names, ", ") + ")",
              "exactly one region is primary; make the others 'role: standby'");
  }
}

void LoadChecks(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map checks = Map::Named(ctx, top.Get("checks"), "checks");
  for (const auto& e : checks.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "check")) continue;
    Map m(ctx, e.value, checks.Sub(e.key),
          {"type", "path", "host", "expect_status", "expect_body", "tls_verify", "interval", "timeout", "fall",
           "rise", "invert", "children", "min_healthy", "vantage_quorum", "database", "role"});
    Check c;
    c.name = e.key;
    m.Enum("type", c.type,
           {{"http", CheckType::kHttp}, {"https", CheckType::kHttps}, {"tcp", CheckType::kTcp},
            {"postgres", CheckType::kPostgres}, {"calculated", CheckType::kCalculated}},
           true);
    if (c.type == CheckType::kPostgres) {
      if (m.Str("database", c.database, true)) {
        YAML::Node dbs = top.Get("databases");
        if (!dbs.IsMap() || !dbs[c.database].IsDefined()) {
          std::vector<std::string> names;
          if (dbs.IsMap()) {
            for (const auto& d : dbs) names.push_back(d.first.as<std::string>(""));
          }
          std::vector<std::string_view> views(names.begin(), names.end());
          std::string close = ClosestMatch(c.database, views);
          ctx.Error(m.Get("database").Mark(), m.Sub("database") + ": no database named '" + c.database + "'",
                    names.empty() ? "a postgres check logs in as a database of the plan's databases section"
                                  : (close.empty() ? "" : "did you mean '" + close + "'? ") + "known databases: " +
                                        Join(names, ", "));
        }
      }
      m.Enum("role", c.role, {{"any", std::string("any")}, {"primary", std::string("primary")},
                              {"standby", std::string("standby")}});
    } else {
      for (const char* k : {"database", "role"}) {
        if (m.Has(k)) {
          ctx.Error(m.Get(k).Mark(), m.Sub(k) + ": only postgres checks have '" + std::string(k) + "'",
                    "remove it, or make the check 'type: postgres'");
        }
      }
    }
    bool is_http = c.type == CheckType::kHttp || c.type == CheckType::kHttps;
    for (const char* k : {"path", "host", "expect_status", "expect_body"}) {
      if (!is_http && m.Has(k)) {
        ctx.Error(m.Get(k).Mark(), m.Sub(k) + ": only http and https checks have '" + std::string(k) + "'",
                  "remove it, or make the check 'type: http'");
      }
    }
    if (c.type != CheckType::kHttps && m.Has("tls_verify")) {
      ctx.Error(m.Get("tls_verify").Mark(), m.Sub("tls_verify") + ": only https checks verify certificates");
    }
    if (m.Str("path", c.path) && (c.path.empty() || c.path[0] != '/')) {
      ctx.Error(m.Get("path").Mark(), m.Sub("path") + ": '" + c.path + "' does not start with '/'",
                "write it as /" + c.path);
    }
    m.Str("host", c.host);
    m.Str("expect_body", c.expect_body);
    if (c.expect_body.size() > 5120) {
      ctx.Error(m.Get("expect_body").Mark(), m.Sub("expect_body") + ": longer than the 5120 bytes searched");
    }
    m.Bool("tls_verify", c.tls_verify);
    if (YAML::Node st = m.Get("expect_status"); st.IsDefined()) {
      auto s = ScalarOf(ctx, st, m.Sub("expect_status"), "a status or a range such as 200-299");
      if (s) {
        int lo = 0, hi = 0;
        char dash = 0, extra = 0;
        int n = std::sscanf(s->c_str(), "%d%c%d%c", &lo, &dash, &hi, &extra);
        if (n == 1) hi = lo;
        if (!((n == 1) || (n == 3 && dash == '-')) || lo < 100 || hi > 599 || lo > hi) {
          ctx.Error(st.Mark(), m.Sub("expect_status") + ": '" + *s + "' is not a status range",
                    "write a status from 100 to 599, or a range such as 200-299");
        } else {
          c.expect_status = {lo, hi};
        }
      }
    }
    bool has_interval = m.Dur("interval", c.interval);
    if (has_interval && c.interval < 100ms) {
      ctx.Error(m.Get("interval").Mark(), m.Sub("interval") + ": " + FormatDuration(c.interval) +
                                              " is below the 100ms minimum");
    }
    if (!m.Dur("timeout", c.timeout)) {
      c.timeout = std::min<Duration>(2s, c.interval / 2);  // default: half the interval, at most 2s
    } else if (c.timeout >= c.interval) {
      ctx.Error(m.Get("timeout").Mark(),
                m.Sub("timeout") + ": " + FormatDuration(c.timeout) + " is not below the interval (" +
                    FormatDuration(c.interval) + ")",
                "a probe must end before the next one starts; use a timeout below " + FormatDuration(c.interval));
    } else if (c.timeout <= Duration::zero()) {
      ctx.Error(m.Get("timeout").Mark(), m.Sub("timeout") + ": must be above zero");
    }
    m.Int("fall", c.fall, 1, 100);
    m.Int("rise", c.rise, 1, 100);
    if (YAML::Node vq = m.Get("vantage_quorum"); vq.IsDefined() && vq.IsScalar() && vq.Scalar() == "majority") {
      c.vantage_quorum = 0;
    } else if (m.Int("vantage_quorum", c.vantage_quorum, 1, 1000) && !plan.regions.empty() &&
               c.vantage_quorum > static_cast<int>(plan.regions.size())) {
      ctx.Error(m.Get("vantage_quorum").Mark(),
                m.Sub("vantage_quorum") + ": " + std::to_string(c.vantage_quorum) + " is more than the " +
                    std::to_string(plan.regions.size()) + " regions that probe",
                "use at most " + std::to_string(plan.regions.size()) + ", or leave it out for a majority");
    }
    m.Bool("invert", c.invert);
    if (c.type == CheckType::kCalculated) {
      m.StrList("children", c.children, true);
      if (YAML::Node mh = m.Get("min_healthy"); mh.IsDefined() && mh.IsScalar() && mh.Scalar() == "all") {
        c.min_healthy = 0;
      } else {
        m.Int("min_healthy", c.min_healthy, 1, 1000);
      }
      if (c.min_healthy > static_cast<int>(c.children.size()) && !c.children.empty()) {
        ctx.Error(m.Get("min_healthy").Mark(),
                  m.Sub("min_healthy") + ": " + std::to_string(c.min_healthy) + " is more than its " +
                      std::to_string(c.children.size()) + " children",
                  "use at most " + std::to_string(c.children.size()) + ", or 'all'");
      }
    } else {
      for (const char* k : {"children", "min_healthy"}) {
        if (m.Has(k)) {
          ctx.Error(m.Get(k).Mark(), m.Sub(k) + ": only calculated checks have '" + std::string(k) + "'");
        }
      }
    }
    plan.checks.push_back(std::move(c));
  }
}

void LoadEndpoints(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map endpoints = Map::Named(ctx, top.Get("endpoints"), "endpoints");
  auto regions = NamesOf(plan.regions);
  auto checks = NamesOf(plan.checks);
  for (const auto& e : endpoints.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "endpoint")) continue;
    Map m(ctx, e.value, endpoints.Sub(e.key), {"region", "address", "check"});
    Endpoint ep;
    ep.name = e.key;
    if (m.Str("region", ep.region, true)) {
      if (CheckRef(ctx, m.Get("region").Mark(), m.Sub("region"), ep.region, regions, "region")) {
        const Region* r = plan.FindRegion(ep.region);
        if (r && r->role == Role::kWitness) {
          ctx.Error(m.Get("region").Mark(), m.Sub("region") + ": region '" + ep.region + "' is a witness",
                    "a witness votes and serves nothing; put the endpoint in a primary or standby region");
        }
      }
    }
    m.Addr("address", ep.address, true);
    if (m.Str("check", ep.check)) CheckRef(ctx, m.Get("check").Mark(), m.Sub("check"), ep.check, checks, "check");
    plan.endpoints.push_back(std::move(ep));
  }
  // Calculated checks name endpoints; check those names and look for cycles
  // (an endpoint whose calculated check depends on itself).
  auto endpoint_names = NamesOf(plan.endpoints);
  for (const auto& c : plan.checks) {
    if (c.type != CheckType::kCalculated) continue;
    YAML::Node children = Child(Child(top.Get("checks"), c.name), "children");
    for (size_t i = 0; i < c.children.size(); ++i) {
      YAML::Mark at = children.IsSequence() && i < children.size() ? children[i].Mark() : children.Mark();
      CheckRef(ctx, at, "checks." + c.name + ".children", c.children[i], endpoint_names, "endpoint");
    }
  }
  std::function<bool(const std::string&, std::set<std::string>&)> cyclic =
      [&](const std::string& ep, std::set<std::string>& seen) -> bool {
    if (!seen.insert(ep).second) return true;
    const Endpoint* e = plan.FindEndpoint(ep);
    const Check* c = e && !e->check.empty() ? plan.FindCheck(e->check) : nullptr;
    if (c && c->type == CheckType::kCalculated) {
      for (const auto& child : c->children) {
        if (cyclic(child, seen)) return true;
      }
    }
    seen.erase(ep);
    return false;
  };
  for (const auto& ep : plan.endpoints) {
    std::set<std::string> seen;
    if (cyclic(ep.name, seen)) {
      ctx.Error(Child(endpoints.Get(ep.name), "check").Mark(),
                "endpoints." + ep.name + ".check: calculated check '" + ep.check + "' depends on this endpoint itself",
                "a calculated check must combine other endpoints only");
    }
  }
}

void LoadState(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map m(ctx, top.Get("state"), "state", {"store", "path", "endpoints", "prefix", "tls", "timeout"});
  StateConfig& st = plan.state;
  m.Enum("store", st.store, {{"embedded", StoreKind::kEmbedded}, {"etcd", StoreKind::kEtcd}});
  bool etcd = st.store == StoreKind::kEtcd;
  auto only = [&](const char* key, bool allowed, const char* store) {
    if (m.Has(key) && !allowed) {
      ctx.Error(m.Get(key).Mark(), std::string("state.") + key + ": only for store: " + store,
                std::string("remove it, or set store: ") + store);
    }
  };
  only("path", !etcd, "embedded");
  only("endpoints", etcd, "etcd");
  only("prefix", etcd, "etcd");
  only("tls", etcd, "etcd");
  if (m.Str("path", st.path)) ctx.ResolvePath(m.Get("path").Mark(), "state.path", st.path);
  if (m.Dur("timeout", st.timeout) && st.timeout <= Duration::zero()) {
    ctx.Error(m.Get("timeout").Mark(), "state.timeout: must be above zero");
  }
  if (!etcd) return;
  if (m.StrList("endpoints", st.endpoints, true)) {
    if (st.endpoints.empty()) ctx.Error(m.Get("endpoints").Mark(), "state.endpoints: at least one etcd endpoint");
    YAML::Node eps = m.Get("endpoints");
    for (size_t i = 0; i < st.endpoints.size(); ++i) {
      const std::string& e = st.endpoints[i];
      if (!e.starts_with("http://") && !e.starts_with("https://")) {
        ctx.Error(eps.IsSequence() ? eps[i].Mark() : eps.Mark(),
                  "state.endpoints: '" + e + "' is not an http:// or https:// URL", "write https://10.0.0.1:2379");
      }
    }
  }
  st.prefix = "/lifeboat/" + plan.name + "/";
  if (m.Str("prefix", st.prefix) && (st.prefix.empty() || st.prefix.back() != '/')) {
    ctx.Error(m.Get("prefix").Mark(), "state.prefix: '" + st.prefix + "' must end with '/'");
  }
  Map tls(ctx, m.Get("tls"), "state.tls", {"ca_file", "cert_file", "key_file"});
  for (auto [key, out] : {std::pair{"ca_file", &st.ca_file}, {"cert_file", &st.cert_file}, {"key_file", &st.key_file}}) {
    if (tls.Str(key, *out)) ctx.ResolvePath(tls.Get(key).Mark(), "state.tls." + std::string(key), *out);
  }
  if (st.cert_file.empty() != st.key_file.empty()) {
    ctx.Error(m.Get("tls").Mark(), "state.tls: cert_file and key_file go together", "give both, or neither");
  }
  bool has_tls = !st.ca_file.empty() || !st.cert_file.empty();
  for (const auto& e : st.endpoints) {
    if (has_tls && e.starts_with("http://")) {
      ctx.Error(m.Get("endpoints").Mark(), "state.endpoints: '" + e + "' is plain http while state.tls is set",
                "use https:// endpoints");
    }
  }
}

void LoadFailover(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  Map m(ctx, top.Get("failover"), "failover", {"mode", "quorum", "grace", "lease", "self_fence", "steps", "hooks"});
  Failover& f = plan.failover;
  m.Enum("mode", f.mode, {{"automatic", FailoverMode::kAutomatic}, {"manual", FailoverMode::kManual}});
  int voters = static_cast<int>(plan.regions.size());
  f.quorum = voters / 2 + 1;
  if (m.Int("quorum", f.quorum, 1, 1000) && voters > 0 && f.quorum > voters) {
    ctx.Error(m.Get("quorum").Mark(),
              "failover.quorum: " + std::to_string(f.quorum) + " is more than the " + std::to_string(voters) +
                  " regions that vote",
              "use at most " + std::to_string(voters) + "; a majority is " + std::to_string(voters / 2 + 1));
  } else if (m.Has("quorum") && voters > 0 && f.quorum <= voters / 2) {
    ctx.Warning(m.Get("quorum").Mark(),
                "failover.quorum: " + std::to_string(f.quorum) + " of " + std::to_string(voters) +
                    " regions is not a majority; a network split could let both sides act",
                "use " + std::to_string(voters / 2 + 1));
  }
  m.Dur("grace", f.grace);  // a negative duration is refused by Dur
  if (m.Dur("lease", f.lease) && f.lease < std::chrono::seconds(1)) {
    ctx.Error(m.Get("lease").Mark(), "failover.lease: " + FormatDuration(f.lease) + " is too short",
              "use at least 1s: a lease shorter than a store round trip under load expires while its agent lives");
  }
  Map hooks = Map::Named(ctx, m.Get("hooks"), "failover.hooks");
  for (const auto& e : hooks.entries()) {
    if (!CheckName(ctx, e, "hook")) continue;
    Map h(ctx, e.value, hooks.Sub(e.key), {"run", "timeout"});
    Hook hook;
    hook.name = e.key;
    h.Str("run", hook.run, true);
    if (h.Dur("timeout", hook.timeout) && hook.timeout <= Duration::zero()) {
      ctx.Error(h.Get("timeout").Mark(), h.Sub("timeout") + ": must be above zero");
    }
    for (const char* b : kBuiltinSteps) {
      if (e.key == b) {
        ctx.Error(e.key_node.Mark(), hooks.Sub(e.key) + ": a hook cannot take the name of the built-in step '" +
                                         e.key + "'", "rename the hook");
      }
    }
    f.hooks.push_back(std::move(hook));
  }
  if (m.Str("self_fence", f.self_fence) && !f.self_fence.empty()) {
    NameSet hooks_known = NamesOf(f.hooks);
    CheckRef(ctx, m.Get("self_fence").Mark(), "failover.self_fence", f.self_fence, hooks_known, "hook");
  }
  if (m.StrList("steps", f.steps)) {
    NameSet known = NamesOf(f.hooks);
    for (const char* b : kBuiltinSteps) known.set.insert(b);
    known.ordered.insert(known.ordered.begin(), std::begin(kBuiltinSteps), std::end(kBuiltinSteps));
    YAML::Node steps = m.Get("steps");
    for (size_t i = 0; i < f.steps.size(); ++i) {
      YAML::Mark at = steps.IsSequence() ? steps[i].Mark() : steps.Mark();
      CheckRef(ctx, at, "failover.steps", f.steps[i], known, "step (a built-in step or a hook)");
      if (f.steps[i] == "restore" && plan.backup.locations.empty()) {
        ctx.Error(at, "failover.steps: 'restore' restores the newest backups, and the plan has no backup location",
                  "add backup.locations, or remove the step");
      }
      auto any_cluster = [&](auto has) { return std::any_of(plan.clusters.begin(), plan.clusters.end(), has); };
      if (f.steps[i] == "scale" && !any_cluster([](const Cluster& c) { return !c.scale.empty(); })) {
        ctx.Error(at, "failover.steps: 'scale' scales the workloads of the new primary's clusters.REGION.scale, and no "
                      "cluster of the plan has a scale list",
                  "add clusters.REGION.scale: [{ deployment: NAMESPACE/NAME, replicas: N }], or remove the step");
      }
      if (f.steps[i] == "restore-resources" && !any_cluster([](const Cluster& c) { return c.restore.has_value(); })) {
        ctx.Error(at, "failover.steps: 'restore-resources' restores into the new primary's cluster what "
                      "clusters.REGION.restore names, and no cluster of the plan has a restore section",
                  "add clusters.REGION.restore: { from: REGION, location: LOCATION }, or remove the step");
      }
    }
  } else {
    f.steps = DefaultSteps(plan.pattern, f.hooks, f.self_fence, plan.clusters);
  }
}

void CheckPattern(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  YAML::Mark at = top.Has("pattern") ? top.Get("pattern").Mark() : top.mark();
  int serving = static_cast<int>(
      std::count_if(plan.regions.begin(), plan.regions.end(), [](const Region& r) { return r.serves(); }));
  if (plan.pattern == Pattern::kBackupRestore && plan.backup.locations.empty()) {
    ctx.Error(at, "pattern: backup-restore needs at least one backup location",
              "add backup.locations, or choose pilot-light, warm-standby or active-active");
  }
  if (plan.pattern != Pattern::kBackupRestore && serving < 2 && !plan.regions.empty()) {
    ctx.Error(at, std::string("pattern: ") + Name(plan.pattern) + " needs a standby region to fail over to",
              "add a region with 'role: standby'");
  }
  if (plan.routing_controls.min_on > serving && serving > 0) {
    ctx.Error(Child(Child(top.Get("routing_controls"), "safety"), "min_on").Mark(),
              "routing_controls.safety.min_on: " + std::to_string(plan.routing_controls.min_on) +
                  " is more than the " + std::to_string(serving) + " regions that serve traffic",
              "use at most " + std::to_string(serving));
  }
}

}  // namespace

bool CheckName(Context& ctx, const Map::Entry& e, const std::string& what) {
  if (ValidNameChars(e.key)) return true;
  ctx.Error(e.key_node.Mark(), what + " name " + Quote(e.key) + " is not a valid name",
            "use 1 to 63 letters, digits, '-', '_' or '.'");
  return false;
}

bool CheckRef(Context& ctx, const YAML::Mark& at, const std::string& path, const std::string& name,
              const NameSet& names, const std::string& what) {
  if (names.contains(name)) return true;
  const std::vector<std::string>& known = names.ordered;
  std::vector<std::string_view> views(known.begin(), known.end());
  std::string close = ClosestMatch(name, views);
  std::string hint;
  if (!close.empty()) {
    hint = "did you mean '" + close + "'?";
  } else if (known.empty()) {
    hint = "none is defined yet";
  } else {
    hint = "defined: " + Join(known, ", ");
  }
  ctx.Error(at, path + ": no " + what + " named " + Quote(name), hint);
  return false;
}

LoadResult LoadPlanText(std::string_view text, const std::string& source, const std::string& base_dir) {
  Context ctx(source, base_dir);
  LoadResult result;
  if (text.size() > kMaxPlanBytes) {
    ctx.Error(YAML::Mark::null_mark(), "the plan is " + std::to_string(text.size()) + " bytes; plans are at most " +
                                           std::to_string(kMaxPlanBytes));
    result.diagnostics = std::move(ctx.diagnostics());
    return result;
  }
  int line, column;
  if (!CheckText(text, line, column)) {
    Diagnostic d;
    d.file = source;
    d.line = line;
    d.column = column;
    d.message = "not a YAML text file: invalid UTF-8 or a NUL byte here";
    d.hint = "a plan is a YAML file; is this the right path?";
    result.diagnostics.push_back(d);
    return result;
  }
  YAML::Node root;
  try {
    // YAML::Load silently drops every document after the first, so count them first.
    std::string owned(text);
    DocumentCounter docs;
    docs.Parse(owned);
    if (docs.starts.size() > 1) {
      if (docs.content == 0) {
        ctx.Error(docs.starts[1], "not valid YAML: stray punctuation and no content",
                  "a plan is a mapping of keys; see examples/ for one");
      } else {
        std::string count = docs.starts.size() >= DocumentCounter::kMaxDocs
                                ? std::to_string(DocumentCounter::kMaxDocs) + " or more"
                                : std::to_string(docs.starts.size());
        ctx.Error(docs.starts[1], "the file holds " + count + " YAML documents; a plan is one",
                  "remove the '---' or '...' separators (or a line starting with '%') that start another document");
      }
      result.diagnostics = std::move(ctx.diagnostics());
      return result;
    }
    root = YAML::Load(owned);
  } catch (const YAML::Exception& e) {
    ctx.Error(e.mark, "not valid YAML: " + e.msg, "check the indentation and quoting near here");
    result.diagnostics = std::move(ctx.diagnostics());
    return result;
  } catch (const std::exception& e) {
    ctx.Error(YAML::Mark::null_mark(), std::string("not valid YAML: ") + e.what());
    result.diagnostics = std::move(ctx.diagnostics());
    return result;
  }
  if (!root.IsDefined() || root.IsNull()) {
    ctx.Error(YAML::Mark::null_mark(), "the plan is empty", "see examples/ for a plan to start from");
    result.diagnostics = std::move(ctx.diagnostics());
    return result;
  }
  Plan plan;
  plan.source = source;
  try {
    Map top(ctx, root, "",
            {"name", "pattern", "objectives", "regions", "checks", "endpoints", "dns", "proxy", "routing_controls",
             "volumes", "databases", "backup", "failover", "state", "clusters"});
    if (top.is_map()) {
      if (top.Str("name", plan.name, true) && !ValidNameChars(plan.name)) {
        ctx.Error(top.Get("name").Mark(), "name: " + Quote(plan.name) + " is not a valid name",
                  "use 1 to 63 letters, digits, '-', '_' or '.'");
      }
      top.Enum("pattern", plan.pattern,
               {{"backup-restore", Pattern::kBackupRestore},
                {"pilot-light", Pattern::kPilotLight},
                {"warm-standby", Pattern::kWarmStandby},
                {"active-active", Pattern::kActiveActive}},
               true);
      Map obj(ctx, top.Get("objectives"), "objectives", {"rto", "rpo"});
      obj.OptDur("rto", plan.objectives.rto);
      obj.OptDur("rpo", plan.objectives.rpo);
      LoadRegions(top, plan);
      LoadChecks(top, plan);
      LoadEndpoints(top, plan);
      LoadDns(top, plan);
      LoadProxy(top, plan);
      Map rc(ctx, top.Get("routing_controls"), "routing_controls", {"safety", "token_file"});
      Map safety(ctx, rc.Get("safety"), "routing_controls.safety", {"min_on"});
      safety.Int("min_on", plan.routing_controls.min_on, 0, 1000);
      if (rc.Str("token_file", plan.routing_controls.token_file)) {
        ctx.ResolvePath(rc.Get("token_file").Mark(), "routing_controls.token_file", plan.routing_controls.token_file);
      }
      LoadVolumes(top, plan);
      LoadDatabases(top, plan);
      LoadBackup(top, plan);
      LoadClusters(top, plan);
      LoadFailover(top, plan);
      LoadState(top, plan);
      CheckPattern(top, plan);
    }
  } catch (const std::exception& e) {
    // yaml-cpp throws on some malformed trees; report instead of crashing.
    ctx.Error(YAML::Mark::null_mark(), std::string("could not read the plan: ") + e.what());
  }
  result.diagnostics = std::move(ctx.diagnostics());
  std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(), [](const auto& a, const auto& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  if (!HasErrors(result.diagnostics)) result.plan = std::move(plan);
  return result;
}

LoadResult LoadPlanFile(const std::string& path) {
  auto text = ReadFile(path, kMaxPlanBytes + 1);
  if (!text.ok()) {
    LoadResult r;
    Diagnostic d;
    d.file = path;
    d.message = "cannot read the plan: " + text.error().message();
    if (text.error().code() == Code::kNotFound) d.hint = "check the path; examples/ has plans to start from";
    r.diagnostics.push_back(d);
    return r;
  }
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(path, ec).parent_path();
  return LoadPlanText(*text, path, ec ? std::string() : dir.string());
}

Result<Plan> LoadPlanOrError(const std::string& path) {
  LoadResult r = LoadPlanFile(path);
  if (r.plan) return std::move(*r.plan);
  std::string msg = "invalid plan " + path + ":\n" + FormatDiagnostics(r.diagnostics);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  return InvalidArgument(msg);
}

}  // namespace lifeboat::plan
