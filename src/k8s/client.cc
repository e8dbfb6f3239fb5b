#include "k8s/client.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>

#include "core/json_read.h"
#include "core/fs.h"
#include "core/log.h"

namespace lifeboat::k8s {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Headers {
  std::string retry_after;
};

size_t OnHeader(char* data, size_t size, size_t n, void* out) {
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == kName) {
      std::string v(line.substr(kName.size()));
      v.erase(0, v.find_first_not_of(" \t"));
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
      static_cast<Headers*>(out)->retry_after = v;
    }
  }
  return size * n;
}

bool Retriable(long status) { return status == 429 || (status >= 500 && status != 501); }

}  // namespace

Client::Client(Access access, ClientOptions options)
    : access_(std::move(access)), options_(options), tokens_(options.burst), last_fill_(std::chrono::steady_clock::now()) {}

Client::~Client() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

Result<std::unique_ptr<Client>> Client::Create(Access access, ClientOptions options) {
  GlobalInit();
  if (options.qps <= 0 || options.burst < 1) return InvalidArgument("k8s client: qps and burst must be positive");
  std::unique_ptr<Client> c(new Client(std::move(access), options));
  c->curl_ = curl_easy_init();
  if (c->curl_ == nullptr) return Internal("k8s client: curl_easy_init failed");
  return c;
}

Result<std::unique_ptr<Client>> Client::Clone(double share) const {
  ClientOptions o = options_;
  o.qps = std::max(0.1, o.qps * share);
  o.burst = std::max(1, static_cast<int>(o.burst * share));
  LB_ASSIGN_OR_RETURN(auto c, Create(access_, o));
  c->token_ = token_;
  c->token_expires_ = token_expires_;
  return c;
}

Status Client::Authenticate(bool refresh) {
  if (access_.exec) {
    bool expired = token_expires_ && std::chrono::system_clock::now() + std::chrono::seconds(10) >= *token_expires_;
    if (token_.empty() && access_.cert_pem.empty()) refresh = true;
    if (refresh || expired) {
      LB_ASSIGN_OR_RETURN(auto cred, RunExecPlugin(*access_.exec));
      token_ = cred.token;
      token_expires_ = cred.expires;
      if (!cred.cert_pem.empty()) {
        access_.cert_pem = cred.cert_pem;
        access_.key_pem = cred.key_pem;
      }
    }
    return Ok();
  }
  if (!access_.token_file.empty()) {
    // Re-read at each refresh: projected service-account tokens rotate.
    if (token_.empty() || refresh) {
      auto t = ReadFile(access_.token_file, 64 << 10);
      if (!t.ok()) return t.error().Wrap("token file of user '" + access_.user_name + "'");
      token_ = *t;
      while (!token_.empty() && (token_.back() == '\n' || token_.back() == '\r')) token_.pop_back();
    }
    return Ok();
  }
  token_ = access_.token;
  return Ok();
}

void Client::Pace() {
  auto now = std::chrono::steady_clock::now();
  tokens_ = std::min<double>(options_.burst,
                             tokens_ + std::chrono::duration<double>(now - last_fill_).count() * options_.qps);
  last_fill_ = now;
  if (tokens_ < 1) {
    double wait = (1 - tokens_) / options_.qps;
    stats_.waited_seconds += wait;
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    tokens_ = 1;
    last_fill_ = std::chrono::steady_clock::now();
  }
  tokens_ -= 1;
}

