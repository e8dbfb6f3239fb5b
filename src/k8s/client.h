// A client of one cluster's API server over HTTPS (libcurl, one kept-alive
// connection): authentication from its Access, a client-side rate limit
// (token bucket: qps, burst, as client-go's), and retries with backoff on
// 429 (honouring Retry-After), 5xx and refused connections.
//
// Discovery (every served group at its preferred version) and paged LIST
// (limit and continue tokens) build on it. Not thread-safe: one per thread.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/units.h"
#include "k8s/kubeconfig.h"

namespace lifeboat::k8s {

using Json = nlohmann::json;

struct ClientOptions {
  double qps = 100;  // requests per second, sustained
  int burst = 200;   // requests at once after a quiet time
  int retries = 6;   // after the first try, on 429, 5xx and refused connections
  Duration timeout = std::chrono::seconds(30);   // of one request
  Duration max_backoff = std::chrono::seconds(8);
};

struct Response {
  long status = 0;
  std::string body;
  // A write retried after an answer that does not say whether it was done
  // (a 5xx): that answer ("HTTP 504"). The object may be this request's own.
  std::string retried_after;
};

struct ClientStats {
  uint64_t requests = 0, retries = 0, throttled = 0;  // throttled: 429 answers
  double waited_seconds = 0;                          // in the rate limiter
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> Create(Access access, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request, retried as above. A response with any status is Ok; an
  // error means no answer (cannot connect, TLS, timeout, retries used up
  // on 429/5xx: the last answer's message).
  Result<Response> Call(std::string_view method, const std::string& path, const std::string& body = "",
                        std::string_view content_type = "application/json");
  // GET of a JSON document; a status other than 200 is its error (ApiError).
  Result<Json> GetJson(const std::string& path);

  // Another client of the same cluster (its own connection), for another
  // thread, with `share` of this one's rate limit; it starts with this
  // one's credential.
  Result<std::unique_ptr<Client>> Clone(double share) const;

  const Access& access() const { return access_; }
  const ClientStats& stats() const { return stats_; }

 private:
  Client(Access access, ClientOptions options);
  Status Authenticate(bool refresh);
  void Pace();

  Access access_;
  ClientOptions options_;
  CURL* curl_ = nullptr;
  std::string token_;  // the token in use (static, from a file, or from the exec plugin)
  std::optional<std::chrono::system_clock::time_point> token_expires_;
  double tokens_;  // rate limiter
  std::chrono::steady_clock::time_point last_fill_;
  ClientStats stats_;
};

// The error an API answer means: metav1.Status's message and reason, with
// a code from the HTTP status (401 Unauthenticated, 403 PermissionDenied,
// 404 NotFound, 409 AlreadyExists or Aborted (conflict), 422 and 400
// InvalidArgument, 429 ResourceExhausted, 5xx Unavailable).
Error ApiError(const Response& r, const std::string& what);
// "AlreadyExists", "Conflict", "NotFound"...: metav1.Status reason, or "".
std::string ApiReason(const Response& r);

// One kind of object the server serves, at the version discovery prefers.
struct ApiResource {
  std::string group, version, resource, kind;
  bool namespaced = false;
  std::vector<std::string> verbs, short_names;
  std::string GroupVersion() const { return group.empty() ? version : group + "/" + version; }
  // "deployments.apps", "configmaps" (the core group has no suffix)
  std::string Qualified() const { return group.empty() ? resource : resource + "." + group; }
  // The collection's path, in `ns` when namespaced and `ns` is not empty.
  std::string Path(const std::string& ns = "") const;
  bool Can(std::string_view verb) const;
};

// Every group and version the server serves, each group at its preferred
// version; resources that can be listed, without subresources. A group
// whose discovery fails is skipped and named in `failed` (when given).
Result<std::vector<ApiResource>> Discover(Client& client, std::vector<std::string>* failed = nullptr);

// LIST in pages of `page` with continue tokens; `fn` sees each item (its
// apiVersion and kind filled in, as the list omits them). A continue token
// that expired (410) restarts nothing: it is an error naming the resource.
Status ListAll(Client& client, const ApiResource& r, const std::string& ns, const std::string& selector, int page,
               const std::function<Status(Json& item)>& fn);

// %-encodes a query value.
std::string QueryEscape(std::string_view s);

}  // namespace lifeboat::k8s
