#include "core/address.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

namespace lifeboat {
namespace {

bool ValidHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return true;
}

}  // namespace

std::string Address::ToString() const {
  if (is_ipv6()) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<Address> ParseAddress(std::string_view text) {
  std::string t(text);
  const std::string kForm = "; write host:port, e.g. 10.0.1.10:7700 or [2001:db8::1]:7700";
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return InvalidArgument("address '" + t + "' has no closing ']'" + kForm);
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("address '" + t + "' has no port" + kForm);
    }
    port = text.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) {
      return InvalidArgument("address '" + t + "': '" + std::string(host) + "' is not an IPv6 address");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return InvalidArgument("address '" + t + "' has no port" + kForm);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return InvalidArgument("address '" + t + "': put an IPv6 host in brackets" + kForm);
    }
    if (!ValidHostName(host)) {
      return InvalidArgument("address '" + t + "': '" + std::string(host) + "' is not a valid host" + kForm);
    }
    bool numeric = !host.empty();
    for (char c : host) numeric = numeric && (std::isdigit(static_cast<unsigned char>(c)) || c == '.');
    in_addr a4;
    if (numeric && inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1) {
      return InvalidArgument("address '" + t + "': '" + std::string(host) + "' is not an IPv4 address");
    }
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
    return InvalidArgument("address '" + t + "': port '" + std::string(port) + "' is not a number from 1 to 65535");
  }
  return Address{std::string(host), static_cast<uint16_t>(value)};
}

}  // namespace lifeboat
