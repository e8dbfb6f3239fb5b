// Durations ("500ms", "1h30m"), sizes ("16MB", "1GiB") and rates ("200MB/s"):
// parsing from plan text and formatting back in the shortest exact form.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace lifeboat {

using Duration = std::chrono::nanoseconds;

// Accepts one or more <number><unit> groups, units ns us ms s m h d; e.g.
// "500ms", "30s", "1h30m", "1.5s". Rejects negatives, a missing unit and overflow.
Result<Duration> ParseDuration(std::string_view text);
// The shortest exact form: 1500ms -> "1.5s", 90s -> "1m30s", 0 -> "0s".
std::string FormatDuration(Duration d);

// A byte count. Decimal units (kB/KB, MB, GB, TB, PB = 1000^n) and binary ones
// (KiB, MiB, GiB, TiB, PiB = 1024^n); "B" or no unit is bytes.
struct Size {
  uint64_t bytes = 0;
  friend bool operator==(Size, Size) = default;
};
Result<Size> ParseSize(std::string_view text);
// The largest unit that represents the value exactly: 16000000 -> "16MB",
// 1073741824 -> "1GiB", 1500 -> "1500B" (whole multiples only).
std::string FormatSize(Size s);
// A human rounding for progress and tables: "1.2 GiB".
std::string HumanBytes(uint64_t bytes);

// Bytes per second, written "<size>/s".
struct Rate {
  uint64_t bytes_per_second = 0;
  friend bool operator==(Rate, Rate) = default;
};
Result<Rate> ParseRate(std::string_view text);
std::string FormatRate(Rate r);

}  // namespace lifeboat
