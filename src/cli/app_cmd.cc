// lifeboat app serve: the sample application that drills and the demo run
// on each region's endpoint (drill/app.h).
#include <signal.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "drill/app.h"

namespace lifeboat::cli {

void AddAppCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("app", "The sample application that drills and the demo run in each region");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand("serve", "Serve records kept as files in a volume over HTTP until stopped");
  struct Options {
    std::string dir, listen, region;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--dir", o->dir, "The region's copy of the volume; records go to DIR/records/")->required();
  cmd->add_option("--listen", o->listen, "HOST:PORT to serve on (the region's endpoint)")->required();
  cmd->add_option("--region", o->region, "Region named in every answer (X-Lifeboat-Region)");
  cmd->footer(
      "PUT /records/N keeps a record durably before answering 201; GET /records lists them;\n"
      "GET /healthz answers ok. SIGINT or SIGTERM stops it.\n\n"
      "Examples:\n"
      "  lifeboat app serve --dir /srv/shop-east --listen 127.0.0.1:7711 --region us-east\n"
      "  curl -X PUT --data hello http://127.0.0.1:7711/records/1");
  cmd->callback([&exit_code, o] {
    auto listen = ParseAddress(o->listen);
    if (!listen.ok()) {
      exit_code = Fail(listen.error().Wrap("--listen"));
      return;
    }
    // Signals wait for sigwait below, not the server's threads.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    auto served = drill::App::Start({o->dir, o->region}, *listen);
    if (!served.ok()) {
      exit_code = Fail(served.error());
      return;
    }
    spdlog::info("app: serving records of {} on {}", o->dir, o->listen);
    int sig = 0;
    sigwait(&stop, &sig);
    spdlog::info("app: stopping on {}", strsignal(sig));
    (*served)->Stop();
  });
}

}  // namespace lifeboat::cli