Result<Response> Client::Call(std::string_view method, const std::string& path, const std::string& body,
                              std::string_view content_type) {
  LB_RETURN_IF_ERROR(Authenticate(false));
  bool refreshed = false;
  auto backoff = std::chrono::milliseconds(250);
  std::string last_problem, unsure_write;
  for (int attempt = 0; attempt <= options_.retries; ++attempt) {
    Pace();
    CURL* c = curl_;
    curl_easy_reset(c);
    std::string url = access_.server + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout).count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
    if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_blob ca{}, cert{}, key{};
    if (!access_.ca_pem.empty()) {
      ca = {access_.ca_pem.data(), access_.ca_pem.size(), CURL_BLOB_NOCOPY};
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (access_.insecure) {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!access_.cert_pem.empty()) {
      cert = {access_.cert_pem.data(), access_.cert_pem.size(), CURL_BLOB_NOCOPY};
      key = {access_.key_pem.data(), access_.key_pem.size(), CURL_BLOB_NOCOPY};
      curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
      curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
      curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "User-Agent: lifeboat");
    std::string auth = token_.empty() ? std::string() : "Authorization: Bearer " + token_;
    if (!auth.empty()) headers = curl_slist_append(headers, auth.c_str());
    std::string ctype = "Content-Type: " + std::string(content_type);
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      headers = curl_slist_append(headers, ctype.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    Response r;
    Headers h;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    ++stats_.requests;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      last_problem = std::string(curl_easy_strerror(rc));
      bool nothing_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
      if (rc == CURLE_SSL_CACERT || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
          rc == CURLE_SSL_CERTPROBLEM || (!nothing_sent && method != "GET")) {
        return Unavailable("cluster " + access_.server + ": " + last_problem);
      }
    } else {
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
      if (r.status == 401 && (access_.exec || !access_.token_file.empty()) && !refreshed) {
        refreshed = true;  // a credential that expired early: get a new one, once
        LB_RETURN_IF_ERROR(Authenticate(true));
        --attempt;
        continue;
      }
      if (!Retriable(r.status) || attempt == options_.retries) {
        if (Retriable(r.status)) return ApiError(r, std::string(method) + " " + path + " (after " +
                                                        std::to_string(attempt) + " retries)");
        r.retried_after = unsure_write;
        return r;
      }
      if (r.status == 429) ++stats_.throttled;
      last_problem = "HTTP " + std::to_string(r.status);
      // A 429 was refused before anything was done; a 5xx to a write may
      // come after it was done (kube-apiserver's 504 Timeout).
      if (r.status >= 500 && method != "GET") unsure_write = last_problem;
    }
    if (attempt == options_.retries) break;
    ++stats_.retries;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(backoff);
    if (!h.retry_after.empty()) {
      char* end = nullptr;
      long secs = std::strtol(h.retry_after.c_str(), &end, 10);
      if (end != h.retry_after.c_str() && secs >= 0) wait = std::chrono::seconds(std::min(secs, 60L));
    }
    Log(spdlog::level::debug, {{"server", access_.server}, {"path", path}}, "k8s: {} {}: {}; retry in {} ms", method, path,
             last_problem, wait.count());
    std::this_thread::sleep_for(wait);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_backoff));
  }
  return Unavailable("cluster " + access_.server + ": " + std::string(method) + " " + path + ": " + last_problem +
                     " (after " + std::to_string(options_.retries) + " retries)");
}

Result<Json> Client::GetJson(const std::string& path) {
  LB_ASSIGN_OR_RETURN(Response r, Call("GET", path));
  if (r.status != 200) return ApiError(r, "GET " + path);
  auto j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return DataLoss("GET " + path + ": the answer is not JSON");
  return j;
}

std::string ApiReason(const Response& r) {
  auto j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && json::Str(j, "kind") == "Status" && j.contains("reason") && j["reason"].is_string()) {
    return j["reason"].get<std::string>();
  }
  return "";
}

Error ApiError(const Response& r, const std::string& what) {
  std::string message;
  auto j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) message = j["message"].get<std::string>();
  if (message.empty()) message = "HTTP " + std::to_string(r.status);
  std::string m = what + ": " + message;
  switch (r.status) {
    case 400:
    case 422: return InvalidArgument(m);
    case 401: return Unauthenticated(m + " (the cluster refused the credentials: expired or wrong?)");
    case 403: return PermissionDenied(m);
    case 404: return NotFound(m);
    case 409: return ApiReason(r) == "AlreadyExists" ? AlreadyExists(m) : Aborted(m);
    case 410: return Aborted(m);
    case 429: return ResourceExhausted(m);
    default: return r.status >= 500 ? Unavailable(m) : Internal(m);
  }
}

