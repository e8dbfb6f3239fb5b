#include "core/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace lifeboat {
namespace {

// Parses a decimal number "123" or "1.25" at the front of `s`; advances it.
// The value is returned as a mantissa and a count of fractional digits so that
// units multiply exactly.
struct Decimal {
  uint64_t mantissa = 0;
  int frac_digits = 0;
};

bool TakeDecimal(std::string_view& s, Decimal& out) {
  size_t i = 0;
  bool any = false, dot = false;
  Decimal d;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    any = true;
    if (d.mantissa > (std::numeric_limits<uint64_t>::max() - 9) / 10) return false;
    d.mantissa = d.mantissa * 10 + static_cast<uint64_t>(c - '0');
    if (dot) ++d.frac_digits;
  }
  if (!any) return false;
  if (dot && d.frac_digits == 0) return false;  // "1." is not a number
  s.remove_prefix(i);
  out = d;
  return true;
}

// mantissa * unit / 10^frac, exactly, or false on overflow or a fraction of
// the smallest step.
bool Scale(Decimal d, uint64_t unit, uint64_t& out) {
  unsigned __int128 v = static_cast<unsigned __int128>(d.mantissa) * unit;
  for (int i = 0; i < d.frac_digits; ++i) {
    if (v % 10 != 0) return false;
    v /= 10;
  }
  if (v > std::numeric_limits<uint64_t>::max()) return false;
  out = static_cast<uint64_t>(v);
  return true;
}

std::string Trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

constexpr Unit kDurationUnits[] = {
    {"ns", 1ull},
    {"us", 1000ull},
    {"ms", 1000ull * 1000},
    {"s", 1000ull * 1000 * 1000},
    {"m", 60ull * 1000 * 1000 * 1000},
    {"h", 3600ull * 1000 * 1000 * 1000},
    {"d", 86400ull * 1000 * 1000 * 1000},
};

