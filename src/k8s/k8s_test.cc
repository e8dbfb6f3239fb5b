#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/base64.h"
#include "k8s/cluster_backup.h"
#include "k8s/kubeconfig.h"
#include "k8s/rules.h"
#include "k8s/volume_data.h"
#include "k8s/workloads.h"

namespace lifeboat::k8s {
namespace {

namespace fs = std::filesystem;

std::string Config(const std::string& user) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
         "clusters:\n"
         "- name: one\n  cluster: {server: 'https://127.0.0.1:6443/', certificate-authority-data: " +
         Base64Encode("-----BEGIN CERTIFICATE-----\nx\n") +
         "}\n"
         "- name: two\n  cluster: {server: 'https://10.0.0.1', certificate-authority: ca.pem, insecure-skip-tls-verify: true}\n"
         "users:\n- name: u\n  user: " + user + "\n"
         "contexts:\n- name: a\n  context: {cluster: one, user: u}\n- name: b\n  context: {cluster: two, user: u}\n";
}

TEST(Kubeconfig, ReadsTheCurrentContextOrTheNamedOne) {
  auto a = ParseKubeconfig(Config("{token: abc}"), "kc", "/etc/kube", "");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->server, "https://127.0.0.1:6443");
  EXPECT_EQ(a->ca_pem, "-----BEGIN CERTIFICATE-----\nx\n");
  EXPECT_EQ(a->token, "abc");
  EXPECT_FALSE(a->insecure);

  // A CA file is read relative to the kubeconfig's directory.
  fs::path dir = fs::temp_directory_path() / ("lifeboat-kc-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "ca.pem") << "CA FROM FILE";
  auto b = ParseKubeconfig(Config("{tokenFile: tok}"), "kc", dir.string(), "b");
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  EXPECT_EQ(b->ca_pem, "CA FROM FILE");
  EXPECT_TRUE(b->insecure);
  EXPECT_EQ(b->token_file, (dir / "tok").string());
  fs::remove_all(dir);
}

TEST(Kubeconfig, SaysWhatIsWrong) {
  auto missing = ParseKubeconfig(Config("{token: abc}"), "kc", "", "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no context 'nope' (it has a, b)"), std::string::npos)
      << missing.error().message();
  auto provider = ParseKubeconfig(Config("{auth-provider: {name: gcp}}"), "kc", "", "");
  ASSERT_FALSE(provider.ok());
  EXPECT_NE(provider.error().message().find("auth-provider"), std::string::npos);
  auto half = ParseKubeconfig(Config("{client-certificate-data: " + Base64Encode("C") + "}"), "kc", "", "");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("both"), std::string::npos);
  EXPECT_FALSE(ParseKubeconfig("[1, 2]", "kc", "", "").ok());
  EXPECT_FALSE(ParseKubeconfig("{{{", "kc", "", "").ok());
  // Found by the fuzzer: a scalar where a map belongs threw out of yaml-cpp.
  EXPECT_FALSE(ParseKubeconfig("current-context: a\ncontexts: [{name: a, context: x}]", "kc", "", "").ok());
  EXPECT_FALSE(ParseKubeconfig(Config("{exec: {apiVersion: client.authentication.k8s.io/v1, command: x, args: [{a: b}]}}"),
                               "kc", "", "").ok());
}

