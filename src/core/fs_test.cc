#include "core/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

namespace lifeboat {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lb-fs-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(FsTest, AtomicWriteReplacesAndLeavesNoTemp) {
  ASSERT_TRUE(EnsureWritableDir(dir_.string()).ok());
  std::string f = (dir_ / "a").string();
  ASSERT_TRUE(WriteFileAtomic(f, "one").ok());
  ASSERT_TRUE(WriteFileAtomic(f, "two").ok());
  EXPECT_EQ(*ReadFile(f), "two");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(FsTest, ReadMissingIsNotFound) {
  auto r = ReadFile((dir_ / "nope").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
}

TEST_F(FsTest, FileWhereDirectoryExpectedIsAnError) {
  ASSERT_TRUE(EnsureWritableDir(dir_.string()).ok());
  ASSERT_TRUE(WriteFileAtomic((dir_ / "f").string(), "x").ok());
  EXPECT_FALSE(EnsureWritableDir((dir_ / "f").string()).ok());
}

}  // namespace
}  // namespace lifeboat

namespace lifeboat {
namespace {

TEST_F(FsTest, SecondLockOnTheSameFileIsRefusedWithThePid) {
  ASSERT_TRUE(EnsureWritableDir(dir_.string()).ok());
  std::string path = (dir_ / "lock").string();
  auto first = FileLock::Acquire(path);
  ASSERT_TRUE(first.ok());
  auto second = FileLock::Acquire(path);  // flock locks are per open file description
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find(std::to_string(::getpid())), std::string::npos);
  { auto released = std::move(*first); }
  EXPECT_TRUE(FileLock::Acquire(path).ok());
}

}  // namespace
}  // namespace lifeboat
