// Test helpers for dns/: building query packets and reading responses.
// Used by the unit tests and the fuzz target; not part of the server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dns/wire.h"

namespace lifeboat::dns::testing {

struct QueryOptions {
  uint16_t id = 0x1234;
  uint16_t flags = 0x0100;  // RD
  std::optional<uint16_t> edns_payload;  // adds an OPT record
  uint8_t edns_version = 0;
  bool dnssec_ok = false;   // the DO bit of the OPT record
  uint16_t qdcount = 1;     // other counts send that many copies of the question (0: none)
};

std::vector<uint8_t> MakeQuery(const std::string& name, uint16_t qtype, QueryOptions o = {});

struct Rr {
  std::string owner;  // presentation, as sent (case kept)
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::vector<uint8_t> rdata;
};

struct Response {
  uint16_t id = 0, flags = 0;
  uint16_t rcode = 0;  // including the extended bits from OPT
  std::string qname;
  uint16_t qtype = 0;
  std::vector<Rr> answer, authority, additional;
  bool has_opt = false;
  uint16_t opt_payload = 0;
  bool opt_do = false;
  bool aa() const { return flags & 0x0400; }
  bool tc() const { return flags & 0x0200; }
};

// Parses a response (decompressing names); nullopt when malformed.
std::optional<Response> ParseResponse(const std::vector<uint8_t>& bytes);

}  // namespace lifeboat::dns::testing
