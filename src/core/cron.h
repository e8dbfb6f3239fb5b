// Cron expressions for backup schedules: five fields (minute hour
// day-of-month month day-of-week) with lists, ranges, steps and names, or a
// macro (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually).
// Times are UTC. As in Vixie cron, when both day fields are restricted a day
// matches if either does.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace lifeboat {

class CronSchedule {
 public:
  static Result<CronSchedule> Parse(std::string_view text);

  // The first minute strictly after `after` that matches, or nullopt when none
  // does within eight years (e.g. "0 0 30 2 *").
  std::optional<std::chrono::system_clock::time_point> Next(std::chrono::system_clock::time_point after) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_; // 0 = Sunday
  bool days_restricted_ = false;
  bool weekdays_restricted_ = false;
};

}  // namespace lifeboat