TEST(Kubeconfig, ExecPluginsAndTheirCredentials) {
  auto a = ParseKubeconfig(
      Config("{exec: {apiVersion: client.authentication.k8s.io/v1, command: ./get-token, args: [--cluster, one], "
             "env: [{name: REGION, value: east}]}}"),
      "kc", "/opt/kube", "");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  ASSERT_TRUE(a->exec.has_value());
  EXPECT_EQ(a->exec->command, "/opt/kube/./get-token");
  EXPECT_EQ(a->exec->args, (std::vector<std::string>{"--cluster", "one"}));
  EXPECT_EQ(a->exec->env[0], (std::pair<std::string, std::string>{"REGION", "east"}));
  EXPECT_FALSE(ParseKubeconfig(Config("{exec: {apiVersion: v0, command: x}}"), "kc", "", "").ok());

  auto c = ParseExecCredential(
      R"({"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1",
          "status":{"token":"t0k","expirationTimestamp":"2030-01-02T03:04:05Z"}})",
      "p");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->token, "t0k");
  ASSERT_TRUE(c->expires.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c->expires), 1893553445);
  EXPECT_EQ(ParseExecCredential("not json", "p").error().code(), Code::kUnauthenticated);
  // Found by the fuzzer: a year past what system_clock holds (undefined behaviour before).
  auto far = ParseExecCredential(R"({"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"9999-01-01T00:00:00Z"}})", "p");
  ASSERT_TRUE(far.ok());
  EXPECT_FALSE(far->expires.has_value());
  EXPECT_FALSE(ParseExecCredential(R"({"kind":"ExecCredential","status":{}})", "p").ok());
  EXPECT_FALSE(ParseExecCredential(R"({"kind":"Other","status":{"token":"x"}})", "p").ok());
  // A kind that is not a string is refused, not thrown (found by fuzz_k8s).
  EXPECT_FALSE(ParseExecCredential(R"({"kind":{"kind":"x"},"status":{"token":"x"}})", "p").ok());
}

TEST(Kubeconfig, RunsAnExecPluginAndTellsItsStderrWhenItFails) {
  ExecPlugin p{"client.authentication.k8s.io/v1", "/bin/sh",
               {"-c", R"(printf '{"kind":"ExecCredential","status":{"token":"%s"}}' "$TOKEN")"},
               {{"TOKEN", "from-env"}}};
  auto c = RunExecPlugin(p);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->token, "from-env");
  ExecPlugin bad{"client.authentication.k8s.io/v1", "/bin/sh", {"-c", "echo 'login expired' >&2; exit 3"}, {}};
  auto e = RunExecPlugin(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("exited with 3: login expired"), std::string::npos) << e.error().message();
}

TEST(Rules, ObjectPathsRoundTripAndNothingElseParses) {
  EXPECT_EQ(ObjectPath("deployments.apps", "shop", "web"), "resources/deployments.apps/namespaces/shop/web.json");
  EXPECT_EQ(ObjectPath("namespaces", "", "shop"), "resources/namespaces/cluster/shop.json");
  for (auto [q, ns, name] : {std::tuple{"configmaps", "a", "b"}, std::tuple{"storageclasses.storage.k8s.io", "", "fast"}}) {
    auto r = ParseObjectPath(ObjectPath(q, ns, name));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->qualified, q);
    EXPECT_EQ(r->ns, ns);
    EXPECT_EQ(r->name, name);
  }
  for (const char* bad : {"resources/x/cluster/.json", "resources/x/namespaces//a.json", "resources/x/cluster/a",
                          "other/x/cluster/a.json", "resources/x/namespaces/a/b/c.json", "lifeboat-backup.json"}) {
    EXPECT_FALSE(ParseObjectPath(bad).has_value()) << bad;
  }
}

TEST(Rules, RuntimeObjectsAreNeverBackedUp) {
  for (const char* q : {"nodes", "events", "events.events.k8s.io", "leases.coordination.k8s.io", "endpoints"}) {
    EXPECT_TRUE(NeverBackedUp(q)) << q;
  }
  for (const char* q : {"configmaps", "deployments.apps", "widgets.example.com"}) EXPECT_FALSE(NeverBackedUp(q)) << q;
}

