// The S3 backend: AWS Signature Version 4 over HTTP(S) with libcurl, for any
// S3-compatible store. Path-style (https://host/bucket/key) or
// virtual-hosted (https://bucket.host/key) addressing. Objects larger than
// the part size go up as a multipart upload. Requests are retried with
// exponential backoff and jitter on 5xx, throttling (429, SlowDown) and
// transport errors; 403, 404 and a wrong region become clear errors.
#include <curl/curl.h>
#include <openssl/hmac.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "chunk/hash.h"
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include "storage/storage.h"

namespace lifeboat::storage {

namespace sigv4 {

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

namespace {
std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}
std::string ShaHex(std::string_view data) {
  return chunk::Hex(chunk::Sha256({reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
}
std::string SigningKey(const std::string& secret, const std::string& date, const std::string& region,
                       const std::string& service) {
  return Hmac(Hmac(Hmac(Hmac("AWS4" + secret, date), region), service), "aws4_request");
}
}  // namespace

std::string Authorization(const Request& r) {
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : r.headers) {
    canonical_headers += k + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + k;
  }
  std::string canonical = r.method + "\n" + r.path + "\n" + r.query + "\n" + canonical_headers + "\n" +
                          signed_headers + "\n" + r.payload_hash;
  std::string date = r.stamp.substr(0, 8);
  std::string scope = date + "/" + r.region + "/s3/aws4_request";
  std::string to_sign = "AWS4-HMAC-SHA256\n" + r.stamp + "\n" + scope + "\n" + ShaHex(canonical);
  std::string sig = Hmac(SigningKey(r.secret_key, date, r.region, "s3"), to_sign);
  return "AWS4-HMAC-SHA256 Credential=" + r.access_key + "/" + scope + ",SignedHeaders=" + signed_headers +
         ",Signature=" + chunk::Hex({reinterpret_cast<const uint8_t*>(sig.data()), sig.size()});
}

std::string SigningKeyHex(const std::string& secret, const std::string& date, const std::string& region,
                          const std::string& service) {
  std::string k = SigningKey(secret, date, region, service);
  return chunk::Hex({reinterpret_cast<const uint8_t*>(k.data()), k.size()});
}

}  // namespace sigv4

namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

struct Response {
  long status = 0;
  std::string body;
  std::string etag;
  CURLcode curl = CURLE_OK;
  std::string curl_error;
};

// The text of the first <tag>...</tag> in xml, with the five XML entities decoded.
std::string XmlText(std::string_view xml, std::string_view tag, size_t* pos = nullptr) {
  std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  size_t from = pos != nullptr ? *pos : 0;
  size_t a = xml.find(open, from);
  if (a == std::string_view::npos) return "";
  a += open.size();
  size_t b = xml.find(close, a);
  if (b == std::string_view::npos) return "";
  if (pos != nullptr) *pos = b + close.size();
  std::string out;
  std::string_view v = xml.substr(a, b - a);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '&') {
      out.push_back(v[i]);
      continue;
    }
    static const std::pair<std::string_view, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool done = false;
    for (auto [e, c] : kEntities) {
      if (v.substr(i).starts_with(e)) {
        out.push_back(c);
        i += e.size() - 1;
        done = true;
        break;
      }
    }
    if (!done) out.push_back('&');
  }
  return out;
}

