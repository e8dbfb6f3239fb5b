// lifeboat plan validate | show
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "plan/load.h"
#include "plan/render.h"

namespace lifeboat::cli {
namespace {

std::string Count(size_t n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

std::string Summary(const plan::Plan& p) {
  size_t records = p.dns ? p.dns->records.size() : 0;
  return std::string(plan::Name(p.pattern)) + ", " + Count(p.regions.size(), "region") + ", " +
         Count(p.checks.size(), "check") + ", " + Count(p.endpoints.size(), "endpoint") + ", " +
         Count(records, "DNS record") + ", " +
         (p.proxy ? Count(p.proxy->listeners.size(), "proxy listener") + ", " : std::string()) +
         Count(p.volumes.size(), "volume") + ", " +
         Count(p.databases.size(), "database") + ", " + Count(p.backup.locations.size(), "backup location");
}

nlohmann::ordered_json DiagnosticsJson(const std::vector<plan::Diagnostic>& diags) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& d : diags) {
    out.push_back({{"file", d.file},
                   {"line", d.line},
                   {"column", d.column},
                   {"severity", d.severity == plan::Severity::kError ? "error" : "warning"},
                   {"message", d.message},
                   {"hint", d.hint}});
  }
  return out;
}

}  // namespace

void AddPlanCommands(CLI::App& app, int& exit_code) {
  auto* plan = app.add_subcommand("plan", "Check and show plan files");
  plan->require_subcommand(1);

  auto* validate = plan->add_subcommand("validate", "Check plans and report every error with its position");
  struct ValidateOptions {
    std::vector<std::string> files;
    std::string output = "text";
  };
  auto vo = std::make_shared<ValidateOptions>();
  validate->add_option("PLAN", vo->files, "Plan files")->required();
  AddOutputFlag(*validate, vo->output, {"text", "json"});
  validate->footer(
      "Every problem is reported at once as FILE:LINE:COLUMN: error: MESSAGE, with a hint.\n"
      "Exit code: 0 when every plan is valid (warnings allowed), 2 otherwise.\n\n"
      "Examples:\n"
      "  lifeboat plan validate examples/shop.yaml\n"
      "  lifeboat plan validate plans/*.yaml -o json");
  validate->callback([&exit_code, vo] {
    const auto& files = vo->files;
    const auto& validate_output = vo->output;
    bool all_ok = true;
    auto json = nlohmann::ordered_json::array();
    for (const auto& f : files) {
      plan::LoadResult r = plan::LoadPlanFile(f);
      bool ok = r.plan.has_value();
      all_ok = all_ok && ok;
      if (validate_output == "json") {
        json.push_back({{"file", f}, {"valid", ok}, {"diagnostics", DiagnosticsJson(r.diagnostics)}});
        continue;
      }
      std::cerr << plan::FormatDiagnostics(r.diagnostics);
      if (ok) {
        std::cout << f << ": ok (" << Summary(*r.plan) << ")\n";
      } else {
        size_t errors = 0;
        for (const auto& d : r.diagnostics) errors += d.severity == plan::Severity::kError;
        std::cout << f << ": invalid (" << errors << (errors == 1 ? " error" : " errors") << ")\n";
      }
    }
    if (validate_output == "json") std::cout << json.dump(2) << "\n";
    exit_code = all_ok ? kExitOk : kExitInvalid;
  });

  auto* show = plan->add_subcommand("show", "Print the plan with every default filled in");
  struct ShowOptions {
    std::string file;
    std::string output = "yaml";
  };
  auto so = std::make_shared<ShowOptions>();
  show->add_option("PLAN", so->file, "Plan file")->required();
  AddOutputFlag(*show, so->output, {"yaml", "json"});
  show->footer(
      "Examples:\n"
      "  lifeboat plan show examples/shop.yaml\n"
      "  lifeboat plan show examples/shop.yaml -o json | jq .failover");
  show->callback([&exit_code, so] {
    plan::LoadResult r = plan::LoadPlanFile(so->file);
    std::cerr << plan::FormatDiagnostics(r.diagnostics);
    if (!r.plan) {
      exit_code = kExitInvalid;
      return;
    }
    if (so->output == "json") {
      std::cout << plan::ToJson(*r.plan).dump(2) << "\n";
    } else {
      std::cout << plan::ToYaml(*r.plan);
    }
  });
}

}  // namespace lifeboat::cli
