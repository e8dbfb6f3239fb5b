// Network addresses as the plan writes them: "10.0.1.10:7700",
// "[2001:db8::1]:53", "db.example.com:5432".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace lifeboat {

struct Address {
  std::string host;  // IPv4 literal, IPv6 literal (no brackets) or a DNS name
  uint16_t port = 0;

  bool is_ipv6() const { return host.find(':') != std::string::npos; }
  // "host:port", with brackets around an IPv6 host.
  std::string ToString() const;
  friend bool operator==(const Address&, const Address&) = default;
};

// Parses host:port. The port is required (1-65535); IPv6 hosts need brackets.
Result<Address> ParseAddress(std::string_view text);

}  // namespace lifeboat
