// Process-wide logging on spdlog: human-readable lines on a terminal, JSON
// lines (one object per line: ts, level, msg, plus logger) otherwise or when
// asked. Modules log through spdlog's default logger; the layer that decides
// logs an error once, with context.
#pragma once

#include <string>
#include <string_view>

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

}  // namespace lifeboat
