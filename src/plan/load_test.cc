#include "plan/load.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "core/fs.h"
#include "plan/render.h"

namespace lifeboat::plan {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Every file in tests/plans/bad/ is a broken plan; NAME.expected beside it
// holds the exact diagnostics (file:line:column: message, hint). Run with
// LIFEBOAT_UPDATE_GOLDEN=1 to rewrite them after a deliberate change, then
// read the diff.
TEST(PlanCorpus, EveryBrokenPlanReportsExactlyItsErrors) {
  const fs::path dir = "tests/plans/bad";
  ASSERT_TRUE(fs::is_directory(dir)) << "run from the source root";
  bool update = std::getenv("LIFEBOAT_UPDATE_GOLDEN") != nullptr;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    std::string path = entry.path().string();
    SCOPED_TRACE(path);
    LoadResult r = LoadPlanFile(path);
    EXPECT_FALSE(r.plan.has_value()) << "a broken plan loaded";
    EXPECT_TRUE(HasErrors(r.diagnostics));
    std::string got = FormatDiagnostics(r.diagnostics);
    fs::path expected_path = entry.path();
    expected_path.replace_extension(".expected");
    if (update) {
      ASSERT_TRUE(WriteFileAtomic(expected_path.string(), got).ok());
      continue;
    }
    auto expected = ReadFile(expected_path.string());
    ASSERT_TRUE(expected.ok()) << "missing " << expected_path << "; run with LIFEBOAT_UPDATE_GOLDEN=1";
    ASSERT_FALSE(expected->empty());
    EXPECT_EQ(got, *expected);
  }
  EXPECT_GE(files, 10);
}

TEST(PlanExamples, EveryExampleValidatesWithoutWarnings) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator("examples")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    LoadResult r = LoadPlanFile(entry.path().string());
    EXPECT_TRUE(r.plan.has_value()) << FormatDiagnostics(r.diagnostics);
    EXPECT_TRUE(r.diagnostics.empty()) << FormatDiagnostics(r.diagnostics);
  }
  EXPECT_GE(files, 2);
}

constexpr const char* kMinimal = R"(
name: tiny
pattern: pilot-light
regions:
  a: { role: primary, agent: 127.0.0.1:7001 }
  b: { role: standby, agent: 127.0.0.1:7002 }
  c: { role: witness, agent: 127.0.0.1:7003 }
checks:
  web: { type: http, interval: 1s }
endpoints:
  e: { region: a, address: 127.0.0.1:8080, check: web }
dns:
  zone: Example.COM
  ns: [ns1]
  records:
    - { name: Shop, type: A, value: 10.0.0.1 }
)";