TEST(Rules, RestoreOrderFollowsReferencesThenPriorities) {
  std::set<std::string> kinds = {"services", "deployments.apps", "configmaps", "widgets.example.com",
                                 "customresourcedefinitions.apiextensions.k8s.io", "namespaces", "zebras.example.com"};
  // A custom kind that workloads need (a reference against the priorities).
  std::set<std::pair<std::string, std::string>> before = {
      {"customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com"},
      {"widgets.example.com", "deployments.apps"}};
  std::vector<std::string> broken;
  auto order = RestoreOrder(kinds, before, &broken);
  // Among the kinds ready, the priorities pick: services (a tier of its
  // own) before widgets (the alphabetical rest), and the deployments wait
  // for the widgets they refer to.
  EXPECT_EQ(order, (std::vector<std::string>{"customresourcedefinitions.apiextensions.k8s.io", "namespaces",
                                             "configmaps", "services", "widgets.example.com", "deployments.apps",
                                             "zebras.example.com"}));
  EXPECT_TRUE(broken.empty());

  before.insert({"deployments.apps", "widgets.example.com"});  // a cycle
  order = RestoreOrder(kinds, before, &broken);
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_NE(broken[0].find("cycle: deployments.apps restored before widgets.example.com"), std::string::npos)
      << broken[0];
  EXPECT_LT(std::find(order.begin(), order.end(), "deployments.apps"),
            std::find(order.begin(), order.end(), "widgets.example.com"));
}

TEST(Rules, ReferencesOfWorkloadsClaimsAndBindings) {
  Json deploy = Json::parse(R"({"spec":{"template":{"spec":{
      "serviceAccountName":"app","volumes":[{"configMap":{"name":"c"}},{"persistentVolumeClaim":{"claimName":"d"}}],
      "containers":[{"envFrom":[{"secretRef":{"name":"s"}}]}]}}}})");
  EXPECT_EQ(ReferencedKinds("deployments.apps", deploy),
            (std::set<std::string>{"configmaps", "persistentvolumeclaims", "secrets", "serviceaccounts"}));
  Json pvc = Json::parse(R"({"spec":{"storageClassName":"fast"}})");
  EXPECT_EQ(ReferencedKinds("persistentvolumeclaims", pvc), (std::set<std::string>{"storageclasses.storage.k8s.io"}));
  Json rb = Json::parse(R"({"roleRef":{"kind":"Role","name":"r"},"subjects":[{"kind":"ServiceAccount","name":"a"}]})");
  EXPECT_EQ(ReferencedKinds("rolebindings.rbac.authorization.k8s.io", rb),
            (std::set<std::string>{"roles.rbac.authorization.k8s.io", "serviceaccounts"}));
  EXPECT_TRUE(ReferencedKinds("configmaps", deploy).empty());
}

TEST(Rules, PreparingStripsWhatTheClusterAssignedAndMaps) {
  Json pvc = Json::parse(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim",
      "metadata":{"name":"data","namespace":"shop","uid":"u1","resourceVersion":"5","generation":2,
                  "creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{}],
                  "annotations":{"pv.kubernetes.io/bind-completed":"yes","keep":"me"}},
      "spec":{"storageClassName":"gp2","volumeName":"pv-1"},"status":{"phase":"Bound"}})");
  RestoreMapping m{{{"shop", "shop-dr"}}, {{"gp2", "standard"}}};
  Json out = PrepareForRestore(pvc, "persistentvolumeclaims", m, false, {});
  EXPECT_EQ(out["metadata"]["namespace"], "shop-dr");
  EXPECT_EQ(out["spec"]["storageClassName"], "standard");
  EXPECT_FALSE(out["spec"].contains("volumeName"));
  EXPECT_FALSE(out.contains("status"));
  for (const char* k : {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"}) {
    EXPECT_FALSE(out["metadata"].contains(k)) << k;
  }
  EXPECT_EQ(out["metadata"]["annotations"], Json({{"keep", "me"}}));
  // With its PV restored too, the claim keeps its volume.
  EXPECT_EQ(PrepareForRestore(pvc, "persistentvolumeclaims", m, true, {})["spec"]["volumeName"], "pv-1");

  Json svc = Json::parse(R"({"metadata":{"name":"web","namespace":"shop"},"spec":{"clusterIP":"10.0.0.5","clusterIPs":["10.0.0.5"]}})");
  EXPECT_FALSE(PrepareForRestore(svc, "services", m, false, {})["spec"].contains("clusterIP"));
  svc["spec"]["clusterIP"] = "None";
  EXPECT_EQ(PrepareForRestore(svc, "services", m, false, {})["spec"]["clusterIP"], "None");

  Json sts = Json::parse(R"({"metadata":{"name":"db","namespace":"shop"},
      "spec":{"volumeClaimTemplates":[{"metadata":{"name":"d"},"spec":{"storageClassName":"gp2"}}]}})");
  EXPECT_EQ(PrepareForRestore(sts, "statefulsets.apps", m, false, {})["spec"]["volumeClaimTemplates"][0]["spec"]
                                                                          ["storageClassName"],
            "standard");
  Json ns = Json::parse(R"({"metadata":{"name":"shop"}})");
  EXPECT_EQ(PrepareForRestore(ns, "namespaces", m, false, {})["metadata"]["name"], "shop-dr");
}

