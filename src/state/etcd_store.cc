#include "state/etcd_store.h"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/base64.h"
#include "core/json_read.h"

namespace lifeboat::state {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string B64(std::string_view in) { return Base64Encode(in); }

Result<std::string> Unb64(std::string_view in) {
  auto out = Base64Decode(in);
  if (!out) return DataLoss("etcd: bad base64 (length " + std::to_string(in.size()) + ")");
  return std::move(*out);
}

// The gateway writes int64 as strings; json::I64 reads both. Members are
// read without trusting their types (core/json_read.h).
using json::Arr;
using json::Bool;
using json::I64;
using json::Obj;
using json::Str;

// The end of the range of keys starting with `prefix` (etcd's range_end).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(prefix.back());
    if (c < 0xff) {
      ++c;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// The gRPC status code etcd answers with, as ours.
Error FromGrpc(int code, const std::string& message) {
  std::string m = "etcd: " + message;
  switch (code) {
    case 1: return Unavailable(m + " (the member was shutting down; the call may or may not have happened)");
    case 3: return InvalidArgument(m);
    case 4: return DeadlineExceeded(m);
    case 5: return NotFound(m);
    case 7: return PermissionDenied(m);
    case 9: return FailedPrecondition(m);
    case 11: return FailedPrecondition(m);  // out of range: a compacted revision
    case 14: return Unavailable(m);
    case 16: return Unauthenticated(m);
    case 8: return ResourceExhausted(m);
    default: return Internal(m);
  }
}

Result<KeyValue> ParseKv(const Json& j, std::string_view prefix) {
  KeyValue kv;
  LB_ASSIGN_OR_RETURN(std::string key, Unb64(Str(j, "key")));
  if (key.compare(0, prefix.size(), prefix) != 0) return DataLoss("etcd: a key outside the store's prefix");
  kv.key = key.substr(prefix.size());
  LB_ASSIGN_OR_RETURN(kv.value, Unb64(Str(j, "value")));
  kv.create_revision = I64(j, "create_revision");
  kv.mod_revision = I64(j, "mod_revision");
  kv.version = I64(j, "version");
  kv.lease = I64(j, "lease");
  return kv;
}

Result<Json> ParseJson(std::string_view body) {
  auto j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("etcd: an answer that is not a JSON object");
  return j;
}

Json CompareJson(const std::string& key, Expect e) {
  Json c = {{"key", B64(key)}, {"result", "EQUAL"}};
  if (e.kind == Expect::Kind::kAbsent) {
    c["target"] = "CREATE";
    c["create_revision"] = "0";
  } else {
    c["target"] = "MOD";
    c["mod_revision"] = std::to_string(e.mod_revision);
  }
  return c;
}

void SetTls(CURL* curl, const EtcdOptions& o) {
  if (!o.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, o.ca_file.c_str());
  if (!o.cert_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, o.cert_file.c_str());
  if (!o.key_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, o.key_file.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 5L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 2L);
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

// One kept-alive connection for unary calls.
class EtcdStore::Conn {
 public:
  Conn() : curl_(curl_easy_init()) {}
  ~Conn() { curl_easy_cleanup(curl_); }
  CURL* get() { return curl_; }

 private:
  CURL* curl_;
};

// One watch: a thread holding a streaming POST /v3/watch, reconnecting (to
// the next endpoint) from the revision after the last event it delivered.
class EtcdStore::Watcher final : public WatchHandle {
 public:
  Watcher(EtcdStore& store, std::string prefix, int64_t next, std::function<void(const Event&)> fn)
      : store_(store), prefix_(std::move(prefix)), next_(next), fn_(std::move(fn)), multi_(curl_multi_init()) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() override {
    stop_ = true;
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
  }

 private:
  void Run() {
    auto backoff = std::chrono::milliseconds(100);
    size_t endpoint = 0;
    {
      std::lock_guard l(store_.mu_);
      endpoint = store_.preferred_;
    }
    while (!stop_ && !done_) {
      bool got_any = Stream(store_.options_.endpoints[endpoint % store_.options_.endpoints.size()]);
      if (stop_ || done_) break;
      if (got_any) backoff = std::chrono::milliseconds(100);
      ++endpoint;  // the stream ended: this member may be gone
      auto until = Clock::now() + backoff;
      while (!stop_ && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  // One stream; true when it delivered anything (or was created).
  bool Stream(const std::string& endpoint) {
    GlobalInit();
    CURL* curl = curl_easy_init();
    std::string full = store_.options_.prefix + prefix_;
    Json req = {{"create_request",
                 {{"key", B64(full)}, {"range_end", B64(PrefixEnd(full))}, {"start_revision", std::to_string(next_)}}}};
    std::string body = req.dump();
    std::string url = endpoint + "/v3/watch";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(store_.options_.timeout).count()));
    SetTls(curl, store_.options_);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Watcher::OnData);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
    buffer_.clear();
    progressed_ = false;
    curl_multi_add_handle(multi_, curl);
    int running = 1;
    while (running > 0 && !stop_ && !done_) {
      if (curl_multi_perform(multi_, &running) != CURLM_OK) break;
      if (running > 0) curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    curl_multi_remove_handle(multi_, curl);
    curl_easy_cleanup(curl);
    return progressed_;
  }

  static size_t OnData(char* data, size_t size, size_t n, void* self) {
    auto* w = static_cast<Watcher*>(self);
    w->buffer_.append(data, size * n);
    for (size_t nl; (nl = w->buffer_.find('\n')) != std::string::npos;) {
      std::string line = w->buffer_.substr(0, nl);
      w->buffer_.erase(0, nl + 1);
      if (!w->Handle(line)) return 0;  // aborts the transfer
    }
    if (w->buffer_.size() > (64u << 20)) return 0;  // no line that long is an answer
    return size * n;
  }

  // False to end this stream.
  bool Handle(std::string_view line) {
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) return true;
    auto msg = ParseWatchLine(line, store_.options_.prefix);
    if (!msg.ok()) return false;  // an error line or garbage: reconnect
    progressed_ = true;
    if (msg->canceled) {
      if (msg->compact_revision > 0) {
        Event e;
        e.type = Event::Type::kCompacted;
        e.kv.mod_revision = msg->compact_revision;
        if (!stop_) fn_(e);
        done_ = true;
      }
      return false;
    }
    for (const auto& e : msg->events) {
      if (e.kv.mod_revision < next_) continue;  // already delivered before a reconnect
      if (stop_) return false;
      fn_(e);
      next_ = e.kv.mod_revision + 1;
    }
    return true;
  }

  EtcdStore& store_;
  std::string prefix_;
  int64_t next_;  // the revision to resume from
  std::function<void(const Event&)> fn_;
  CURLM* multi_;
  std::string buffer_;
  bool progressed_ = false;
  std::atomic<bool> stop_{false};
  bool done_ = false;  // a kCompacted was delivered
  std::thread thread_;
};

EtcdStore::EtcdStore(EtcdOptions options) : options_(std::move(options)) {}
EtcdStore::~EtcdStore() = default;

std::string EtcdStore::Describe() const {
  std::string out = "etcd ";
  for (size_t i = 0; i < options_.endpoints.size(); ++i) out += (i ? "," : "") + options_.endpoints[i];
  return out + " (prefix " + options_.prefix + ")";
}

Result<std::unique_ptr<EtcdStore>> EtcdStore::Open(EtcdOptions options) {
  if (options.endpoints.empty()) return InvalidArgument("etcd: no endpoints");
  for (auto& e : options.endpoints) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    if (!e.starts_with("http://") && !e.starts_with("https://")) {
      return InvalidArgument("etcd endpoint '" + e + "' must start with http:// or https://");
    }
  }
  if (options.prefix.empty()) return InvalidArgument("etcd: the key prefix must not be empty");
  GlobalInit();
  std::unique_ptr<EtcdStore> s(new EtcdStore(std::move(options)));
  LB_RETURN_IF_ERROR(s->Revision());
  return s;
}

std::unique_ptr<EtcdStore::Conn> EtcdStore::TakeConn() {
  std::lock_guard l(mu_);
  if (idle_.empty()) return std::make_unique<Conn>();
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void EtcdStore::ReturnConn(std::unique_ptr<Conn> c) {
  std::lock_guard l(mu_);
  if (idle_.size() < 8) idle_.push_back(std::move(c));
}

Result<std::string> EtcdStore::Call(const std::string& path, const std::string& body) {
  auto deadline = Clock::now() + options_.timeout;
  size_t first;
  {
    std::lock_guard l(mu_);
    first = preferred_;
  }
  std::optional<Error> last;
  for (size_t k = 0; k < options_.endpoints.size(); ++k) {
    size_t idx = (first + k) % options_.endpoints.size();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    auto conn = TakeConn();
    CURL* curl = conn->get();
    std::string url = options_.endpoints[idx] + path, out;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
    SetTls(curl, options_);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);
    std::string what = "etcd " + options_.endpoints[idx] + path + ": ";
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_SSL_CONNECT_ERROR) {
      last = Unavailable(what + curl_easy_strerror(rc));  // never sent: the next endpoint may take it
      continue;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) return DeadlineExceeded(what + "no answer within the deadline");
    if (rc != CURLE_OK) return Unavailable(what + curl_easy_strerror(rc));  // may have happened: the caller decides
    ReturnConn(std::move(conn));
    if (status == 200) {
      std::lock_guard l(mu_);
      preferred_ = idx;
      return out;
    }
    auto j = Json::parse(out, nullptr, false);
    int code = j.is_object() ? static_cast<int>(I64(j, "code")) : 0;
    std::string message = j.is_object() ? Str(j, "message", Str(j, "error", out)) : out;
    Error e = code != 0 ? FromGrpc(code, message) : Unavailable(what + "HTTP " + std::to_string(status) + ": " + out);
    // Only a refusal that surely did nothing (14: no leader, say) goes to the
    // next member; any other answer, a cancelled call included, is the caller's.
    if (code != 14) return e;
    last = e;
  }
  return last ? *last : DeadlineExceeded("etcd: no answer within " + std::to_string(options_.timeout.count()) + " s");
}

Result<std::optional<KeyValue>> EtcdStore::Get(std::string_view key) {
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/kv/range", Json{{"key", B64(options_.prefix + std::string(key))}}.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  auto kvs = j.find("kvs");
  if (kvs == j.end() || !kvs->is_array() || kvs->empty()) return std::optional<KeyValue>();
  LB_ASSIGN_OR_RETURN(auto kv, ParseKv((*kvs)[0], options_.prefix));
  return std::optional<KeyValue>(std::move(kv));
}

Result<Range> EtcdStore::List(std::string_view prefix) {
  std::string full = options_.prefix + std::string(prefix);
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/kv/range", Json{{"key", B64(full)}, {"range_end", B64(PrefixEnd(full))}}.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  Range out;
  out.revision = I64(Obj(j, "header"), "revision");
  if (auto kvs = j.find("kvs"); kvs != j.end() && kvs->is_array()) {
    for (const auto& k : *kvs) {
      LB_ASSIGN_OR_RETURN(auto kv, ParseKv(k, options_.prefix));
      out.kvs.push_back(std::move(kv));
    }
  }
  return out;
}

Result<int64_t> EtcdStore::Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  Json req = {{"compare", Json::array()}, {"success", Json::array()}, {"failure", Json::array()}};
  for (const auto& c : compares) {
    if (c.expect.kind == Expect::Kind::kAny) continue;
    std::string key = options_.prefix + c.key;
    req["compare"].push_back(CompareJson(key, c.expect));
    req["failure"].push_back({{"request_range", {{"key", B64(key)}}}});
  }
  for (const auto& op : ops) {
    if (op.key.empty()) return InvalidArgument("state store: empty key");
    std::string key = options_.prefix + op.key;
    if (op.kind == Op::Kind::kPut) {
      Json put = {{"key", B64(key)}, {"value", B64(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      req["success"].push_back({{"request_put", put}});
    } else {
      req["success"].push_back({{"request_delete_range", {{"key", B64(key)}}}});
    }
  }
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/kv/txn", req.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  int64_t revision = I64(Obj(j, "header"), "revision");
  if (Bool(j, "succeeded")) return revision;
  // Name the first compare that failed, from the values the failure branch read.
  const Json& responses = Arr(j, "responses");
  size_t i = 0;
  for (const auto& c : compares) {
    if (c.expect.kind == Expect::Kind::kAny) continue;
    std::optional<KeyValue> cur;
    if (i < responses.size()) {
      const Json& kvs = Arr(Obj(responses[i], "response_range"), "kvs");
      if (!kvs.empty()) {
        auto kv = ParseKv(kvs[0], options_.prefix);
        if (kv.ok()) cur = std::move(*kv);
      }
    }
    ++i;
    bool holds = c.expect.kind == Expect::Kind::kAbsent ? !cur : cur && cur->mod_revision == c.expect.mod_revision;
    if (!holds) {
      return Aborted("state store: key '" + c.key + "' changed since it was read (now at revision " +
                     std::to_string(cur ? cur->mod_revision : 0) + ")");
    }
  }
  return Aborted("state store: a transaction's condition no longer held");
}

Result<int64_t> EtcdStore::Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) {
  if (key.empty()) return InvalidArgument("state store: empty key");
  return Txn({{std::string(key), expect}}, {Op::Put(std::string(key), std::string(value), lease)});
}

Result<bool> EtcdStore::Delete(std::string_view key, Expect expect) {
  std::string full = options_.prefix + std::string(key);
  Json req = {{"compare", Json::array()},
              {"success", Json::array({{{"request_delete_range", {{"key", B64(full)}}}}})},
              {"failure", Json::array()}};
  if (expect.kind != Expect::Kind::kAny) req["compare"].push_back(CompareJson(full, expect));
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/kv/txn", req.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  if (!Bool(j, "succeeded")) {
    return Aborted("state store: key '" + std::string(key) + "' changed since it was read");
  }
  const Json& responses = Arr(j, "responses");
  if (responses.empty()) return false;
  return I64(Obj(responses[0], "response_delete_range"), "deleted") > 0;
}

Result<LeaseId> EtcdStore::Grant(Duration ttl) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
  if (ms <= 0) return InvalidArgument("state store: a lease needs a TTL above zero");
  int64_t seconds = (ms + 999) / 1000;
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/lease/grant", Json{{"TTL", std::to_string(seconds)}}.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  if (!Str(j, "error").empty()) return Unavailable("etcd: " + Str(j, "error"));
  LeaseId id = I64(j, "ID");
  if (id == 0) return DataLoss("etcd: a lease grant without an ID");
  return id;
}