TEST(PlanLoad, FillsDefaults) {
  LoadResult r = LoadPlanText(kMinimal, "tiny.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  const Plan& p = *r.plan;
  EXPECT_EQ(p.failover.quorum, 2);  // majority of three
  EXPECT_EQ(p.failover.mode, FailoverMode::kManual);
  EXPECT_EQ(p.failover.steps, (std::vector<std::string>{"fence", "promote", "switch-traffic", "verify"}));
  const Check* web = p.FindCheck("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->timeout, 500ms);  // half the interval
  EXPECT_EQ(web->fall, 3);
  EXPECT_EQ(web->path, "/");
  ASSERT_TRUE(p.dns);
  EXPECT_EQ(p.dns->zone, "example.com.");
  EXPECT_EQ(p.dns->ns[0], "ns1.example.com.");
  EXPECT_EQ(p.dns->soa.mname, "ns1.example.com.");
  EXPECT_EQ(p.dns->soa.rname, "hostmaster.example.com.");
  EXPECT_EQ(p.dns->records[0].name, "shop.example.com.");
  EXPECT_EQ(p.dns->listen[0].ToString(), "0.0.0.0:53");
  EXPECT_EQ(p.Primary()->name, "a");
  EXPECT_EQ(p.state.store, StoreKind::kEmbedded);
  EXPECT_EQ(p.state.path, "");
  EXPECT_EQ(p.state.timeout, 5s);
}

TEST(PlanLoad, DefaultStepsFollowThePattern) {
  auto steps_of = [](const std::string& pattern, const std::string& failover) {
    std::string text = kMinimal;
    text.replace(text.find("pilot-light"), std::string("pilot-light").size(), pattern);
    LoadResult r = LoadPlanText(text + failover, "tiny.yaml");
    EXPECT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
    return r.plan ? r.plan->failover.steps : std::vector<std::string>{};
  };
  const std::string hooks = R"(
failover:
  self_fence: stop-writes
  hooks:
    announce: { run: "true" }
    scale-up: { run: "true" }
    stop-writes: { run: "true" }
)";
  using V = std::vector<std::string>;
  // Capacity before traffic; the other hooks after it; the self-fence hook is not a step.
  EXPECT_EQ(steps_of("pilot-light", hooks), (V{"fence", "promote", "scale-up", "switch-traffic", "announce", "verify"}));
  EXPECT_EQ(steps_of("warm-standby", hooks), (V{"fence", "promote", "scale-up", "switch-traffic", "announce", "verify"}));
  // Both regions serve already: fence and shift traffic.
  EXPECT_EQ(steps_of("active-active", hooks), (V{"fence", "scale-up", "switch-traffic", "announce", "verify"}));
  EXPECT_EQ(steps_of("active-active", ""), (V{"fence", "switch-traffic", "verify"}));
  // The newest backups restored into the new primary before its traffic.
  EXPECT_EQ(steps_of("backup-restore", hooks + R"(
backup:
  locations: { dr: { type: filesystem, path: /b } }
)"),
            (V{"fence", "restore", "scale-up", "switch-traffic", "announce", "verify"}));
  // Steps the plan names are its own, whatever the pattern.
  EXPECT_EQ(steps_of("active-active", "failover: { steps: [fence, promote, switch-traffic] }"),
            (V{"fence", "promote", "switch-traffic"}));
}

TEST(PlanLoad, ClusterStepsReadTheirSectionsAndJoinTheDefaultSteps) {
  std::string text = std::string(kMinimal) + R"(
backup:
  locations: { dr: { type: filesystem, path: /b } }
clusters:
  a: { kubeconfig: in-cluster }
  b:
    kubeconfig: /etc/lifeboat/b.kubeconfig
    scale:
      - { deployment: shop/web, replicas: 3 }
      - { statefulset: shop/db, replicas: 0 }
    scale_timeout: 2m
    restore:
      from: a
      location: dr
      namespaces: [shop, 'team-*']
      namespace_map: { shop: shop-dr }
      storage_class_map: { gp2: standard }
      existing: update
)";
  LoadResult r = LoadPlanText(text, "k8s.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  const Cluster* a = r.plan->FindCluster("a");
  const Cluster* b = r.plan->FindCluster("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->kubeconfig, "in-cluster");  // not a path to resolve
  EXPECT_TRUE(a->scale.empty());
  EXPECT_FALSE(a->restore.has_value());
  ASSERT_EQ(b->scale.size(), 2u);
  EXPECT_EQ(b->scale[0].kind, "Deployment");
  EXPECT_EQ(b->scale[0].ns, "shop");
  EXPECT_EQ(b->scale[0].name, "web");
  EXPECT_EQ(b->scale[0].replicas, 3);
  EXPECT_EQ(b->scale[1].kind, "StatefulSet");
  EXPECT_EQ(b->scale[1].replicas, 0);
  EXPECT_EQ(b->scale_timeout, std::chrono::minutes(2));
  ASSERT_TRUE(b->restore.has_value());
  EXPECT_EQ(b->restore->from, "a");
  EXPECT_EQ(b->restore->location, "dr");
  EXPECT_EQ(b->restore->namespaces, (std::vector<std::string>{"shop", "team-*"}));
  EXPECT_EQ(b->restore->namespace_map.at("shop"), "shop-dr");
  EXPECT_EQ(b->restore->storage_class_map.at("gp2"), "standard");
  EXPECT_TRUE(b->restore->update_existing);
  // The cluster steps come after the promote and before capacity hooks and traffic.
  EXPECT_EQ(r.plan->failover.steps,
            (std::vector<std::string>{"fence", "promote", "restore-resources", "scale", "switch-traffic", "verify"}));
}

TEST(PlanLoad, AClusterScheduleReadsItsSelection) {
  std::string text = std::string(kMinimal) + R"(
backup:
  locations: { dr: { type: filesystem, path: /b } }
  schedules:
    east-objects:
      cron: "*/30 * * * *"
      location: dr
      cluster: a
      namespaces: [shop, 'team-*']
      exclude_resources: [secrets]
      selector: tier=front
      include_cluster_resources: false
      volume_data: true
clusters:
  a: { kubeconfig: in-cluster, node_agent_namespace: dr-system, volume_wait: 3m }
)";
  LoadResult r = LoadPlanText(text, "k8s.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  ASSERT_EQ(r.plan->backup.schedules.size(), 1u);
  const Schedule& s = r.plan->backup.schedules[0];
  EXPECT_EQ(s.cluster, "a");
  EXPECT_TRUE(s.volumes.empty());
  EXPECT_EQ(s.Targets(), std::vector<std::string>{"cluster:a"});
  EXPECT_EQ(s.namespaces, (std::vector<std::string>{"shop", "team-*"}));
  EXPECT_EQ(s.exclude_resources, std::vector<std::string>{"secrets"});
  EXPECT_EQ(s.selector, "tier=front");
  EXPECT_EQ(s.include_cluster_resources, "false");
  EXPECT_TRUE(s.volume_data);
  EXPECT_EQ(r.plan->clusters[0].node_agent_namespace, "dr-system");
  EXPECT_EQ(r.plan->clusters[0].volume_wait, std::chrono::minutes(3));
}

TEST(PlanLoad, BackupRestoreVolumesReplicateOnlyWhenThePlanSaysSo) {
  std::string text = kMinimal;
  text.replace(text.find("pilot-light"), std::string("pilot-light").size(), "backup-restore");
  text += R"(
volumes:
  uploads: { path: { a: /a, b: /b } }
  logs: { path: { a: /la, b: /lb }, replication: { key_file: /k } }
backup:
  locations: { dr: { type: filesystem, path: /b } }
)";
  LoadResult r = LoadPlanText(text, "tiny.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.plan->FindVolume("uploads")->replication.mode, ReplicationMode::kOff);
  EXPECT_EQ(r.plan->FindVolume("logs")->replication.mode, ReplicationMode::kContinuous);
}

TEST(PlanLoad, AnEtcdStateStoreGetsThePlansPrefix) {
  std::string text = std::string(kMinimal) + R"(
state:
  store: etcd
  endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
  tls: { ca_file: /etc/lifeboat/ca.pem, cert_file: /etc/lifeboat/me.pem, key_file: /etc/lifeboat/me.key }
)";
  LoadResult r = LoadPlanText(text, "tiny.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.plan->state.store, StoreKind::kEtcd);
  EXPECT_EQ(r.plan->state.prefix, "/lifeboat/tiny/");
  EXPECT_EQ(r.plan->state.endpoints.size(), 2u);
  EXPECT_EQ(r.plan->state.key_file, "/etc/lifeboat/me.key");
}

TEST(PlanLoad, RelativePathsResolveAgainstThePlanFilesDirectory) {
  std::string text = std::string(kMinimal) + R"(
volumes:
  uploads: { path: { a: data/a, b: ./x/../b/ }, replication: { key_file: key } }
backup:
  locations: { dr: { type: filesystem, path: ../repo, password_file: /etc/pw } }
state: { path: state.db }
)";
  LoadResult r = LoadPlanText(text, "tiny.yaml", "/srv/plans");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  const Volume* v = r.plan->FindVolume("uploads");
  EXPECT_EQ(v->path.at("a"), "/srv/plans/data/a");
  EXPECT_EQ(v->path.at("b"), "/srv/plans/b");
  EXPECT_EQ(v->replication.key_file, "/srv/plans/key");
  EXPECT_EQ(r.plan->backup.locations.at(0).path, "/srv/repo");
  EXPECT_EQ(r.plan->backup.locations.at(0).password_file, "/etc/pw");
  EXPECT_EQ(r.plan->state.path, "/srv/plans/state.db");

  // A text from no file has no directory: a relative path is an error there.
  LoadResult bare = LoadPlanText(text, "tiny.yaml");
  EXPECT_FALSE(bare.plan);
  EXPECT_NE(FormatDiagnostics(bare.diagnostics).find("volumes.uploads.path.a: 'data/a' is not an absolute path"),
            std::string::npos)
      << FormatDiagnostics(bare.diagnostics);

  // LoadPlanFile passes the file's directory.
  fs::path dir = fs::temp_directory_path() / ("lifeboat-relpath-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomic((dir / "p.yaml").string(), text).ok());
  LoadResult file = LoadPlanFile((dir / "p.yaml").string());
  ASSERT_TRUE(file.plan) << FormatDiagnostics(file.diagnostics);
  EXPECT_EQ(file.plan->FindVolume("uploads")->path.at("a"), (dir / "data/a").string());
  fs::remove_all(dir);
}

TEST(PlanLoad, TheLongestTtlToARegionCountsOnlyRecordsThatReachIt) {
  std::string text = R"(
name: ttl
pattern: warm-standby
regions:
  a: { role: primary, agent: 127.0.0.1:7001 }
  b: { role: standby, agent: 127.0.0.1:7002 }
checks: { web: { type: http } }
endpoints:
  ea: { region: a, address: 127.0.0.1:80, check: web }
  eb: { region: b, address: 127.0.0.2:80, check: web }
dns:
  zone: example.com.
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53, ttl: 1h }
    - { name: shop, type: A, policy: failover, primary: ea, secondary: eb, ttl: 5s }
    - { name: api, type: A, policy: weighted, targets: [ { endpoint: ea, weight: 1 } ], ttl: 20s }
)";
  LoadResult r = LoadPlanText(text, "ttl.yaml");
  ASSERT_TRUE(r.plan) << FormatDiagnostics(r.diagnostics);
  EXPECT_EQ(r.plan->LongestTtlTo("a"), 20s);  // the weighted record reaches only a
  EXPECT_EQ(r.plan->LongestTtlTo("b"), 5s);   // ns1's hour reaches no endpoint
  EXPECT_EQ(r.plan->LongestTtlTo("c"), 0s);
}