std::string ApiResource::Path(const std::string& ns) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  return p + "/" + resource;
}

bool ApiResource::Can(std::string_view verb) const {
  return std::find(verbs.begin(), verbs.end(), verb) != verbs.end();
}

namespace {

Status AddResources(Client& client, const std::string& group, const std::string& version,
                    std::vector<ApiResource>& out) {
  std::string path = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  LB_ASSIGN_OR_RETURN(Json list, client.GetJson(path));
  if (!list.contains("resources") || !list["resources"].is_array()) return DataLoss(path + ": no resources");
  for (const auto& r : list["resources"]) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string()) continue;
    ApiResource a;
    a.group = group;
    a.version = version;
    a.resource = r["name"].get<std::string>();
    if (a.resource.find('/') != std::string::npos) continue;  // a subresource
    a.kind = json::Str(r, "kind");
    a.namespaced = json::Bool(r, "namespaced");
    for (auto [key, list] : {std::pair{"verbs", &a.verbs}, std::pair{"shortNames", &a.short_names}}) {
      if (!r.contains(key) || !r[key].is_array()) continue;
      for (const auto& v : r[key]) {
        if (v.is_string()) list->push_back(v.get<std::string>());
      }
    }
    out.push_back(std::move(a));
  }
  return Ok();
}

}  // namespace

Result<std::vector<ApiResource>> Discover(Client& client, std::vector<std::string>* failed) {
  std::vector<ApiResource> out;
  LB_ASSIGN_OR_RETURN(Json core, client.GetJson("/api"));
  std::string core_version = "v1";
  if (core.contains("versions") && core["versions"].is_array() && !core["versions"].empty() &&
      core["versions"][0].is_string()) {
    core_version = core["versions"][0].get<std::string>();
  }
  LB_RETURN_IF_ERROR(AddResources(client, "", core_version, out));
  LB_ASSIGN_OR_RETURN(Json groups, client.GetJson("/apis"));
  if (!groups.contains("groups") || !groups["groups"].is_array()) return DataLoss("/apis: no groups");
  for (const auto& g : groups["groups"]) {
    if (!g.is_object()) continue;
    std::string name = json::Str(g, "name");
    std::string version;
    if (g.contains("preferredVersion") && g["preferredVersion"].is_object()) {
      version = json::Str(g["preferredVersion"], "version");
    }
    if (version.empty() && g.contains("versions") && g["versions"].is_array() && !g["versions"].empty()) {
      version = json::Str(g["versions"][0], "version");
    }
    if (name.empty() || version.empty()) continue;
    Status st = AddResources(client, name, version, out);
    if (!st.ok()) {
      // An aggregated API whose backend is down should not stop a backup of the rest.
      if (failed != nullptr) failed->push_back(name + "/" + version + ": " + st.error().message());
      continue;
    }
  }
  return out;
}

std::string QueryEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Status ListAll(Client& client, const ApiResource& r, const std::string& ns, const std::string& selector, int page,
               const std::function<Status(Json& item)>& fn) {
  std::string cont;
  std::string kind = r.kind;
  do {
    std::string path = r.Path(ns) + "?limit=" + std::to_string(page);
    if (!selector.empty()) path += "&labelSelector=" + QueryEscape(selector);
    if (!cont.empty()) path += "&continue=" + QueryEscape(cont);
    LB_ASSIGN_OR_RETURN(Json list, client.GetJson(path));
    cont.clear();
    if (list.contains("metadata") && list["metadata"].is_object()) cont = json::Str(list["metadata"], "continue");
    if (!list.contains("items") || !list["items"].is_array()) return DataLoss("LIST " + r.Qualified() + ": no items");
    for (auto& item : list["items"]) {
      if (!item.is_object()) continue;
      item["apiVersion"] = r.GroupVersion();
      item["kind"] = kind;
      LB_RETURN_IF_ERROR(fn(item));
    }
  } while (!cont.empty());
  return Ok();
}

}  // namespace lifeboat::k8s
