#include "core/result.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

// The README promises exit 2 for bad input and 1 for a failed operation;
// `traffic off nowhere` exited 1 and `backup list` without a repository 1
// while `backup describe 0000` exited 2. One table now decides.
TEST(ErrorContract, ExitCodes) {
  EXPECT_EQ(ExitCode(Code::kOk), 0);
  EXPECT_EQ(ExitCode(Code::kInvalidArgument), 2);
  EXPECT_EQ(ExitCode(Code::kNotFound), 2);
  EXPECT_EQ(ExitCode(Code::kUnavailable), 1);
  EXPECT_EQ(ExitCode(Code::kFailedPrecondition), 1);
  EXPECT_EQ(ExitCode(Code::kUnauthenticated), 1);
  EXPECT_EQ(ExitCode(Code::kDataLoss), 1);
  EXPECT_EQ(ExitCode(Code::kCancelled), 130);
}

TEST(ErrorContract, HttpStatuses) {
  EXPECT_EQ(HttpStatus(Code::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatus(Code::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatus(Code::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatus(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatus(Code::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatus(Code::kUnavailable), 503);
  EXPECT_EQ(HttpStatus(Code::kInternal), 500);
  for (int c = 0; c <= static_cast<int>(Code::kInternal); ++c) {
    EXPECT_NE(CodeName(static_cast<Code>(c)), "Unknown") << c;
  }
}

}  // namespace
}  // namespace lifeboat
