// Wall-clock time behind an interface, so tests can move time by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lifeboat {

class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // The process-wide real clock.
  static Clock& Real();
};

// A clock that moves only when told. Safe to use from several threads.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::seconds(1'800'000'000))) : now_(start.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint(TimePoint::duration(now_.load())); }
  void Advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<TimePoint::duration>(d).count();
  }

 private:
  std::atomic<TimePoint::rep> now_;
};

// "2026-11-22T03:00:00.123Z".
std::string FormatUtc(Clock::TimePoint t);

// The reverse of FormatUtc, also without the fraction or with up to nine
// digits of it ("2026-11-22T03:00:00Z"); nullopt for anything else,
// including a time zone other than Z and a year outside 1970-2200 (so that
// sums and differences of two never overflow int64 nanoseconds).
std::optional<Clock::TimePoint> ParseUtc(std::string_view text);

// The real clock's time as nanoseconds since the Unix epoch.
int64_t NowUnixNs();

// This machine's host name ("unknown" if it has none).
std::string Hostname();

}  // namespace lifeboat
