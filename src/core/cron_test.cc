#include "core/cron.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

using namespace std::chrono;

system_clock::time_point At(int y, unsigned m, unsigned d, int hh, int mm) {
  return sys_days{year{y} / month{m} / day{d}} + hours(hh) + minutes(mm);
}

TEST(Cron, NextOfNightly) {
  auto c = CronSchedule::Parse("0 3 * * *");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c->Next(At(2026, 11, 22, 2, 59)), At(2026, 11, 22, 3, 0));
  EXPECT_EQ(*c->Next(At(2026, 11, 22, 3, 0)), At(2026, 11, 23, 3, 0));
}

TEST(Cron, StepsListsRangesAndNames) {
  auto c = CronSchedule::Parse("*/15 9-17 * * mon-fri");
  ASSERT_TRUE(c.ok());
  // 2026-11-21 is a Saturday: the next run is Monday 09:00.
  EXPECT_EQ(*c->Next(At(2026, 11, 21, 12, 0)), At(2026, 11, 23, 9, 0));
  EXPECT_EQ(*c->Next(At(2026, 11, 23, 9, 0)), At(2026, 11, 23, 9, 15));
  auto m = CronSchedule::Parse("0 0 1 jan,jul *");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m->Next(At(2026, 2, 1, 0, 0)), At(2026, 7, 1, 0, 0));
}

TEST(Cron, DayOfMonthOrDayOfWeekWhenBothRestricted) {
  // The 13th, or any Friday.
  auto c = CronSchedule::Parse("0 0 13 * 5");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c->Next(At(2026, 11, 22, 0, 0)), At(2026, 11, 27, 0, 0));  // Friday 27th
  EXPECT_EQ(*c->Next(At(2026, 12, 5, 0, 0)), At(2026, 12, 11, 0, 0));   // Friday 11th before the 13th
}

TEST(Cron, MacrosAndSundayAsSeven) {
  EXPECT_EQ(*CronSchedule::Parse("@daily")->Next(At(2026, 1, 1, 5, 0)), At(2026, 1, 2, 0, 0));
  EXPECT_EQ(*CronSchedule::Parse("0 0 * * 7")->Next(At(2026, 11, 22, 1, 0)), At(2026, 11, 29, 0, 0));
}

TEST(Cron, ImpossibleDateHasNoNext) {
  auto c = CronSchedule::Parse("0 0 30 2 *");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->Next(At(2026, 1, 1, 0, 0)).has_value());
}

TEST(Cron, RejectsMalformed) {
  for (const char* bad : {"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                          "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "@often", "1,,2 * * * *"}) {
    EXPECT_FALSE(CronSchedule::Parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace lifeboat