TEST(Rules, ObjectsTheirRestoredControllersMakeAreSkippedAndOwnersDropped) {
  Json rs = Json::parse(R"({"metadata":{"name":"web-1","namespace":"shop",
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"x","controller":true}]}})");
  auto in = [](const std::string& av, const std::string& kind, const std::string& ns, const std::string& name) {
    return av == "apps/v1" && kind == "Deployment" && ns == "shop" && name == "web";
  };
  EXPECT_NE(SkipReason("replicasets.apps", rs, in).find("Deployment.apps web"), std::string::npos);
  EXPECT_EQ(SkipReason("replicasets.apps", rs, {}), "");
  EXPECT_FALSE(PrepareForRestore(rs, "replicasets.apps", {}, false, in)["metadata"].contains("ownerReferences"));
  EXPECT_TRUE(PrepareForRestore(rs, "replicasets.apps", {}, false, {})["metadata"].contains("ownerReferences"));
  Json token = Json::parse(R"({"type":"kubernetes.io/service-account-token","metadata":{"name":"t"}})");
  EXPECT_NE(SkipReason("secrets", token, {}), "");
}

TEST(Rules, SelectionByNamesAndNamespaceGlobs) {
  ApiResource r{"apps", "v1", "deployments", "Deployment", true, {}, {"deploy"}};
  for (const char* n : {"deployments", "deployments.apps", "deploy", "Deployment", "deployment.apps"}) {
    EXPECT_TRUE(Selection::Names({n}, r)) << n;
  }
  EXPECT_FALSE(Selection::Names({"statefulsets"}, r));
  Selection s{{"shop-*"}, {"shop-test"}, {}, {}};
  EXPECT_TRUE(s.NamespaceIncluded("shop-prod"));
  EXPECT_FALSE(s.NamespaceIncluded("shop-test"));
  EXPECT_FALSE(s.NamespaceIncluded("kube-system"));
  EXPECT_TRUE(Selection{}.NamespaceIncluded("anything"));
}

TEST(Workloads, ADeploymentIsRolledOutWhenEveryReplicaIsUpdatedAndAvailable) {
  auto dep = [](int gen, int observed, Json status) {
    Json o{{"kind", "Deployment"}, {"metadata", {{"generation", gen}}}, {"status", status}};
    o["status"]["observedGeneration"] = observed;
    return o;
  };
  std::string why;
  // The controller has not seen the new spec yet: old counts say nothing.
  EXPECT_FALSE(RolledOut(dep(2, 1, {{"replicas", 3}, {"updatedReplicas", 3}, {"availableReplicas", 3}}), 3, &why));
  EXPECT_EQ(why, "the controller has not seen generation 2 yet");
  EXPECT_FALSE(RolledOut(dep(2, 2, {{"replicas", 3}, {"updatedReplicas", 1}}), 3, &why));
  EXPECT_EQ(why, "1 of 3 updated");
  EXPECT_FALSE(RolledOut(dep(2, 2, {{"replicas", 4}, {"updatedReplicas", 3}, {"availableReplicas", 3}}), 3, &why));
  EXPECT_EQ(why, "1 old replicas still terminating");
  EXPECT_FALSE(RolledOut(dep(2, 2, {{"replicas", 3}, {"updatedReplicas", 3}, {"availableReplicas", 2}}), 3, &why));
  EXPECT_EQ(why, "2 of 3 available");
  EXPECT_TRUE(RolledOut(dep(2, 2, {{"replicas", 3}, {"updatedReplicas", 3}, {"availableReplicas", 3}}), 3));
  // Scaled to zero: the API server leaves zero counts out.
  EXPECT_TRUE(RolledOut(dep(3, 3, Json::object()), 0));
  EXPECT_FALSE(RolledOut(dep(3, 3, {{"replicas", 1}}), 0, &why));
  EXPECT_EQ(why, "1 old replicas still terminating");
}

