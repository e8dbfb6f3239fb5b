#include "core/strings.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

TEST(Strings, ClosestMatchFindsTyposOnly) {
  std::string_view keys[] = {"interval", "timeout", "fall", "rise", "path"};
  EXPECT_EQ(ClosestMatch("intervl", keys), "interval");
  EXPECT_EQ(ClosestMatch("timout", keys), "timeout");
  EXPECT_EQ(ClosestMatch("Interval", keys), "interval");
  EXPECT_EQ(ClosestMatch("interv", keys), "interval");
  EXPECT_EQ(ClosestMatch("banana", keys), "");
}

TEST(Strings, QuoteEscapesControlBytes) {
  EXPECT_EQ(Quote("web"), "'web'");
  EXPECT_EQ(Quote(std::string("a\0b", 3)), "'a\\x00b'");
}

}  // namespace
}  // namespace lifeboat
