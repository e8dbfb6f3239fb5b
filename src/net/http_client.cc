#include <curl/curl.h>

#include <mutex>

#include "net/http.h"

namespace lifeboat::net {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string BaseUrl(const Address& address) { return "http://" + address.ToString(); }

Result<FetchResult> Fetch(std::string_view method, const std::string& url, Duration timeout, std::string_view body,
                          const std::vector<std::string>& headers) {
  GlobalInit();
  CURL* curl = curl_easy_init();
  if (!curl) return Internal("curl_easy_init failed");
  FetchResult out;
  std::string m(method);
  curl_slist* hdrs = nullptr;
  for (const auto& h : headers) hdrs = curl_slist_append(hdrs, h.c_str());
  long ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  if (!body.empty() || m == "POST" || m == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  char* ctype = nullptr;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
  if (ctype) out.content_type = ctype;
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(curl);
  std::string what = m + " " + url + ": " + curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OK: break;
    case CURLE_OPERATION_TIMEDOUT: return DeadlineExceeded(what);
    case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING: return Unavailable(what);
    default: return Unavailable(what);
  }
  out.status = static_cast<int>(status);
  return out;
}

}  // namespace lifeboat::net
