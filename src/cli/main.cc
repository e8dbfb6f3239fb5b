// The lifeboat command: global flags, then one subcommand per capability.
#include "cli/main.h"

#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/common.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/version.h"

namespace lifeboat::cli {

int Main(int argc, char** argv) {
  CLI::App app{"lifeboat keeps an application serving, with its data, when a whole region goes dark.", "lifeboat"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string log_level = "info", log_format = "auto";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  app.add_option("--log-format", log_format, "auto (text on a terminal, JSON lines otherwise), text or json")
      ->check(CLI::IsMember({"auto", "text", "json"}))
      ->capture_default_str();
  app.set_version_flag("--version", std::string("lifeboat ") + kVersion + " (" + kCommit + ")");

  int exit_code = kExitOk;
  AddPlanCommands(app, exit_code);
  AddAgentCommand(app, exit_code);
  AddStatusCommand(app, exit_code);
  AddDemoCommand(app, exit_code);
  AddDnsCommands(app, exit_code);
  AddTrafficCommands(app, exit_code);
  AddFailoverCommand(app, exit_code);
  AddReplicateCommands(app, exit_code);
  AddBackupCommands(app, exit_code);
  AddAppCommands(app, exit_code);
  AddDrillCommands(app, exit_code);
  AddProxyCommands(app, exit_code);
  AddDbCommands(app, exit_code);
  auto* version = app.add_subcommand("version", "Print the version and the commit it was built from");
  version->callback([] { std::cout << "lifeboat " << kVersion << " (" << kCommit << ")\n"; });
  // A command group's --help shows its own commands' examples (subcommands
  // took the top level's footer when it was set first).
  for (auto* group : app.get_subcommands([](const CLI::App*) { return true; })) {
    std::string examples;
    for (const auto* sub : group->get_subcommands([](const CLI::App*) { return true; })) {
      std::string text = sub->get_footer();
      size_t at = text.find("Example");  // "Example:" or "Examples:", then indented lines
      while (at != std::string::npos && (at = text.find('\n', at)) != std::string::npos) {
        size_t end = text.find('\n', ++at);
        std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
        if (line.starts_with("  ") && line.find("lifeboat ") != std::string::npos) examples += line + "\n";
        at = end;
      }
    }
    if (!examples.empty() && group->get_footer().empty()) {
      group->footer("Examples:\n" + examples + "\nRun 'lifeboat " + group->get_name() + " COMMAND --help' for each command's flags.");
    }
  }
  app.footer(
      "Examples:\n"
      "  lifeboat demo                                   # two regions and a witness on this machine\n"
      "  lifeboat plan validate examples/shop.yaml\n"
      "  lifeboat agent --plan shop.yaml --region us-east\n"
      "  lifeboat status --plan shop.yaml -o json\n"
      "  lifeboat dns serve --plan shop.yaml --listen 127.0.0.1:5353\n"
      "  lifeboat traffic off us-east --plan shop.yaml\n"
      "  lifeboat replicate status uploads --plan shop.yaml --wait\n"
      "  lifeboat backup create --plan shop.yaml --location local --volume uploads\n"
      "  lifeboat restore 1a2b3c4d --to /srv/restore --plan shop.yaml --location local\n"
      "\n"
      "Run 'lifeboat COMMAND --help' for a command's flags and examples.");

  // Logging is set up before any command runs (parse_complete_callback runs
  // after parsing, before the subcommand callbacks).
  app.parse_complete_callback([&] {
    LogOptions lo;
    lo.level = log_level;
    lo.format = *ParseLogFormat(log_format);
    if (auto s = InitLogging(lo); !s.ok()) throw CLI::ValidationError("--log-level", s.error().message());
  });

  if (argc == 1) {
    std::cerr << app.help();
    return kExitInvalid;
  }
  // An unknown command got CLI11's "A subcommand is required": name it, and
  // suggest the nearest.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--log-level" || arg == "--log-format") {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    std::vector<std::string_view> names;
    std::vector<std::string> owned;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) owned.push_back(sub->get_name());
    for (const auto& n : owned) names.push_back(n);
    if (std::find(names.begin(), names.end(), arg) != names.end()) break;
    std::string near = ClosestMatch(arg, names);
    std::cerr << "lifeboat: unknown command '" << arg << "'"
              << (near.empty() ? "" : "; did you mean '" + near + "'?") << "\nRun 'lifeboat --help' for the commands.\n";
    return kExitInvalid;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitInvalid;
  }
  return exit_code;
}

}  // namespace lifeboat::cli
