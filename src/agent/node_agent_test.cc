#include "agent/node_agent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "plan/load.h"

namespace lifeboat::agent {
namespace {

namespace fs = std::filesystem;

class NodeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("lifeboat-node-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "pods/u1/volumes/kubernetes.io~csi/pv-a/mount");
    fs::create_directories(root_ / "pods/u1/volumes/kubernetes.io~local-volume/pv-b");
    fs::create_directories(root_ / "pods/u1/volumes/kubernetes.io~csi/pv-unmounted");
    fs::create_directories(root_ / "outside");
    fs::create_directories(root_ / "pods/u2/volumes/kubernetes.io~csi");
    fs::create_symlink(root_ / "outside", root_ / "pods/u2/volumes/kubernetes.io~csi/pv-c");
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(NodeAgentTest, FindsAVolumeBelowItsPluginAndACsiVolumesMount) {
  auto a = FindVolumeDir(root_.string(), "u1", "pv-a");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(*a, (root_ / "pods/u1/volumes/kubernetes.io~csi/pv-a/mount").string());
  auto b = FindVolumeDir(root_.string(), "u1", "pv-b");
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  EXPECT_EQ(*b, (root_ / "pods/u1/volumes/kubernetes.io~local-volume/pv-b").string());
  EXPECT_EQ(FindVolumeDir(root_.string(), "u1", "pv-unmounted").error().code(), Code::kNotFound);
  EXPECT_EQ(FindVolumeDir(root_.string(), "u1", "pv-x").error().code(), Code::kNotFound);
  EXPECT_EQ(FindVolumeDir(root_.string(), "u9", "pv-a").error().code(), Code::kNotFound);
}

TEST_F(NodeAgentTest, NothingOutsideThePodsVolumesIsReachable) {
  for (const char* uid : {"..", "../u1", "u1/volumes", "", "u1/../u1"}) {
    EXPECT_EQ(FindVolumeDir(root_.string(), uid, "pv-a").error().code(), Code::kInvalidArgument) << uid;
  }
  for (const char* vol : {"..", ".", "pv-a/../pv-b", "", "a/b"}) {
    EXPECT_EQ(FindVolumeDir(root_.string(), "u1", vol).error().code(), Code::kInvalidArgument) << vol;
  }
  // A symlink where a volume's directory should be is not followed.
  EXPECT_EQ(FindVolumeDir(root_.string(), "u2", "pv-c").error().code(), Code::kNotFound);
}

TEST_F(NodeAgentTest, TheMarkerIsNeverWrittenThroughASymlink) {
  std::string vol = (root_ / "pods/u1/volumes/kubernetes.io~local-volume/pv-b").string();
  ASSERT_TRUE(WriteRestoreMarker(vol, "m1").ok());
  EXPECT_TRUE(fs::exists(vol + "/.lifeboat-restore/m1"));
  EXPECT_FALSE(WriteRestoreMarker(vol, "../m2").ok());
  // The restored files made .lifeboat-restore a symlink out of the volume.
  std::string evil = (root_ / "pods/u1/volumes/kubernetes.io~csi/pv-a/mount").string();
  fs::create_symlink(root_ / "outside", evil + "/.lifeboat-restore");
  EXPECT_FALSE(WriteRestoreMarker(evil, "m3").ok());
  EXPECT_FALSE(fs::exists(root_ / "outside/m3"));
  // ... or the marker itself a symlink.
  fs::create_directories(vol + "/x");
  fs::create_symlink(root_ / "outside/planted", vol + "/.lifeboat-restore/m4");
  EXPECT_FALSE(WriteRestoreMarker(vol, "m4").ok());
  EXPECT_FALSE(fs::exists(root_ / "outside/planted"));
}

TEST_F(NodeAgentTest, TheApiWantsTheTokenAndPlainNames) {
  auto plan = plan::LoadPlanText(
      "name: t\npattern: warm-standby\nregions:\n  a: { role: primary, agent: 127.0.0.1:1 }\n  b: { role: standby, agent: 127.0.0.1:2 }\n"
      "backup:\n  locations:\n    here: { type: filesystem, path: /nonexistent }\n"
      "    ro: { type: filesystem, path: /nonexistent, access: ReadOnly }\n",
      "t.yaml");
  ASSERT_TRUE(plan.plan.has_value()) << (plan.diagnostics.empty() ? "" : plan.diagnostics[0].message);
  NodeAgentOptions o;
  o.kubelet_root = root_.string();
  o.token = "s3cret";
  NodeAgent node(*plan.plan, o);
  auto call = [&](const std::string& method, const std::string& path, const std::string& body, bool auth = true) {
    net::HttpRequest r;
    r.method = method;
    r.path = r.target = path;
    r.body = body;
    if (auth) r.headers.emplace_back("Authorization", "Bearer s3cret");
    return node.Handle(r);
  };
  EXPECT_EQ(call("GET", "/healthz", "", false).status, 200);
  EXPECT_EQ(call("GET", "/v1/status", "", false).status, 401);
  EXPECT_EQ(call("POST", "/v1/node/backups", "{}", false).status, 401);
  EXPECT_EQ(call("POST", "/v1/node/backups", "not json").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/backups", R"({"location":"nowhere","pod_uid":"u1","volume":"pv-a","source":"pvc:a/b/c"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/backups", R"({"location":"ro","pod_uid":"u1","volume":"pv-a","source":"pvc:a/b/c"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/backups", R"({"location":"here","pod_uid":"u1","volume":"pv-a","source":"/etc"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/backups", R"({"location":"here","pod_uid":"../x","volume":"pv-a","source":"pvc:a/b/c"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/restores", R"({"location":"here","pod_uid":"u1","volume":"pv-a","snapshot":"ab"})").status, 400);
  EXPECT_EQ(call("POST", "/v1/node/restores", R"({"location":"here","pod_uid":"u1","volume":"pv-a","snapshot":"ab","marker":"a/b"})").status, 400);
  EXPECT_EQ(call("GET", "/v1/node/jobs/1", "").status, 404);
  EXPECT_EQ(call("GET", "/v1/node/backups", "").status, 405);
  // A job that runs and fails (no repository there), with its reason.
  auto started = call("POST", "/v1/node/backups", R"({"location":"here","pod_uid":"u1","volume":"pv-b","source":"pvc:a/b/c"})");
  ASSERT_EQ(started.status, 202) << started.body;
  std::string state;
  for (int i = 0; i < 200 && state.find("\"failed\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    state = call("GET", "/v1/node/jobs/1", "").body;
  }
  EXPECT_NE(state.find("\"state\":\"failed\""), std::string::npos) << state;
  EXPECT_NE(state.find("\"error\""), std::string::npos) << state;
  // Counted in /metrics, which (as /healthz) needs no token.
  auto m = call("GET", "/metrics", "", false);
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("lifeboat_node_jobs_total{kind=\"backup\",result=\"failed\"} 1"), std::string::npos) << m.body;
}

}  // namespace
}  // namespace lifeboat::agent