constexpr uint64_t kKi = 1024;
constexpr Unit kSizeUnits[] = {
    {"B", 1},
    {"kB", 1000},
    {"KB", 1000},
    {"MB", 1000ull * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
    {"PB", 1000ull * 1000 * 1000 * 1000 * 1000},
    {"KiB", kKi},
    {"MiB", kKi * kKi},
    {"GiB", kKi * kKi * kKi},
    {"TiB", kKi * kKi * kKi * kKi},
    {"PiB", kKi * kKi * kKi * kKi * kKi},
};

// Formats value/unit with up to 3 decimals, only if exact.
bool FormatExact(uint64_t value, uint64_t unit, std::string_view suffix, std::string& out) {
  if (value < unit) return false;
  uint64_t whole = value / unit, rest = value % unit;
  std::string frac;
  for (int i = 0; i < 3 && rest != 0; ++i) {
    unsigned __int128 r = static_cast<unsigned __int128>(rest) * 10;
    frac += static_cast<char>('0' + static_cast<int>(r / unit));
    rest = static_cast<uint64_t>(r % unit);
  }
  if (rest != 0) return false;
  out = std::to_string(whole);
  if (!frac.empty()) out += "." + frac;
  out += suffix;
  return true;
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  std::string t = Trimmed(text);
  std::string_view s = t;
  if (s.empty()) return InvalidArgument("empty duration; write e.g. 500ms, 30s, 1h30m");
  if (s.front() == '-') return InvalidArgument("duration '" + t + "' is negative");
  unsigned __int128 total = 0;
  while (!s.empty()) {
    Decimal d;
    if (!TakeDecimal(s, d)) {
      return InvalidArgument("'" + t + "' is not a duration; write e.g. 500ms, 30s, 1h30m");
    }
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    size_t n = 0;
    while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
    std::string_view unit = s.substr(0, n);
    s.remove_prefix(n);
    if (unit.empty()) {
      return InvalidArgument("duration '" + t + "' has no unit; add one of ns, us, ms, s, m, h, d (e.g. " +
                             t + "s)");
    }
    const Unit* found = nullptr;
    for (const auto& u : kDurationUnits) {
      if (u.name == unit) found = &u;
    }
    if (!found) {
      static constexpr std::pair<std::string_view, std::string_view> kSpelled[] = {
          {"sec", "s"}, {"secs", "s"}, {"second", "s"}, {"seconds", "s"}, {"min", "m"}, {"mins", "m"},
          {"minute", "m"}, {"minutes", "m"}, {"hr", "h"}, {"hrs", "h"}, {"hour", "h"}, {"hours", "h"},
          {"day", "d"}, {"days", "d"}, {"msec", "ms"}, {"millis", "ms"}};
      std::string hint = "use ns, us, ms, s, m, h or d";
      for (auto [word, short_unit] : kSpelled) {
        if (unit == word) hint = "write '" + std::string(short_unit) + "' for " + std::string(word);
      }
      return InvalidArgument("duration '" + t + "' has unknown unit '" + std::string(unit) + "'; " + hint);
    }
    uint64_t v;
    if (!Scale(d, found->factor, v)) {
      return InvalidArgument("duration '" + t + "' is out of range or finer than a nanosecond");
    }
    total += v;
    if (total > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument("duration '" + t + "' is too long");
    }
  }
  return Duration(static_cast<int64_t>(total));
}

std::string FormatDuration(Duration d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  std::string sign;
  uint64_t v = ns < 0 ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  if (ns < 0) sign = "-";
  constexpr uint64_t kSec = 1000ull * 1000 * 1000;
  if (v < kSec) {
    std::string out;
    if (FormatExact(v, 1000ull * 1000, "ms", out) || FormatExact(v, 1000, "us", out)) return sign + out;
    return sign + std::to_string(v) + "ns";
  }
  // Whole hours/minutes, then seconds with a fraction if needed.
  std::string out;
  uint64_t hours = v / (3600 * kSec);
  v %= 3600 * kSec;
  uint64_t minutes = v / (60 * kSec);
  v %= 60 * kSec;
  if (hours) out += std::to_string(hours) + "h";
  if (minutes) out += std::to_string(minutes) + "m";
  if (v) {
    std::string secs;
    if (!FormatExact(v, kSec, "s", secs)) {
      std::string ms;
      if (FormatExact(v, 1000ull * 1000, "ms", ms)) {
        secs = ms;
      } else {
        secs = std::to_string(v) + "ns";
      }
    }
    out += secs;
  }
  return sign + out;
}

Result<Size> ParseSize(std::string_view text) {
  std::string t = Trimmed(text);
  std::string_view s = t;
  Decimal d;
  if (!TakeDecimal(s, d)) return InvalidArgument("'" + t + "' is not a size; write e.g. 16MB, 1GiB, 4096");
  std::string unit = Trimmed(s);
  uint64_t factor = 0;
  if (unit.empty()) {
    factor = 1;
  } else {
    for (const auto& u : kSizeUnits) {
      if (u.name == unit) factor = u.factor;
    }
  }
  if (factor == 0) {
    std::string hint;
    if (unit == "K" || unit == "M" || unit == "G" || unit == "T" || unit == "k" || unit == "m" ||
        unit == "g") {
      hint = "; say MB (10^6) or MiB (2^20) explicitly";
    }
    return InvalidArgument("size '" + t + "' has unknown unit '" + unit +
                           "'; use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB" + hint);
  }
  uint64_t bytes;
  if (!Scale(d, factor, bytes)) return InvalidArgument("size '" + t + "' is out of range or not a whole byte count");
  return Size{bytes};
}

std::string FormatSize(Size s) {
  if (s.bytes == 0) return "0B";
  // Prefer the unit with the largest factor that is exact (binary or decimal).
  std::string best;
  uint64_t best_factor = 1;
  for (const auto& u : kSizeUnits) {
    if (u.factor <= best_factor || u.name == "KB") continue;
    std::string out;
    if (s.bytes % u.factor == 0 && FormatExact(s.bytes, u.factor, u.name, out)) {
      best = out;
      best_factor = u.factor;
    }
  }
  if (!best.empty()) return best;
  return std::to_string(s.bytes) + "B";
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

Result<Rate> ParseRate(std::string_view text) {
  std::string t = Trimmed(text);
  if (t.size() < 2 || t.substr(t.size() - 2) != "/s") {
    return InvalidArgument("'" + t + "' is not a rate; write a size per second, e.g. 200MB/s");
  }
  auto size = ParseSize(std::string_view(t).substr(0, t.size() - 2));
  if (!size.ok()) return InvalidArgument("rate '" + t + "': " + size.error().message());
  return Rate{size->bytes};
}

std::string FormatRate(Rate r) { return FormatSize(Size{r.bytes_per_second}) + "/s"; }

}  // namespace lifeboat
