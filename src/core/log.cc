#include "core/log.h"

#include "core/clock.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <vector>

namespace lifeboat {
namespace {

void AppendJsonString(spdlog::memory_buf_t& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      case '\n': out.append(std::string_view("\\n")); break;
      case '\r': out.append(std::string_view("\\r")); break;
      case '\t': out.append(std::string_view("\\t")); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out.append(std::string_view(buf));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

constexpr char kFieldsStart = '\x1f', kValueStart = '\x1e';

// The level's name as --log-level spells it (spdlog prints "warning").
std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// Splits a payload into its message and its fields (WithFields).
struct Split {
  std::string_view message;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
};
Split SplitPayload(std::string_view payload) {
  Split out;
  size_t at = payload.find(kFieldsStart);
  out.message = payload.substr(0, at);
  while (at != std::string_view::npos) {
    size_t key = at + 1;
    size_t value = payload.find(kValueStart, key);
    if (value == std::string_view::npos) break;
    at = payload.find(kFieldsStart, value + 1);
    out.fields.emplace_back(payload.substr(key, value - key), payload.substr(value + 1, at == std::string_view::npos ? std::string_view::npos : at - value - 1));
  }
  return out;
}

// {"ts":"2026-11-22T03:00:00.123Z","level":"info","msg":"...","volume":"data"}
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string ts = FormatUtc(msg.time);
    dest.append(std::string_view("{\"ts\":\""));
    dest.append(std::string_view(ts));
    dest.append(std::string_view("\",\"level\":"));
    AppendJsonString(dest, LevelName(msg.level));
    if (msg.logger_name.size() > 0) {
      dest.append(std::string_view(",\"logger\":"));
      AppendJsonString(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    }
    Split split = SplitPayload(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(std::string_view(",\"msg\":"));
    AppendJsonString(dest, split.message);
    for (const auto& [key, value] : split.fields) {
      if (key == "ts" || key == "level" || key == "msg" || key == "logger") continue;
      dest.push_back(',');
      AppendJsonString(dest, key);
      dest.push_back(':');
      AppendJsonString(dest, value);
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// 2026-11-22 03:00:00.123 warn  message key=value key="a value"
class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto t = spdlog::log_clock::to_time_t(msg.time);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    char head[64];
    std::string_view level = LevelName(msg.level);
    int n = std::snprintf(head, sizeof head, "%04d-%02d-%02d %02d:%02d:%02d.%03d %-5.*s ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms),
                          static_cast<int>(level.size()), level.data());
    size_t line_start = dest.size();
    dest.append(std::string_view(head, static_cast<size_t>(std::max(n, 0))));
    msg.color_range_start = line_start + 24;  // the level name, colored on a terminal
    msg.color_range_end = msg.color_range_start + level.size();
    Split split = SplitPayload(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(split.message);
    for (const auto& [key, value] : split.fields) {
      dest.push_back(' ');
      dest.append(key);
      dest.push_back('=');
      bool quote = value.empty() || value.find_first_of(" \"=") != std::string_view::npos;
      if (quote) {
        AppendJsonString(dest, value);
      } else {
        dest.append(value);
      }
    }
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(); }
};

}  // namespace

std::string WithFields(std::string message, LogFields fields) {
  for (const auto& [key, value] : fields) {
    message += kFieldsStart;
    message += key;
    message += kValueStart;
    message += value;
  }
  return message;
}

Result<LogFormat> ParseLogFormat(std::string_view s) {
  if (s == "auto") return LogFormat::kAuto;
  if (s == "text") return LogFormat::kText;
  if (s == "json") return LogFormat::kJson;
  return InvalidArgument("unknown log format '" + std::string(s) + "'; use auto, text or json");
}

Status InitLogging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return InvalidArgument("unknown log level '" + options.level + "'; use trace, debug, info, warn, error or off");
  }
  bool json = options.format == LogFormat::kJson ||
              (options.format == LogFormat::kAuto && !isatty(STDERR_FILENO));
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(json ? spdlog::color_mode::never
                                                                          : spdlog::color_mode::automatic);
  auto logger = std::make_shared<spdlog::logger>("", sink);
  if (json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<TextFormatter>());
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Ok();
}

}  // namespace lifeboat
