// Feeds untrusted bytes to what the sample application and the drill client
// parse: an HTTP request to the application (the first byte picks the
// method, then the path up to a newline, then the body), answered in a
// scratch directory; and a GET /records body as the client reads it back.
// A stored record is only ever /records/N with N a plain decimal number, and
// nothing is written outside DIR/records. And a drill report (JSON), as
// `drill report --html` reads one back from a store: it renders, no markup
// of its own text.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "drill/app.h"
#include "drill/client.h"
#include "drill/report.h"
#include "core/json_read.h"

namespace {

const std::string& Dir() {
  static const std::string dir = [] {
    std::string d = std::filesystem::temp_directory_path() / ("lifeboat-fuzz-app-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

bool PlainNumber(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)lifeboat::drill::ParseRecordList(in);
  // A drill's report as `drill report --html` reads it back from a store:
  // its attempts expand and the page renders, with nothing of it as markup.
  auto report = nlohmann::ordered_json::parse(in, nullptr, false);
  if (report.is_object()) {
    auto attempts = lifeboat::drill::ExpandAttempts(lifeboat::json::Obj(report, "attempts"));
    std::string html = lifeboat::drill::RenderHtml(report, attempts);
    if (html.find("<script") != std::string::npos) std::abort();
  }
  if (in.empty()) return 0;
  static const char* kMethods[] = {"GET", "PUT", "POST", "DELETE"};
  lifeboat::net::HttpRequest r;
  r.method = kMethods[static_cast<uint8_t>(in[0]) % 4];
  in.remove_prefix(1);
  size_t nl = in.find('\n');
  r.path = std::string(in.substr(0, nl));
  r.target = r.path;
  r.body = nl == std::string_view::npos ? "" : std::string(in.substr(nl + 1));
  auto answer = lifeboat::drill::HandleAppRequest({Dir(), "fuzz"}, r);
  if (answer.status == 201) {
    if (r.path.rfind("/records/", 0) != 0 || !PlainNumber(std::string_view(r.path).substr(9))) std::abort();
    std::filesystem::remove(Dir() + "/records/" + r.path.substr(9));
  }
  // Nothing but the records directory may appear in the scratch directory.
  for (const auto& e : std::filesystem::directory_iterator(Dir())) {
    if (e.path().filename() != "records") std::abort();
  }
  return 0;
}
