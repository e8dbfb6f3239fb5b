#include "agent/auth.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/fs.h"

namespace lifeboat::agent {

net::HttpResponse JsonError(int status, const std::string& message) {
  return net::HttpResponse::Json(status, nlohmann::ordered_json{{"error", message}}.dump() + "\n");
}

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

std::optional<net::HttpResponse> CheckToken(const net::HttpRequest& req, const std::string& token,
                                            const std::string& what) {
  if (token.empty()) {
    return JsonError(403, "this agent has no token for " + what +
                              "; set LIFEBOAT_TOKEN or routing_controls.token_file and restart it");
  }
  std::string auth = req.Header("Authorization");
  std::string given = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
  if (given.size() != token.size() || CRYPTO_memcmp(given.data(), token.data(), token.size()) != 0) {
    auto r = JsonError(401, "a valid bearer token is needed for " + what);
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

}  // namespace lifeboat::agent
