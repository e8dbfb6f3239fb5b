#include "cli/common.h"

#include <yaml-cpp/yaml.h>

#include <iostream>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace lifeboat::cli {

int Fail(const Error& error) {
  return Fail(error.message(), ExitCode(error.code()));
}

int Fail(const std::string& message, int code) {
  std::cerr << "lifeboat: error: " << message << "\n";
  return code;
}

CLI::Option* AddOutputFlag(CLI::App& cmd, std::string& value, const std::vector<std::string>& allowed) {
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
  return cmd.add_option("-o,--output", value, "Output format: " + list)
      ->check(CLI::IsMember(allowed))
      ->capture_default_str();
}

CLI::Option* AddPlanFlag(CLI::App& cmd, std::string& file) {
  return cmd.add_option("--plan", file, "Plan file (default: $LIFEBOAT_PLAN)")->required()->envname("LIFEBOAT_PLAN");
}

namespace {

void EmitYaml(YAML::Emitter& out, const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key << k << YAML::Value;
        EmitYaml(out, v);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::ordered_json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& v : j) EmitYaml(out, v);
      out << YAML::EndSeq;
      break;
    case nlohmann::ordered_json::value_t::string:
      out << YAML::DoubleQuoted << j.get<std::string>();
      break;
    case nlohmann::ordered_json::value_t::boolean:
      out << j.get<bool>();
      break;
    case nlohmann::ordered_json::value_t::null:
      out << YAML::Null;
      break;
    default:  // numbers, as JSON writes them
      out << j.dump();
  }
}

}  // namespace

void PrintDocument(const nlohmann::ordered_json& doc, const std::string& output) {
  if (output == "yaml") {
    YAML::Emitter out;
    EmitYaml(out, doc);
    std::cout << out.c_str() << "\n";
  } else {
    std::cout << doc.dump(2) << "\n";
  }
}

Result<std::vector<Address>> ParseAddresses(const std::vector<std::string>& texts, const std::string& flag) {
  std::vector<Address> out;
  for (const auto& t : texts) {
    auto a = ParseAddress(t);
    if (!a.ok()) return InvalidArgument(flag + ": " + a.error().message());
    out.push_back(*a);
  }
  return out;
}

std::string Table::Render() const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string AdminToken(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("LIFEBOAT_TOKEN");
  return env ? env : "";
}

std::string ShortDuration(double seconds) {
  if (seconds < 0) return "-";
  auto s = static_cast<long long>(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%llds", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%lldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%lldh", s / 86400, (s % 86400) / 3600);
  }
  return buf;
}

Result<const plan::Database*> FindDatabase(const plan::Plan& plan, const std::string& name) {
  if (const plan::Database* d = plan.FindDatabase(name)) return d;
  std::string names;
  for (const auto& d : plan.databases) names += (names.empty() ? "" : ", ") + d.name;
  return NotFound("the plan has no database '" + name + "'" +
                  (names.empty() ? " (it has no databases section)" : " (it has: " + names + ")"));
}

}  // namespace lifeboat::cli
