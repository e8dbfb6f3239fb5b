#include "core/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace lifeboat {
namespace {

std::string Capture(LogFormat format, const std::function<void()>& fn) {
  testing::internal::CaptureStderr();
  EXPECT_TRUE(InitLogging({"info", format}).ok());
  fn();
  spdlog::default_logger()->flush();
  return testing::internal::GetCapturedStderr();
}

// Fields were only inside the message, and the level read "warning" where
// --log-level says "warn".
TEST(Log, JsonLinesCarryTheFieldsAndTheLevelAsConfigured) {
  std::string out = Capture(LogFormat::kJson, [] {
    LogWarn({{"endpoint", "web"}, {"error", "connection \"refused\""}}, "endpoint {} is unhealthy", "web");
    spdlog::info("plain");
    spdlog::debug("below the level");
  });
  auto first = out.substr(0, out.find('\n'));
  auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["msg"], "endpoint web is unhealthy");
  EXPECT_EQ(j["endpoint"], "web");
  EXPECT_EQ(j["error"], "connection \"refused\"");
  auto second = nlohmann::json::parse(out.substr(first.size() + 1, out.find('\n', first.size() + 1) - first.size() - 1));
  EXPECT_EQ(second["msg"], "plain");
  EXPECT_EQ(out.find("below the level"), std::string::npos);
}

TEST(Log, TextLinesShowFieldsAsKeyValue) {
  std::string out = Capture(LogFormat::kText, [] {
    LogError({{"volume", "data"}, {"error", "disk is full"}}, "replication {} stopped", "data");
  });
  EXPECT_NE(out.find(" error replication data stopped volume=data error=\"disk is full\"\n"), std::string::npos) << out;
}

TEST(Log, UnknownLevelIsRefused) {
  EXPECT_FALSE(InitLogging({"loud", LogFormat::kText}).ok());
  EXPECT_TRUE(InitLogging({"warn", LogFormat::kText}).ok());
}

}  // namespace
}  // namespace lifeboat
