// The DNS record data a plan can hold, in one codec below the plan loader
// (which validates and normalizes values) and the DNS server (which encodes
// them), as libknot sits below knotd: the two had their own copies of the
// grammar, and they disagreed (TXT length, CAA quoting). Also writes values
// in RFC 1035 master-file form (`lifeboat dns zone`).
//
// Presentation forms of a plan (values of `dns.records[].value`):
//   A      192.0.2.1
//   AAAA   2001:db8::1
//   CNAME  shop            (relative to the zone, or absolute with a dot)
//   NS     ns1
//   TXT    any text, up to 4000 bytes; sent as 255-byte character-strings
//   MX     10 mail         (preference exchange)
//   SRV    10 5 443 web    (priority weight port target)
//   CAA    0 issue "letsencrypt.org"   (flags tag value; the quotes are optional)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace lifeboat::rdata {

// The types a plan's records can have (NS and SOA come from the dns section).
bool Supported(std::string_view type);

// `name` made absolute and lower case: "@" is `origin`, a name without a
// trailing dot is relative to it. Letters, digits, '-' and '_'; labels of
// 1-63 bytes, 255 bytes on the wire. InvalidArgument saying what is wrong.
Result<std::string> AbsoluteName(std::string_view name, std::string_view origin);

// Wire form of an absolute, valid name (as AbsoluteName returns).
std::vector<uint8_t> NameToWire(std::string_view absolute);

// A value checked and normalized: names absolute, CAA's value quoted, other
// fields as given. InvalidArgument with a message fit for the plan's
// diagnostics ("'x' is not an IPv4 address").
Result<std::string> Normalize(std::string_view type, std::string_view value, std::string_view origin);

// The RDATA of a value that Normalize returned (or an address, for A and
// AAAA). InvalidArgument only for values Normalize would refuse.
Result<std::vector<uint8_t>> Encode(std::string_view type, std::string_view normalized);

// The value in master-file form: TXT as quoted, escaped character-strings,
// other types as normalized.
std::string MasterFile(std::string_view type, std::string_view normalized);

// Wire RDATA (names uncompressed) back to master-file form, for the types
// above and SOA. InvalidArgument for RDATA that does not parse.
Result<std::string> Decode(std::string_view type, std::span<const uint8_t> rdata);

}  // namespace lifeboat::rdata
