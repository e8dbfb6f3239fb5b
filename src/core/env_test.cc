#include "core/env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/fault_env.h"
#include "core/fd.h"
#include "core/fs.h"

namespace lifeboat {
namespace {

namespace fs = std::filesystem;

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-env-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const char* name) { return (dir_ / name).string(); }

  // create, write, fsync, rename: four calls.
  Status Save(Env& env, const char* name, std::string_view data) {
    std::string tmp = Path("tmp");
    UniqueFd fd(env.Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError(errno, "create");
    LB_RETURN_IF_ERROR(WriteAll(env, fd.get(), data, tmp));
    if (env.Fsync(fd.get()) != 0) return ErrnoError(errno, "fsync");
    if (env.Rename(tmp.c_str(), Path(name).c_str()) != 0) return ErrnoError(errno, "rename");
    return Ok();
  }
  fs::path dir_;
};

TEST_F(EnvTest, TheDefaultEnvRunsEveryCall) {
  ASSERT_TRUE(Save(Env::Default(), "a", "hello").ok());
  EXPECT_EQ(*ReadFile(Path("a")), "hello");
  EXPECT_EQ(Env::Default().Unlink(Path("a").c_str()), 0);
  EXPECT_FALSE(fs::exists(Path("a")));
}

TEST_F(EnvTest, CountsTheCallsOfACleanRun) {
  FaultEnv env;
  ASSERT_TRUE(Save(env, "a", "hello").ok());
  EXPECT_EQ(env.calls(), 4u);
  EXPECT_FALSE(env.fired());
}

TEST_F(EnvTest, AnIoErrorFailsOnlyTheChosenCall) {
  FaultEnv env;
  env.Arm(FaultEnv::Fault::kIoError, 3);  // the fsync
  auto s = Save(env, "a", "hello");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("fsync"), std::string::npos) << s.error().message();
  EXPECT_EQ(env.fired_at(), "sync (call 3)");
  EXPECT_FALSE(fs::exists(Path("a")));
  EXPECT_TRUE(Save(env, "a", "hello").ok()) << "later calls run";
}

TEST_F(EnvTest, ACrashTearsTheWriteItHitsAndStopsEverythingAfter) {
  FaultEnv env;
  env.Arm(FaultEnv::Fault::kCrash, 2);  // the write
  ASSERT_FALSE(Save(env, "a", "0123456789").ok());
  EXPECT_EQ(*ReadFile(Path("tmp")), "01234") << "half the write reached the file";
  EXPECT_FALSE(fs::exists(Path("a")));
  EXPECT_EQ(env.Unlink(Path("tmp").c_str()), -1) << "the process is dead";
  EXPECT_EQ(errno, EIO);
  env.Disarm();
  EXPECT_TRUE(Save(env, "a", "0123456789").ok()) << "a restarted process runs again";
  EXPECT_EQ(*ReadFile(Path("a")), "0123456789");
}

TEST_F(EnvTest, AFullDiskRefusesOnlyWhatNeedsRoom) {
  FaultEnv env;
  ASSERT_TRUE(Save(env, "a", "old").ok());
  env.Arm(FaultEnv::Fault::kDiskFull, 1);
  auto s = Save(env, "b", "new");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kResourceExhausted) << s.error().message();
  EXPECT_EQ(env.Rename(Path("a").c_str(), Path("c").c_str()), 0) << "a rename needs no room";
  EXPECT_EQ(env.Unlink(Path("c").c_str()), 0) << "nor does removing a file";
}

}  // namespace
}  // namespace lifeboat
