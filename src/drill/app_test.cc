#include "drill/app.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/fs.h"

namespace lifeboat::drill {
namespace {

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lifeboat-app-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_ = {dir_.string(), "west"};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  net::HttpResponse Call(const std::string& method, const std::string& path, const std::string& body = "") {
    net::HttpRequest r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.body = body;
    return HandleAppRequest(options_, r);
  }

  std::filesystem::path dir_;
  AppOptions options_;
};

TEST_F(AppTest, KeepsRecordsAsFilesInTheVolumeAndListsThem) {
  EXPECT_EQ(Call("GET", "/records").body, "");
  auto put = Call("PUT", "/records/7", "seven");
  EXPECT_EQ(put.status, 201);
  EXPECT_EQ(Call("PUT", "/records/12", "twelve").status, 201);
  EXPECT_EQ(*ReadFile((dir_ / "records/7").string()), "seven");
  EXPECT_EQ(Call("GET", "/records/12").body, "twelve");
  EXPECT_EQ(Call("GET", "/records").body, "7\n12\n");
  EXPECT_EQ(*ListRecords(dir_.string()), (std::set<uint64_t>{7, 12}));
  // A file that is not a record (a replication temp file, say) is not listed.
  std::filesystem::create_directories(dir_ / "records/sub");
  ASSERT_TRUE(WriteFileAtomic((dir_ / "records/.7.tmp").string(), "x").ok());
  EXPECT_EQ(*ListRecords(dir_.string()), (std::set<uint64_t>{7, 12}));
  bool named = false;
  for (const auto& [k, v] : put.headers) named |= k == "X-Lifeboat-Region" && v == "west";
  EXPECT_TRUE(named);
}

TEST_F(AppTest, RefusesWhatIsNotARecord) {
  EXPECT_EQ(Call("PUT", "/records/-1", "x").status, 400);
  EXPECT_EQ(Call("PUT", "/records/007", "x").status, 400);
  EXPECT_EQ(Call("PUT", "/records/99999999999999999999999", "x").status, 400);
  EXPECT_EQ(Call("PUT", "/records/..%2f..%2fetc", "x").status, 400);
  EXPECT_EQ(Call("PUT", "/records/../../x", "x").status, 400);
  EXPECT_EQ(Call("PUT", "/records/1", std::string(5000, 'x')).status, 413);
  EXPECT_EQ(Call("DELETE", "/records/1").status, 405);
  EXPECT_EQ(Call("POST", "/records").status, 405);
  EXPECT_EQ(Call("GET", "/records/3").status, 404);
  EXPECT_EQ(Call("GET", "/elsewhere").status, 404);
  EXPECT_EQ(Call("GET", "/healthz").body, "ok\n");
  EXPECT_EQ(*ListRecords(dir_.string()), std::set<uint64_t>{});
}

TEST_F(AppTest, ServesOverHttp) {
  auto app = App::Start(options_, Address{"127.0.0.1", 0});
  ASSERT_TRUE(app.ok()) << app.error().ToString();
  std::string base = "http://127.0.0.1:" + std::to_string((*app)->port());
  auto put = net::Fetch("PUT", base + "/records/1", std::chrono::seconds(5), "one");
  ASSERT_TRUE(put.ok()) << put.error().ToString();
  EXPECT_EQ(put->status, 201);
  auto list = net::Fetch("GET", base + "/records", std::chrono::seconds(5));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->body, "1\n");
  (*app)->Stop();
  EXPECT_FALSE(net::Fetch("GET", base + "/healthz", std::chrono::seconds(2)).ok());
}

}  // namespace
}  // namespace lifeboat::drill
