#include "core/units.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnitAndCompounds) {
  EXPECT_EQ(*ParseDuration("500ms"), 500ms);
  EXPECT_EQ(*ParseDuration("30s"), 30s);
  EXPECT_EQ(*ParseDuration("1h"), 1h);
  EXPECT_EQ(*ParseDuration("1h30m"), 90min);
  EXPECT_EQ(*ParseDuration("1.5s"), 1500ms);
  EXPECT_EQ(*ParseDuration("2d"), 48h);
  EXPECT_EQ(*ParseDuration("250us"), 250us);
  EXPECT_EQ(*ParseDuration("7ns"), 7ns);
  EXPECT_EQ(*ParseDuration(" 720h "), 720h);
}

TEST(Duration, RejectsBadInputWithAHint) {
  auto r = ParseDuration("30");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no unit"), std::string::npos);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("1x").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("1.s").ok());
  EXPECT_FALSE(ParseDuration("0.5ns").ok());
  EXPECT_FALSE(ParseDuration("99999999999999999999h").ok());
  EXPECT_FALSE(ParseDuration("300000d").ok());
}

TEST(Duration, FormatsShortestExactForm) {
  EXPECT_EQ(FormatDuration(0s), "0s");
  EXPECT_EQ(FormatDuration(500ms), "500ms");
  EXPECT_EQ(FormatDuration(1500ms), "1.5s");
  EXPECT_EQ(FormatDuration(90s), "1m30s");
  EXPECT_EQ(FormatDuration(720h), "720h");
  EXPECT_EQ(FormatDuration(1h + 1ms), "1h1ms");
  EXPECT_EQ(FormatDuration(250us), "250us");
  for (const char* s : {"100ms", "1s", "2m", "1h30m", "1.25s"}) {
    EXPECT_EQ(FormatDuration(*ParseDuration(s)), s);
  }
}

TEST(Size, ParsesDecimalAndBinaryUnits) {
  EXPECT_EQ(ParseSize("16MB")->bytes, 16'000'000u);
  EXPECT_EQ(ParseSize("1GiB")->bytes, 1073741824u);
  EXPECT_EQ(ParseSize("4096")->bytes, 4096u);
  EXPECT_EQ(ParseSize("1.5kB")->bytes, 1500u);
  EXPECT_EQ(ParseSize("2 MiB")->bytes, 2u << 20);
  EXPECT_FALSE(ParseSize("16M").ok());
  EXPECT_NE(ParseSize("16M").error().message().find("MiB"), std::string::npos);
  EXPECT_FALSE(ParseSize("1.5B").ok());
  EXPECT_FALSE(ParseSize("lots").ok());
  EXPECT_FALSE(ParseSize("100000PiB").ok());
}

TEST(Size, FormatsLargestExactUnit) {
  EXPECT_EQ(FormatSize(Size{16'000'000}), "16MB");
  EXPECT_EQ(FormatSize(Size{1073741824}), "1GiB");
  EXPECT_EQ(FormatSize(Size{1234}), "1234B");
  EXPECT_EQ(FormatSize(Size{0}), "0B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
}

TEST(Rate, ParsesSizePerSecond) {
  EXPECT_EQ(ParseRate("200MB/s")->bytes_per_second, 200'000'000u);
  EXPECT_EQ(FormatRate(*ParseRate("200MB/s")), "200MB/s");
  EXPECT_FALSE(ParseRate("200MB").ok());
  EXPECT_FALSE(ParseRate("fast/s").ok());
}

}  // namespace
}  // namespace lifeboat