size_t AppendBody(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

size_t ReadHeader(char* p, size_t size, size_t n, void* out) {
  std::string_view h(p, size * n);
  if (h.size() > 5 && (h.substr(0, 5) == "ETag:" || h.substr(0, 5) == "etag:")) {
    std::string_view v = h.substr(5);
    while (!v.empty() && (v.front() == ' ')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    static_cast<Response*>(out)->etag = std::string(v);
  }
  return size * n;
}

struct Curl {
  Curl() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    h = curl_easy_init();
  }
  ~Curl() { curl_easy_cleanup(h); }
  CURL* h;
};

std::string AmzDate(std::time_t t, bool date_only) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, date_only ? "%Y%m%d" : "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

class S3 final : public Backend {
 public:
  explicit S3(S3Options o) : o_(std::move(o)) {
    std::string ep = o_.endpoint;
    while (!ep.empty() && ep.back() == '/') ep.pop_back();
    size_t scheme_end = ep.find("://");
    scheme_ = ep.substr(0, scheme_end);
    host_ = ep.substr(scheme_end + 3);
    if (o_.virtual_hosted) host_ = o_.bucket + "." + host_;
    while (!o_.prefix.empty() && o_.prefix.back() == '/') o_.prefix.pop_back();
    while (!o_.prefix.empty() && o_.prefix.front() == '/') o_.prefix.erase(0, 1);
  }

  std::string Describe() const override {
    return "s3 " + o_.endpoint + " bucket " + o_.bucket + (o_.prefix.empty() ? "" : " prefix " + o_.prefix);
  }

  Status Prepare() override {
    auto r = Call("GET", "", {{"list-type", "2"}, {"max-keys", "1"}}, "", "");
    if (!r.ok()) return r.error();
    if (r->status != 200) return Explain(*r, "the bucket");
    return Ok();
  }

  Status Put(const std::string& name, std::string_view data) override {
    if (data.size() > o_.part_size) return PutMultipart(name, data);
    auto r = Call("PUT", Key(name), {}, data, "");
    if (!r.ok()) return r.error();
    if (r->status != 200) return Explain(*r, name);
    return Ok();
  }

  Result<std::string> Get(const std::string& name, uint64_t offset, uint64_t length) override {
    std::string range;
    if (offset > 0 || length > 0) {
      range = "bytes=" + std::to_string(offset) + "-" + (length > 0 ? std::to_string(offset + length - 1) : "");
    }
    auto r = Call("GET", Key(name), {}, "", range);
    if (!r.ok()) return r.error();
    if (r->status != 200 && r->status != 206) return Explain(*r, name);
    if (length > 0 && r->body.size() != length) {
      return Error(Code::kDataLoss, name + ": asked for " + std::to_string(length) + " bytes at " +
                                        std::to_string(offset) + ", got " + std::to_string(r->body.size()));
    }
    return std::move(r->body);
  }

  Result<std::vector<ObjectInfo>> List(const std::string& dir) override {
    std::vector<ObjectInfo> out;
    std::string prefix = Key(dir.empty() ? "" : dir + "/");
    std::string token;
    for (;;) {
      Query q{{"list-type", "2"}, {"prefix", prefix}};
      if (!token.empty()) q.push_back({"continuation-token", token});
      auto r = Call("GET", "", q, "", "");
      if (!r.ok()) return r.error();
      if (r->status != 200) return Explain(*r, "list " + dir);
      size_t pos = 0;
      for (;;) {
        size_t at = r->body.find("<Contents>", pos);
        if (at == std::string::npos) break;
        size_t end = r->body.find("</Contents>", at);
        if (end == std::string::npos) break;
        std::string_view item(r->body.data() + at, end - at);
        std::string key = XmlText(item, "Key");
        std::string size = XmlText(item, "Size");
        pos = end;
        size_t strip = o_.prefix.empty() ? 0 : o_.prefix.size() + 1;
        if (key.size() <= strip) continue;
        out.push_back({key.substr(strip), size.empty() ? 0 : std::stoull(size)});
      }
      if (XmlText(r->body, "IsTruncated") != "true") break;
      token = XmlText(r->body, "NextContinuationToken");
      if (token.empty()) break;
    }
    return out;
  }

  Status Delete(const std::string& name) override {
    auto r = Call("DELETE", Key(name), {}, "", "");
    if (!r.ok()) return r.error();
    if (r->status != 204 && r->status != 200 && r->status != 404) return Explain(*r, name);
    return Ok();
  }

 private:
  std::string Key(const std::string& name) const { return o_.prefix.empty() ? name : o_.prefix + "/" + name; }

  Status PutMultipart(const std::string& name, std::string_view data) {
    std::string key = Key(name);
    auto init = Call("POST", key, {{"uploads", ""}}, "", "");
    if (!init.ok()) return init.error();
    if (init->status != 200) return Explain(*init, name);
    std::string upload = XmlText(init->body, "UploadId");
    if (upload.empty()) return Error(Code::kInternal, "S3 started a multipart upload of " + name + " without an UploadId");
    std::string complete = "<CompleteMultipartUpload>";
    Status s = Ok();
    int part = 1;
    for (size_t off = 0; off < data.size(); off += o_.part_size, ++part) {
      auto r = Call("PUT", key, {{"partNumber", std::to_string(part)}, {"uploadId", upload}},
                    data.substr(off, o_.part_size), "");
      if (!r.ok()) {
        s = r.error();
        break;
      }
      if (r->status != 200) {
        s = Explain(*r, name + " part " + std::to_string(part));
        break;
      }
      complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + r->etag + "</ETag></Part>";
    }
    if (s.ok()) {
      complete += "</CompleteMultipartUpload>";
      auto r = Call("POST", key, {{"uploadId", upload}}, complete, "");
      if (!r.ok()) {
        s = r.error();
      } else if (r->status != 200 || r->body.find("<Error>") != std::string::npos) {
        s = Explain(*r, name + " (completing the multipart upload)");
      } else {
        return Ok();
      }
    }
    (void)Call("DELETE", key, {{"uploadId", upload}}, "", "");  // abort; the store drops the parts
    return s;
  }

  Error Explain(const Response& r, const std::string& what) const {
    std::string code = XmlText(r.body, "Code"), message = XmlText(r.body, "Message");
    std::string detail = code.empty() ? "HTTP " + std::to_string(r.status) : code + (message.empty() ? "" : ": " + message);
    std::string where = " (" + Describe() + ")";
    if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || r.status == 301 ||
        code == "IllegalLocationConstraintException") {
      std::string region = XmlText(r.body, "Region");
      return Error(Code::kFailedPrecondition,
                   "S3 says the bucket is in another region" + (region.empty() ? "" : " ('" + region + "')") +
                       " than the location's region '" + o_.region + "': set region in the plan" + where + "; " + detail);
    }
    if (r.status == 403) {
      return Error(Code::kPermissionDenied, "S3 refused access to " + what + where + ": " + detail +
                                                " (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy)");
    }
    if (r.status == 404) {
      if (code == "NoSuchBucket") {
        return Error(Code::kFailedPrecondition, "bucket '" + o_.bucket + "' does not exist at " + o_.endpoint +
                                                    " (create it first)");
      }
      return NotFound(what + " does not exist" + where);
    }
    if (r.status == 416) return Error(Code::kDataLoss, what + " is shorter than expected" + where);
    return Error(r.status >= 500 ? Code::kUnavailable : Code::kInternal, "S3 " + what + where + ": " + detail);
  }

  // One request, retried on transport errors, 5xx and throttling.
  Result<Response> Call(const std::string& method, const std::string& key, Query query, std::string_view body,
                        const std::string& range) {
    std::sort(query.begin(), query.end());
    thread_local std::mt19937 rng{std::random_device{}()};
    auto delay = std::chrono::milliseconds(100);
    Response r;
    for (int attempt = 1;; ++attempt) {
      r = Once(method, key, query, body, range);
      bool transient = r.curl != CURLE_OK || r.status >= 500 || r.status == 429 ||
                       XmlText(r.body, "Code") == "SlowDown";
      if (!transient || attempt >= o_.max_attempts) break;
      auto wait = delay + std::chrono::milliseconds(rng() % (delay.count() + 1));
      spdlog::warn("s3: {} {}: {}; retrying in {} ms (attempt {}/{})", method, key.empty() ? "/" : key,
                r.curl != CURLE_OK ? r.curl_error : "HTTP " + std::to_string(r.status), wait.count(), attempt,
                o_.max_attempts);
      std::this_thread::sleep_for(wait);
      delay = std::min<std::chrono::milliseconds>(delay * 2, std::chrono::seconds(5));
    }
    if (r.curl != CURLE_OK) {
      return Error(Code::kUnavailable, "S3 " + method + " " + (key.empty() ? "/" : key) + " at " + o_.endpoint +
                                           ": " + r.curl_error + " (after " + std::to_string(o_.max_attempts) +
                                           " attempts)");
    }
    return r;
  }

  Response Once(const std::string& method, const std::string& key, const Query& query, std::string_view body,
                const std::string& range) {
    thread_local Curl curl;
    Response r;
    sigv4::Request sr;
    sr.method = method;
    sr.stamp = AmzDate(std::time(nullptr), false);
    sr.path = "/" + (o_.virtual_hosted ? "" : o_.bucket + (key.empty() ? "" : "/")) + sigv4::UriEncode(key, true);
    for (const auto& [k, v] : query) {
      sr.query += (sr.query.empty() ? "" : "&") + sigv4::UriEncode(k, false) + "=" + sigv4::UriEncode(v, false);
    }
    sr.payload_hash = sigv4::ShaHex(body);
    sr.headers = {{"host", host_}};
    if (!range.empty()) sr.headers.push_back({"range", range});
    sr.headers.push_back({"x-amz-content-sha256", sr.payload_hash});
    sr.headers.push_back({"x-amz-date", sr.stamp});
    if (!o_.session_token.empty()) sr.headers.push_back({"x-amz-security-token", o_.session_token});
    sr.access_key = o_.access_key;
    sr.secret_key = o_.secret_key;
    sr.region = o_.region;
    std::string auth = "Authorization: " + sigv4::Authorization(sr);
    const std::string& path = sr.path;
    const std::string& qs = sr.query;

    CURL* h = curl.h;
    curl_easy_reset(h);
    curl_slist* hl = nullptr;
    for (const auto& [k, v] : sr.headers) {
      if (k != "host") hl = curl_slist_append(hl, (k + ": " + v).c_str());
    }
    hl = curl_slist_append(hl, auth.c_str());
    hl = curl_slist_append(hl, "Expect:");
    hl = curl_slist_append(hl, "Content-Type:");
    std::string url = scheme_ + "://" + host_ + path + (qs.empty() ? "" : "?" + qs);
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, ReadHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    if (method == "GET") {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
      if (method == "PUT" || method == "POST") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      }
    }
    r.curl = curl_easy_perform(h);
    if (r.curl != CURLE_OK) r.curl_error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(r.curl);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    return r;
  }

  S3Options o_;
  std::string scheme_, host_;
};

}  // namespace

std::unique_ptr<Backend> NewS3(S3Options options) { return std::make_unique<S3>(std::move(options)); }

}  // namespace lifeboat::storage
