// Process-wide logging on spdlog: human-readable lines on a terminal, JSON
// lines (one object per line: ts, level, msg, then the fields) otherwise or
// when asked. Modules log through spdlog's default logger; the layer that
// decides logs an error once, with context. Level names are the same in
// --log-level and in the output: trace, debug, info, warn, error, critical.
//
// What a log system filters on (volume, region, target, endpoint, error)
// goes in fields, beside the message:
//   LogWarn({{"endpoint", name}, {"error", why}}, "endpoint {} is unhealthy: {}", name, why);
// JSON: {"ts":...,"level":"warn","msg":"endpoint web is unhealthy: ...","endpoint":"web","error":"..."}
// text: 2026-12-02 08:00:00.000 warn  endpoint web is unhealthy: ... endpoint=web error="..."
#pragma once

#include <spdlog/spdlog.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.h"

namespace lifeboat {

enum class LogFormat { kAuto, kText, kJson };

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, off
  LogFormat format = LogFormat::kAuto;
};

Result<LogFormat> ParseLogFormat(std::string_view s);
// Installs the default logger on stderr. InvalidArgument for an unknown level.
Status InitLogging(const LogOptions& options);

using LogFields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// The message with its fields appended after a unit separator (0x1f), each
// as key 0x1e value; the formatters split them off again.
std::string WithFields(std::string message, LogFields fields);

template <class... Args>
void Log(spdlog::level::level_enum level, LogFields fields, fmt::format_string<Args...> format, Args&&... args) {
  if (!spdlog::should_log(level)) return;
  spdlog::log(level, "{}", WithFields(fmt::format(format, std::forward<Args>(args)...), fields));
}
template <class... Args>
void LogInfo(LogFields fields, fmt::format_string<Args...> format, Args&&... args) {
  Log(spdlog::level::info, fields, format, std::forward<Args>(args)...);
}
template <class... Args>
void LogWarn(LogFields fields, fmt::format_string<Args...> format, Args&&... args) {
  Log(spdlog::level::warn, fields, format, std::forward<Args>(args)...);
}
template <class... Args>
void LogError(LogFields fields, fmt::format_string<Args...> format, Args&&... args) {
  Log(spdlog::level::err, fields, format, std::forward<Args>(args)...);
}

}  // namespace lifeboat
