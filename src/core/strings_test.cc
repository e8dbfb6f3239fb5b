#include "core/strings.h"

#include <gtest/gtest.h>

#include "core/base64.h"

namespace lifeboat {
namespace {

TEST(Strings, ClosestMatchFindsTyposOnly) {
  std::string_view keys[] = {"interval", "timeout", "fall", "rise", "path"};
  EXPECT_EQ(ClosestMatch("intervl", keys), "interval");
  EXPECT_EQ(ClosestMatch("timout", keys), "timeout");
  EXPECT_EQ(ClosestMatch("Interval", keys), "interval");
  EXPECT_EQ(ClosestMatch("interv", keys), "interval");
  EXPECT_EQ(ClosestMatch("banana", keys), "");
  std::string_view regions[] = {"east", "west"};
  EXPECT_EQ(ClosestMatch("eats", regions), "east");  // a transposition is one edit
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(Strings, QuoteEscapesControlBytes) {
  EXPECT_EQ(Quote("web"), "'web'");
  EXPECT_EQ(Quote(std::string("a\0b", 3)), "'a\\x00b'");
}

TEST(Base64, RoundTripsEveryLengthAndRefusesWhatIsNotBase64) {
  std::string s;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s) << i;
    s.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(Base64Encode("kube"), "a3ViZQ==");
  EXPECT_EQ(Base64Decode("a3ViZQ=="), "kube");
  EXPECT_FALSE(Base64Decode("a3ViZQ=").has_value());  // length
  EXPECT_FALSE(Base64Decode("a3V*ZQ==").has_value());  // alphabet
}

}  // namespace
}  // namespace lifeboat
