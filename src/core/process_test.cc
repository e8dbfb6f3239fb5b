#include "core/process.h"

#include <gtest/gtest.h>

#include <chrono>

namespace lifeboat {
namespace {

using namespace std::chrono_literals;

TEST(RunCommand, CapturesOutputExitCodeAndTheAddedEnvironment) {
  auto r = RunCommand("echo out; echo err >&2; echo \"$LIFEBOAT_EPOCH\"; exit 3", {{"LIFEBOAT_EPOCH", "7"}}, 10s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->output, "out\nerr\n7\n");
  EXPECT_FALSE(r->truncated);
}

TEST(RunCommand, AnAddedVariableReplacesTheInheritedOne) {
  ::setenv("LIFEBOAT_TEST_VAR", "old", 1);
  auto r = RunCommand("echo \"$LIFEBOAT_TEST_VAR\"", {{"LIFEBOAT_TEST_VAR", "new"}}, 10s);
  ::unsetenv("LIFEBOAT_TEST_VAR");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, "new\n");
}

TEST(RunCommand, KeepsOnlyTheFirstBytesOfALongOutput) {
  auto r = RunCommand("yes | head -c 100000", {}, 10s, 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.size(), 1000u);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->exit_code, 0);
}

// The deadline ends the command and what it started (its process group).
TEST(RunCommand, ADeadlineEndsTheCommandAndItsChildren) {
  auto r = RunCommand("echo begun; sleep 30 & sleep 30", {}, 300ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kDeadlineExceeded);
  EXPECT_NE(r.error().message().find("begun"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace lifeboat
