#include "core/clock.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace lifeboat {
namespace {
class RealClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};
}  // namespace

Clock& Clock::Real() {
  static RealClock clock;
  return clock;
}

std::string FormatUtc(Clock::TimePoint t) {
  using namespace std::chrono;
  auto secs = time_point_cast<seconds>(t);
  if (secs > t) secs -= seconds(1);
  auto ms = duration_cast<milliseconds>(t - secs).count();
  std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::optional<Clock::TimePoint> ParseUtc(std::string_view text) {
  using namespace std::chrono;
  size_t i = 0;
  auto digits = [&](size_t n) -> std::optional<int> {
    if (i + n > text.size()) return std::nullopt;
    int v = 0;
    for (size_t k = 0; k < n; ++k) {
      char c = text[i + k];
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    i += n;
    return v;
  };
  auto sep = [&](char c) {
    if (i >= text.size() || text[i] != c) return false;
    ++i;
    return true;
  };
  auto y = digits(4);
  if (!y || !sep('-')) return std::nullopt;
  auto mo = digits(2);
  if (!mo || !sep('-')) return std::nullopt;
  auto d = digits(2);
  if (!d || !sep('T')) return std::nullopt;
  auto h = digits(2);
  if (!h || !sep(':')) return std::nullopt;
  auto mi = digits(2);
  if (!mi || !sep(':')) return std::nullopt;
  auto s = digits(2);
  if (!s) return std::nullopt;
  int64_t nanos = 0;
  if (sep('.')) {
    size_t start = i;
    while (i < text.size() && i - start < 9 && text[i] >= '0' && text[i] <= '9') {
      nanos = nanos * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) return std::nullopt;
    for (size_t k = i - start; k < 9; ++k) nanos *= 10;
  }
  if (!sep('Z') || i != text.size()) return std::nullopt;
  year_month_day ymd{year(*y), month(static_cast<unsigned>(*mo)), day(static_cast<unsigned>(*d))};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
  // Nanoseconds in int64 reach from 1677 to 2262: a year outside would
  // overflow (undefined behaviour, found by fuzz_drill under UBSan). 1970 to
  // 2200 leaves room for the sums and differences readers make of them.
  if (*y < 1970 || *y > 2200) return std::nullopt;
  auto t = sys_days(ymd) + hours(*h) + minutes(*mi) + seconds(*s) + nanoseconds(nanos);
  return time_point_cast<Clock::TimePoint::duration>(t);
}

int64_t NowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::Real().Now().time_since_epoch()).count();
}

std::string Hostname() {
  char buf[256] = "unknown";
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace lifeboat