Status EtcdStore::KeepAlive(LeaseId lease) {
  LB_ASSIGN_OR_RETURN(auto body, Call("/v3/lease/keepalive", Json{{"ID", std::to_string(lease)}}.dump()));
  // A stream of one answer: {"result": {"ID": ..., "TTL": ...}}; TTL 0 or
  // absent when the lease is gone.
  auto line = std::string_view(body).substr(0, body.find('\n'));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(line));
  if (j.contains("error")) {
    const Json& e = Obj(j, "error");
    return FromGrpc(static_cast<int>(I64(e, "grpc_code") != 0 ? I64(e, "grpc_code") : I64(e, "code")),
                    Str(e, "message", "keep-alive failed"));
  }
  if (I64(Obj(j, "result"), "TTL") <= 0) {
    return NotFound("state store: lease " + std::to_string(lease) + " has expired");
  }
  return Ok();
}

Status EtcdStore::Revoke(LeaseId lease) {
  auto r = Call("/v3/lease/revoke", Json{{"ID", std::to_string(lease)}}.dump());
  if (!r.ok() && r.error().code() != Code::kNotFound) return r.error();
  return Ok();
}

std::unique_ptr<WatchHandle> EtcdStore::Watch(std::string_view prefix, int64_t from_revision,
                                              std::function<void(const Event&)> fn) {
  if (from_revision <= 0) {
    // "After Watch returns": fixed here, not when the stream comes up.
    auto rev = Revision();
    from_revision = rev.ok() ? *rev + 1 : 1;
  }
  return std::make_unique<Watcher>(*this, std::string(prefix), from_revision, std::move(fn));
}