TEST(Workloads, AStatefulSetIsRolledOutWhenItsReplicasAreReadyAndNoMore) {
  auto sts = [](Json status) {
    Json o{{"kind", "StatefulSet"}, {"metadata", {{"generation", 1}}}, {"status", status}};
    o["status"]["observedGeneration"] = 1;
    return o;
  };
  std::string why;
  EXPECT_FALSE(RolledOut(sts({{"replicas", 2}, {"readyReplicas", 1}}), 2, &why));
  EXPECT_EQ(why, "1 of 2 ready");
  EXPECT_FALSE(RolledOut(sts({{"replicas", 3}, {"readyReplicas", 3}}), 2, &why));
  EXPECT_EQ(why, "1 extra replicas still terminating");
  EXPECT_TRUE(RolledOut(sts({{"replicas", 2}, {"readyReplicas", 2}}), 2));
  // No status at all (a workload the controller never saw).
  EXPECT_FALSE(RolledOut(Json{{"kind", "StatefulSet"}, {"metadata", {{"generation", 1}}}}, 1, &why));
  EXPECT_EQ(why, "the controller has not seen generation 1 yet");
  // A hostile or broken server's answer is not ready, and says so.
  EXPECT_FALSE(RolledOut(Json::array({1, 2}), 1, &why));
  EXPECT_EQ(why, "the server answered with no object");
  EXPECT_FALSE(RolledOut(Json{{"kind", 7}, {"metadata", "x"}, {"status", {{"readyReplicas", "3"}}}}, 1, &why));
  EXPECT_EQ(why, "0 of 1 ready");
}

TEST(Workloads, PathsNameTheAppsGroupAndThePluralKind) {
  EXPECT_EQ(WorkloadPath({"Deployment", "shop", "web", 3}), "/apis/apps/v1/namespaces/shop/deployments/web");
  EXPECT_EQ(WorkloadPath({"StatefulSet", "shop", "db", 1}), "/apis/apps/v1/namespaces/shop/statefulsets/db");
}

TEST(Kubeconfig, InClusterReadsTheServiceAccountAndTheServiceEnvironment) {
  fs::path dir = fs::temp_directory_path() / ("lb-sa-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "token") << "sa-token";
  std::ofstream(dir / "ca.crt") << "-----BEGIN CERTIFICATE-----\nx\n";
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  auto missing = InClusterAccess(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto a = InClusterAccess(dir.string());
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->server, "https://10.96.0.1:443");
  EXPECT_EQ(a->token_file, (dir / "token").string());  // re-read at each use: the kubelet rotates it
  EXPECT_EQ(a->ca_pem, "-----BEGIN CERTIFICATE-----\nx\n");
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_EQ(InClusterAccess(dir.string())->server, "https://[fd00::1]:443");
  fs::remove(dir / "token");
  EXPECT_FALSE(InClusterAccess(dir.string()).ok());
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  fs::remove_all(dir);
}


Json Deployment(const std::string& claim) {
  return Json::parse(R"({"metadata": {"name": "web"}, "spec": {"template": {"spec": {
    "initContainers": [{"name": "lifeboat-restore-wait", "image": "old"}, {"name": "migrate", "image": "app"}],
    "containers": [{"name": "web", "image": "nginx"}],
    "volumes": [{"name": "files", "persistentVolumeClaim": {"claimName": ")" + claim + R"("}},
                {"name": "tmp", "emptyDir": {}}]}}}})");
}

