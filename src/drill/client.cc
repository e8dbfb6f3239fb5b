#include "drill/client.h"

#include <charconv>

#include "net/http.h"

namespace lifeboat::drill {

Client::Client(ClientOptions options, Resolver resolver, Clock& clock)
    : options_(std::move(options)), resolver_(std::move(resolver)), clock_(clock) {}

Client::~Client() { Stop(); }

void Client::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Client::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<Attempt> Client::Attempts() const {
  std::lock_guard lock(mu_);
  return attempts_;
}

std::optional<Attempt> Client::LastAttempt() const {
  std::lock_guard lock(mu_);
  if (attempts_.empty()) return std::nullopt;
  return attempts_.back();
}

uint64_t FirstRecordNumber(Clock& clock) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock.Now().time_since_epoch()).count());
}

void Client::Run() {
  uint64_t seq = options_.first;
  while (!stop_) {
    Attempt a = WriteOne(seq++);
    ++attempted_;
    if (a.acked) ++acked_;
    {
      std::lock_guard lock(mu_);
      attempts_.push_back(std::move(a));
    }
    std::this_thread::sleep_for(options_.interval);
  }
}

Attempt Client::WriteOne(uint64_t seq) {
  Attempt a;
  a.seq = seq;
  a.start = clock_.Now();
  auto done = [&](std::string error) {
    a.end = clock_.Now();
    a.error = std::move(error);
    return a;
  };
  auto resolved = resolver_.Resolve(options_.name);
  if (!resolved.ok()) return done("resolve " + options_.name + ": " + resolved.error().message());
  const std::string& ip = resolved->addresses.front();
  auto app = options_.endpoint_of(ip);
  if (!app) return done(options_.name + " resolved to " + ip + ", which is no endpoint of the plan");
  a.target = app->ToString();
  auto r = net::Fetch("PUT", net::BaseUrl(*app) + "/records/" + std::to_string(seq), options_.timeout,
                      "record " + std::to_string(seq) + " at " + FormatUtc(a.start));
  if (!r.ok()) return done(r.error().message());
  if (r->status != 201) return done("HTTP " + std::to_string(r->status) + ": " + r->body);
  a.acked = true;
  return done("");
}

Result<std::set<uint64_t>> ReadBack(const Address& app, Duration timeout) {
  auto r = net::Fetch("GET", net::BaseUrl(app) + "/records", timeout);
  if (!r.ok()) return r.error().Wrap("read the records back from " + app.ToString());
  if (r->status != 200) {
    return Error(Code::kUnavailable, "read the records back from " + app.ToString() + ": HTTP " +
                                         std::to_string(r->status) + ": " + r->body);
  }
  auto list = ParseRecordList(r->body);
  if (!list.ok()) return Error(Code::kUnavailable, "read the records back from " + app.ToString() + ": " + list.error().message());
  return list;
}

Result<std::set<uint64_t>> ParseRecordList(std::string_view body) {
  std::set<uint64_t> out;
  while (!body.empty()) {
    size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), n);
    if (line.empty() || ec != std::errc() || end != line.data() + line.size()) {
      std::string shown;
      for (char c : line.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
      return Error(Code::kInvalidArgument, "not a record number: '" + shown + "'");
    }
    out.insert(n);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
  }
  return out;
}

}  // namespace lifeboat::drill
