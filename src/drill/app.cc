#include "drill/app.h"

#include <boost/asio/post.hpp>
#include <charconv>
#include <filesystem>
#include <optional>
#include <string_view>

#include "core/fs.h"

namespace lifeboat::drill {
namespace {

constexpr size_t kMaxRecordBytes = 4096;

// "42" (decimal, no sign, no leading zero, fits in 64 bits) or nullopt.
std::optional<uint64_t> RecordNumber(std::string_view text) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

// Records as files DIR/records/N, each written whole, fsynced and renamed.
class FileRecords final : public Records {
 public:
  explicit FileRecords(const std::string& dir) : dir_(dir), records_(dir + "/records") {}
  Status Put(uint64_t n, const std::string& body) override {
    std::string file = records_ + "/" + std::to_string(n);
    auto s = WriteFileAtomic(file, body);
    if (!s.ok() && s.error().code() == Code::kNotFound) {  // the first record: make the directory
      std::error_code ec;
      std::filesystem::create_directories(records_, ec);
      s = WriteFileAtomic(file, body);
    }
    return s;
  }
  Result<std::string> Get(uint64_t n) override { return ReadFile(records_ + "/" + std::to_string(n), kMaxRecordBytes); }
  Result<std::set<uint64_t>> List() override { return ListRecords(dir_); }

 private:
  std::string dir_;
  std::string records_;
};

net::HttpResponse Answer(const AppOptions& o, net::HttpResponse r) {
  if (!o.region.empty()) r.headers.emplace_back("X-Lifeboat-Region", o.region);
  return r;
}

}  // namespace

Result<std::set<uint64_t>> ListRecords(const std::string& dir) {
  std::set<uint64_t> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir + "/records", ec), end;
  if (ec == std::errc::no_such_file_or_directory) return out;
  if (ec) return Error(Code::kUnavailable, "cannot list " + dir + "/records: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Error(Code::kUnavailable, "cannot list " + dir + "/records: " + ec.message());
    if (auto n = RecordNumber(it->path().filename().string()); n && it->is_regular_file(ec)) out.insert(*n);
  }
  return out;
}

net::HttpResponse HandleAppRequest(const AppOptions& o, const net::HttpRequest& req) {
  using net::HttpResponse;
  if (req.path == "/healthz") return Answer(o, HttpResponse::Text(200, "ok\n"));
  FileRecords files(o.dir);
  Records& records = o.records ? *o.records : files;
  if (req.path == "/records") {
    if (req.method != "GET") return Answer(o, HttpResponse::Text(405, "GET /records lists the records\n"));
    auto list = records.List();
    if (!list.ok()) return Answer(o, HttpResponse::Text(503, list.error().message() + "\n"));
    std::string body;
    for (uint64_t n : *list) body += std::to_string(n) + "\n";
    return Answer(o, HttpResponse::Text(200, body));
  }
  constexpr std::string_view kPrefix = "/records/";
  if (req.path.rfind(kPrefix, 0) != 0) return Answer(o, HttpResponse::Text(404, "no such path\n"));
  auto n = RecordNumber(std::string_view(req.path).substr(kPrefix.size()));
  if (!n) return Answer(o, HttpResponse::Text(400, "a record is named by a decimal number: /records/42\n"));
  if (req.method == "GET") {
    auto body = records.Get(*n);
    if (!body.ok()) {
      return Answer(o, HttpResponse::Text(body.error().code() == Code::kNotFound ? 404 : 503,
                                          body.error().message() + "\n"));
    }
    return Answer(o, HttpResponse::Text(200, *body));
  }
  if (req.method != "PUT") return Answer(o, HttpResponse::Text(405, "PUT or GET /records/N\n"));
  if (req.body.size() > kMaxRecordBytes) {
    return Answer(o, HttpResponse::Text(413, "a record holds 4096 bytes at most\n"));
  }
  if (auto s = records.Put(*n, req.body); !s.ok()) {
    return Answer(o, HttpResponse::Text(503, s.error().message() + "\n"));
  }
  return Answer(o, HttpResponse::Text(201, "stored " + std::to_string(*n) + "\n"));
}

Result<std::unique_ptr<App>> App::Start(const AppOptions& options, const Address& listen) {
  std::unique_ptr<App> app(new App());
  app->options_ = options;
  net::HttpServerOptions so;
  so.max_body_bytes = kMaxRecordBytes + 1;
  App* self = app.get();
  app->server_ = std::make_unique<net::HttpServer>(
      app->io_, [self](const net::HttpRequest& r) { return HandleAppRequest(self->options_, r); }, so);
  if (auto s = app->server_->Listen(listen); !s.ok()) return s.error();
  app->thread_ = std::thread([self] {
    auto guard = boost::asio::make_work_guard(self->io_);
    self->io_.run();
  });
  return app;
}

void App::Stop() {
  if (!thread_.joinable()) return;
  server_->Stop();  // posts the closes; the stop below runs after them
  boost::asio::post(io_, [this] { io_.stop(); });
  thread_.join();
}

App::~App() { Stop(); }

}  // namespace lifeboat::drill
