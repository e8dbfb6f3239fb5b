#include "core/cron.h"

#include <charconv>
#include <ctime>
#include <sstream>
#include <vector>

#include "core/strings.h"

namespace lifeboat {
namespace {

struct FieldSpec {
  const char* name;
  int lo, hi;
  const char* const* names;  // nullptr or hi-lo+1 names for lo..hi
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

Result<int> ParseValue(std::string_view s, const FieldSpec& f, bool allow_seven) {
  if (f.names) {
    std::string lower = ToLower(s);
    for (int i = 0; i <= f.hi - f.lo; ++i) {
      if (lower == f.names[i]) return f.lo + i;
    }
  }
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return InvalidArgument(std::string(f.name) + " field: '" + std::string(s) + "' is not a number");
  }
  int hi = allow_seven ? 7 : f.hi;
  if (v < f.lo || v > hi) {
    return InvalidArgument(std::string(f.name) + " field: " + std::to_string(v) + " is outside " +
                           std::to_string(f.lo) + "-" + std::to_string(f.hi));
  }
  return v;
}

// Parses one field into bits[lo..hi]; returns whether it restricts anything.
template <size_t N>
Result<bool> ParseField(std::string_view field, const FieldSpec& f, std::bitset<N>& bits) {
  bool is_dow = f.names == kDayNames;
  bool restricted = true;
  size_t start = 0;
  while (start <= field.size()) {
    size_t comma = field.find(',', start);
    std::string_view item = field.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? field.size() + 1 : comma + 1;
    if (item.empty()) return InvalidArgument(std::string(f.name) + " field: empty list item");
    int step = 1;
    size_t slash = item.find('/');
    if (slash != std::string_view::npos) {
      std::string_view st = item.substr(slash + 1);
      auto [p, ec] = std::from_chars(st.data(), st.data() + st.size(), step);
      if (st.empty() || ec != std::errc() || p != st.data() + st.size() || step <= 0) {
        return InvalidArgument(std::string(f.name) + " field: step '" + std::string(st) + "' is not a positive number");
      }
      item = item.substr(0, slash);
    }
    int lo, hi;
    if (item == "*") {
      lo = f.lo;
      hi = f.hi;
      if (slash == std::string_view::npos) restricted = false;
    } else {
      size_t dash = item.find('-');
      LB_ASSIGN_OR_RETURN(lo, ParseValue(item.substr(0, dash), f, is_dow));
      if (dash == std::string_view::npos) {
        hi = slash == std::string_view::npos ? lo : f.hi;
      } else {
        LB_ASSIGN_OR_RETURN(hi, ParseValue(item.substr(dash + 1), f, is_dow));
      }
      if (hi < lo) {
        return InvalidArgument(std::string(f.name) + " field: range " + std::to_string(lo) + "-" +
                               std::to_string(hi) + " runs backwards");
      }
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(is_dow ? v % 7 : v));
  }
  return restricted;
}

}  // namespace

Result<CronSchedule> CronSchedule::Parse(std::string_view text) {
  std::string t(text);
  std::string expr = t;
  if (!t.empty() && t[0] == '@') {
    std::string m = ToLower(t);
    if (m == "@hourly") expr = "0 * * * *";
    else if (m == "@daily" || m == "@midnight") expr = "0 0 * * *";
    else if (m == "@weekly") expr = "0 0 * * 0";
    else if (m == "@monthly") expr = "0 0 1 * *";
    else if (m == "@yearly" || m == "@annually") expr = "0 0 1 1 *";
    else return InvalidArgument("unknown cron macro '" + t + "'; use @hourly, @daily, @weekly, @monthly or @yearly");
  }
  std::istringstream in(expr);
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  if (fields.size() != 5) {
    return InvalidArgument("cron expression '" + t + "' has " + std::to_string(fields.size()) +
                           " fields; it needs 5: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"");
  }
  static const FieldSpec kSpecs[] = {{"minute", 0, 59, nullptr},
                                     {"hour", 0, 23, nullptr},
                                     {"day-of-month", 1, 31, nullptr},
                                     {"month", 1, 12, kMonthNames},
                                     {"day-of-week", 0, 6, kDayNames}};
  CronSchedule c;
  c.text_ = t;
  auto wrap = [&](const Error& e) { return InvalidArgument("cron expression '" + t + "': " + e.message()); };
  if (auto r = ParseField(fields[0], kSpecs[0], c.minutes_); !r) return wrap(r.error());
  if (auto r = ParseField(fields[1], kSpecs[1], c.hours_); !r) return wrap(r.error());
  auto days = ParseField(fields[2], kSpecs[2], c.days_);
  if (!days) return wrap(days.error());
  if (auto r = ParseField(fields[3], kSpecs[3], c.months_); !r) return wrap(r.error());
  auto wd = ParseField(fields[4], kSpecs[4], c.weekdays_);
  if (!wd) return wrap(wd.error());
  c.days_restricted_ = *days;
  c.weekdays_restricted_ = *wd;
  return c;
}

std::optional<std::chrono::system_clock::time_point> CronSchedule::Next(
    std::chrono::system_clock::time_point after) const {
  using namespace std::chrono;
  auto t = floor<minutes>(after) + minutes(1);
  auto limit = t + hours(24 * 366 * 8);
  while (t < limit) {
    auto day = floor<days>(t);
    year_month_day ymd{day};
    unsigned month = static_cast<unsigned>(ymd.month());
    if (!months_.test(month)) {
      // Jump to the first day of the next month.
      auto next = year_month_day{ymd.year() / ymd.month() / 1} + std::chrono::months(1);
      t = sys_days{next};
      continue;
    }
    bool dom = days_.test(static_cast<unsigned>(ymd.day()));
    bool dow = weekdays_.test(weekday{day}.c_encoding());
    bool day_ok = (days_restricted_ && weekdays_restricted_) ? (dom || dow)
                  : days_restricted_                         ? dom
                  : weekdays_restricted_                     ? dow
                                                             : true;
    if (!day_ok) {
      t = day + std::chrono::days(1);
      continue;
    }
    hh_mm_ss hms{t - day};
    if (!hours_.test(static_cast<size_t>(hms.hours().count()))) {
      t = day + hms.hours() + hours(1);
      continue;
    }
    if (!minutes_.test(static_cast<size_t>(hms.minutes().count()))) {
      t += minutes(1);
      continue;
    }
    return time_point_cast<system_clock::duration>(t);
  }
  return std::nullopt;
}

}  // namespace lifeboat
