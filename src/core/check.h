// For conditions that cannot happen unless lifeboat has a bug or the
// machine is broken beyond use (the system's random generator fails): no
// exception that a worker thread would not catch, but one log line naming
// the place, then abort.
//
//   LB_CHECK(RAND_bytes(p, n) == 1, "RAND_bytes failed");
//
// ReportBug is for the cannot-happen paths that can safely go on: it logs
// once per call and counts them (lifeboat_bugs_total in /metrics).
#pragma once

#include <cstdint>
#include <string_view>

namespace lifeboat {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition, std::string_view message);
void ReportBug(const char* file, int line, std::string_view message);
uint64_t BugsReported();

}  // namespace lifeboat

#define LB_CHECK(cond, message)                                                \
  do {                                                                         \
    if (!(cond)) ::lifeboat::CheckFailed(__FILE__, __LINE__, #cond, (message)); \
  } while (0)

#define LB_REPORT_BUG(message) ::lifeboat::ReportBug(__FILE__, __LINE__, (message))
