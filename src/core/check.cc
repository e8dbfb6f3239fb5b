#include "core/check.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>

namespace lifeboat {
namespace {
std::atomic<uint64_t> bugs{0};
}  // namespace

void CheckFailed(const char* file, int line, const char* condition, std::string_view message) {
  spdlog::critical("BUG or broken machine at {}:{}: {} ({} is false); aborting. Please report this.", file, line,
                   message, condition);
  spdlog::default_logger()->flush();
  std::abort();
}

void ReportBug(const char* file, int line, std::string_view message) {
  bugs.fetch_add(1, std::memory_order_relaxed);
  spdlog::error("BUG at {}:{}: {}; going on. Please report this.", file, line, message);
}

uint64_t BugsReported() { return bugs.load(std::memory_order_relaxed); }

}  // namespace lifeboat
