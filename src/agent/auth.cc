#include "agent/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/strings.h"

namespace lifeboat::agent {

net::HttpResponse JsonError(int status, const std::string& message) {
  return net::HttpResponse::Json(status, nlohmann::ordered_json{{"error", message}}.dump() + "\n");
}

net::HttpResponse JsonError(const Error& error) { return JsonError(HttpStatus(error.code()), error.message()); }

Result<std::string> LoadToken(const plan::Plan& plan) {
  if (const char* env = std::getenv("LIFEBOAT_TOKEN"); env && *env) return std::string(env);
  if (plan.routing_controls.token_file.empty()) return std::string();
  auto text = ReadFile(plan.routing_controls.token_file, 4096);
  if (!text.ok()) return text.error().Wrap("routing_controls.token_file");
  std::string t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return InvalidArgument("routing_controls.token_file " + plan.routing_controls.token_file + " is empty");
  return t;
}

bool TokenMatches(std::string_view authorization, const std::string& token) {
  // RFC 9110 §11.1: the scheme is case-insensitive; one or more spaces follow it.
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || ToLower(authorization.substr(0, kScheme.size())) != kScheme ||
      authorization[kScheme.size()] != ' ') {
    return false;
  }
  std::string_view given = authorization.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  // Compare digests, so the time taken says nothing about the token's length
  // or any prefix of it.
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b);
  return !token.empty() && CRYPTO_memcmp(a, b, sizeof a) == 0;
}

std::optional<net::HttpResponse> CheckToken(const net::HttpRequest& req, const std::string& token,
                                            const std::string& what) {
  if (token.empty()) {
    return JsonError(403, "this agent has no token for " + what +
                              "; set LIFEBOAT_TOKEN or routing_controls.token_file and restart it");
  }
  if (!TokenMatches(req.Header("Authorization"), token)) {
    auto r = JsonError(401, "a valid bearer token is needed for " + what);
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

}  // namespace lifeboat::agent