Result<int64_t> EtcdStore::Revision() {
  LB_ASSIGN_OR_RETURN(auto body,
                      Call("/v3/kv/range", Json{{"key", B64(options_.prefix)}, {"count_only", true}}.dump()));
  LB_ASSIGN_OR_RETURN(auto j, ParseJson(body));
  return I64(Obj(j, "header"), "revision");
}

Status EtcdStore::Compact(int64_t revision) {
  auto r = Call("/v3/kv/compaction", Json{{"revision", std::to_string(revision)}}.dump());
  // Compacting again at or below the last compaction changes nothing.
  if (!r.ok() && !(r.error().code() == Code::kFailedPrecondition &&
                   r.error().message().find("compacted") != std::string::npos)) {
    return r.error();
  }
  return Ok();
}

Result<EtcdStore::WatchMessage> EtcdStore::ParseWatchLine(std::string_view line, std::string_view prefix) {
  auto j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("etcd watch: a line that is not a JSON object");
  if (j.contains("error")) {
    const Json& e = j["error"];
    return Unavailable("etcd watch: " + (e.is_object() ? Str(e, "message", "error") : std::string("error")));
  }
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) return DataLoss("etcd watch: no result");
  WatchMessage m;
  m.created = Bool(*r, "created");
  m.canceled = Bool(*r, "canceled");
  m.compact_revision = I64(*r, "compact_revision");
  if (auto evs = r->find("events"); evs != r->end() && evs->is_array()) {
    for (const auto& ev : *evs) {
      if (!ev.is_object()) return DataLoss("etcd watch: an event that is not an object");
      Event e;
      e.type = Str(ev, "type", "PUT") == "DELETE" ? Event::Type::kDelete : Event::Type::kPut;
      LB_ASSIGN_OR_RETURN(e.kv, ParseKv(Obj(ev, "kv"), prefix));
      m.events.push_back(std::move(e));
    }
  }
  return m;
}

}  // namespace lifeboat::state
