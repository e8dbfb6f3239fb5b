#include "metrics/process.h"

#include <sys/resource.h>
#include <unistd.h>

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace lifeboat::metrics {
namespace {

using Samples = std::vector<std::pair<Labels, double>>;

// Fields of /proc/self/stat after the command name (field 3 is index 0).
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> out;
  auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return out;
  std::istringstream rest(line.substr(close + 2));
  for (std::string f; rest >> f;) out.push_back(f);
  return out;
}

double Field(const std::vector<std::string>& f, size_t stat_field) {
  size_t i = stat_field - 3;
  return i < f.size() ? std::strtod(f[i].c_str(), nullptr) : 0;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

Samples One(double v) { return {{{}, v}}; }

}  // namespace

void AddProcessMetrics(Registry& r) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  r.AddCounterCallback("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", {},
                       [ticks] {
                         auto f = StatFields();
                         return One((Field(f, 14) + Field(f, 15)) / ticks);  // utime + stime
                       });
  r.AddGaugeCallback("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                     [page] { return One(Field(StatFields(), 24) * page); });
  r.AddGaugeCallback("process_virtual_memory_bytes", "Virtual memory size in bytes.", {},
                     [] { return One(Field(StatFields(), 23)); });
  r.AddGaugeCallback("process_threads", "Threads of the process.", {}, [] { return One(Field(StatFields(), 20)); });
  const double start = BootTimeSeconds() + Field(StatFields(), 22) / ticks;
  r.AddGaugeCallback("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", {},
                     [start] { return One(start); });
  r.AddGaugeCallback("process_open_fds", "Number of open file descriptors.", {}, [] {
    double n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
      ::closedir(d);
      n -= 1;  // the directory stream's own descriptor
    }
    return One(n);
  });
  r.AddGaugeCallback("process_max_fds", "Maximum number of open file descriptors.", {}, [] {
    struct rlimit l {};
    ::getrlimit(RLIMIT_NOFILE, &l);
    return One(l.rlim_cur == RLIM_INFINITY ? -1.0 : static_cast<double>(l.rlim_cur));
  });
}

}  // namespace lifeboat::metrics