TEST(RestoreWait, WaitsForTheMarkerOfEachRestoredClaimAndDropsAFormerWait) {
  Json d = Deployment("uploads");
  ASSERT_TRUE(AddRestoreWait(d, "deployments.apps", {"uploads"}, "reg/lifeboat:1", "ab12"));
  const Json& inits = d["spec"]["template"]["spec"]["initContainers"];
  ASSERT_EQ(inits.size(), 2u);  // the old wait gone, the new one first, the app's own kept
  EXPECT_EQ(inits[0]["name"], "lifeboat-restore-wait");
  EXPECT_EQ(inits[0]["image"], "reg/lifeboat:1");
  EXPECT_EQ(inits[0]["command"].back(), "/lifeboat-restore/files/.lifeboat-restore/ab12");
  EXPECT_EQ(inits[0]["volumeMounts"][0]["name"], "files");
  EXPECT_EQ(inits[0]["volumeMounts"][0]["readOnly"], true);
  EXPECT_EQ(inits[1]["name"], "migrate");

  // A workload whose claims have no files: no wait, and a former one is dropped.
  Json other = Deployment("cache");
  EXPECT_FALSE(AddRestoreWait(other, "deployments.apps", {"uploads"}, "reg/lifeboat:1", "ab12"));
  ASSERT_EQ(other["spec"]["template"]["spec"]["initContainers"].size(), 1u);
  EXPECT_EQ(other["spec"]["template"]["spec"]["initContainers"][0]["name"], "migrate");
  // Kinds without pods are left alone.
  Json cm = Json::parse(R"({"data": {"a": "b"}})");
  EXPECT_FALSE(AddRestoreWait(cm, "configmaps", {"uploads"}, "i", "m"));
  EXPECT_EQ(cm, Json::parse(R"({"data": {"a": "b"}})"));
}

TEST(RestoreWait, AStatefulSetWaitsOnlyWhenEveryReplicasClaimHasFiles) {
  Json sts = Json::parse(R"({"metadata": {"name": "db"}, "spec": {"replicas": 2,
    "template": {"spec": {"containers": [{"name": "db"}]}},
    "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}})");
  Json partial = sts;
  // data-db-1 has no files: its replica would wait for ever.
  EXPECT_FALSE(AddRestoreWait(partial, "statefulsets.apps", {"data-db-0"}, "i", "m"));
  EXPECT_FALSE(partial["spec"]["template"]["spec"].contains("initContainers"));
  ASSERT_TRUE(AddRestoreWait(sts, "statefulsets.apps", {"data-db-0", "data-db-1"}, "i", "m"));
  EXPECT_EQ(sts["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["name"], "data");
  // A hostile backup's odd shapes change nothing and do not throw.
  for (const char* odd : {R"({"spec": 3})", R"({"spec": {"template": {"spec": []}}})",
                          R"({"spec": {"replicas": 1e300, "volumeClaimTemplates": [7]}})"}) {
    Json o = Json::parse(odd);
    EXPECT_FALSE(AddRestoreWait(o, "statefulsets.apps", {"x"}, "i", "m")) << odd;
  }
}

TEST(VolumeLink, RoundTripsThroughJsonAndReadsOddTypesAsAbsent) {
  VolumeLink l{"shop", "uploads", "web-1", "node-a", "pv-1", "fast", "abcd", 3, 300, 1, ""};
  VolumeLink back = VolumeLink::FromJson(l.ToJson());
  EXPECT_EQ(back.ToJson(), l.ToJson());
  VolumeLink odd = VolumeLink::FromJson(Json::parse(R"({"pvc": 5, "files": -3, "bytes": "x", "snapshot": ["a"]})"));
  EXPECT_EQ(odd.pvc, "");
  EXPECT_EQ(odd.files, 0u);
  EXPECT_EQ(odd.snapshot, "");
}

}  // namespace
}  // namespace lifeboat::k8s
