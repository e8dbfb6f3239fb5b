#include "core/clock.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

using namespace std::chrono_literals;

TEST(Utc, ParseReadsWhatFormatWrites) {
  for (auto t : {Clock::TimePoint(0s), Clock::TimePoint(1'800'000'000'123ms), Clock::TimePoint(951'782'400s)}) {
    auto back = ParseUtc(FormatUtc(t));
    ASSERT_TRUE(back) << FormatUtc(t);
    EXPECT_EQ(*back, t) << FormatUtc(t);
  }
  EXPECT_EQ(FormatUtc(*ParseUtc("2000-02-29T23:59:59Z")), "2000-02-29T23:59:59.000Z");
  EXPECT_EQ(*ParseUtc("1970-01-01T00:00:01.5Z"), Clock::TimePoint(1500ms));
  EXPECT_EQ(*ParseUtc("1970-01-01T00:00:00.000000001Z"), Clock::TimePoint(1ns));
  EXPECT_TRUE(ParseUtc("2200-12-31T23:59:59.999999999Z"));
}

TEST(Utc, ParseRefusesWhatIsNotAUtcTimestamp) {
  for (const char* bad : {"", "2026-11-22", "2026-11-22T03:00:00", "2026-11-22T03:00:00+01:00", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T03:00:00.Z",
                          "2026-11-22T03:00:00.1234567890Z", "2026-11-22T03:00:00Zjunk", "2026-1-22T03:00:00Z",
                          "20a6-11-22T03:00:00Z",
                          // outside 1970-2200 (int64 nanoseconds reach 1677-2262): refused, not overflowed
                          "0013-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2201-01-01T00:00:00Z", "9999-01-01T00:00:00Z"}) {
    EXPECT_FALSE(ParseUtc(bad)) << bad;
  }
}

}  // namespace
}  // namespace lifeboat