TEST(PlanLoad, ReportsEveryErrorNotJustTheFirst) {
  LoadResult r = LoadPlanText("name: x\npattern: nope\nregions: {}\nfoo: 1\n", "x.yaml");
  ASSERT_FALSE(r.plan);
  EXPECT_GE(r.diagnostics.size(), 3u) << FormatDiagnostics(r.diagnostics);
}

TEST(PlanLoad, StopsAtTheDiagnosticCapOnHugeBrokenInput) {
  std::string text = "name: x\npattern: warm-standby\nregions:\n";
  for (int i = 0; i < 5000; ++i) text += "  r" + std::to_string(i) + ": { role: bogus }\n";
  LoadResult r = LoadPlanText(text, "big.yaml");
  ASSERT_FALSE(r.plan);
  EXPECT_LE(r.diagnostics.size(), kMaxDiagnostics + 5);
}

TEST(PlanLoad, RefusesOversizedInput) {
  std::string text(kMaxPlanBytes + 1, '#');
  LoadResult r = LoadPlanText(text, "huge.yaml");
  ASSERT_FALSE(r.plan);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("at most"), std::string::npos);
}

TEST(PlanLoad, MissingFileSaysSo) {
  LoadResult r = LoadPlanFile("no/such/plan.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_NE(r.diagnostics[0].message.find("No such file"), std::string::npos);
  auto e = LoadPlanOrError("no/such/plan.yaml");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Code::kInvalidArgument);
}

TEST(PlanLoad, DeepNestingIsAnErrorNotACrash) {
  std::string text = "name: " + std::string(100000, '[') ;
  LoadResult r = LoadPlanText(text, "deep.yaml");
  EXPECT_FALSE(r.plan);
  EXPECT_TRUE(HasErrors(r.diagnostics));
}

TEST(PlanRender, ShowOutputLoadsBackToTheSamePlan) {
  for (const char* path : {"examples/shop.yaml", "examples/local.yaml"}) {
    SCOPED_TRACE(path);
    auto p = LoadPlanOrError(path);
    ASSERT_TRUE(p.ok()) << p.error().message();
    std::string yaml = ToYaml(*p);
    LoadResult again = LoadPlanText(yaml, "shown.yaml");
    ASSERT_TRUE(again.plan) << FormatDiagnostics(again.diagnostics) << yaml;
    EXPECT_EQ(ToJson(*again.plan), ToJson(*p));
  }
}

}  // namespace
}  // namespace lifeboat::plan
