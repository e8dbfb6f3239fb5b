// The state store on an etcd v3 cluster (one member per region in
// production), through etcd's v3 JSON gateway over HTTP/1.1 (libcurl, with
// keep-alive and TLS client certificates). No consensus of our own: every
// guarantee of store.h is etcd's. Watches are streams that reconnect, to the
// next endpoint when one dies, and resume from the revision after the last
// event delivered; a history compacted meanwhile is reported as kCompacted.
// Every key is stored under `prefix`, which callers never see.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "state/store.h"

namespace lifeboat::state {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // "http://127.0.0.1:2379", "https://10.0.0.1:2379"
  std::string prefix = "/lifeboat/";   // every key lives below it
  // TLS: the CA that signed the members' certificates, and this client's
  // certificate and key (etcd's --client-cert-auth).
  std::string ca_file, cert_file, key_file;
  Duration timeout = std::chrono::seconds(5);  // the deadline of every call, over all endpoints
};

class EtcdStore final : public Store {
 public:
  // Checks that one endpoint answers (InvalidArgument for no endpoints or a
  // bad URL; Unavailable when none answers).
  static Result<std::unique_ptr<EtcdStore>> Open(EtcdOptions options);
  ~EtcdStore() override;

  std::string Describe() const override;
  Result<std::optional<KeyValue>> Get(std::string_view key) override;
  Result<Range> List(std::string_view prefix) override;
  Result<int64_t> Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) override;
  Result<bool> Delete(std::string_view key, Expect expect) override;
  Result<int64_t> Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override;
  Result<LeaseId> Grant(Duration ttl) override;
  Status KeepAlive(LeaseId lease) override;
  Status Revoke(LeaseId lease) override;
  std::unique_ptr<WatchHandle> Watch(std::string_view prefix, int64_t from_revision,
                                     std::function<void(const Event&)> fn) override;
  Result<int64_t> Revision() override;
  Status Compact(int64_t revision) override;

  // The gateway's JSON, for the fuzzer and tests: one watch response line
  // into events (prefix stripped). Exposed because its bytes come from the
  // network.
  struct WatchMessage {
    bool created = false, canceled = false;
    int64_t compact_revision = 0;
    std::vector<Event> events;
  };
  static Result<WatchMessage> ParseWatchLine(std::string_view line, std::string_view prefix);

 private:
  class Conn;
  class Watcher;
  explicit EtcdStore(EtcdOptions options);

  // POSTs `body` to `path` on the first endpoint that answers, within the
  // deadline; the parsed JSON response, or the mapped gRPC error.
  Result<std::string> Call(const std::string& path, const std::string& body);
  std::unique_ptr<Conn> TakeConn();
  void ReturnConn(std::unique_ptr<Conn> c);

  EtcdOptions options_;
  std::mutex mu_;
  size_t preferred_ = 0;                     // the endpoint that answered last; guarded by mu_
  std::vector<std::unique_ptr<Conn>> idle_;  // kept-alive connections; guarded by mu_
};

}  // namespace lifeboat::state
