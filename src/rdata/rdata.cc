#include "rdata/rdata.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <sstream>

#include "core/strings.h"

namespace lifeboat::rdata {
namespace {

constexpr size_t kMaxTxt = 4000;

void Put16(std::vector<uint8_t>& v, unsigned x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}

bool ParseUint(std::string_view s, unsigned max, unsigned& out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max) return false;
  out = v;
  return true;
}

std::vector<std::string> Fields(std::string_view s) {
  std::istringstream in{std::string(s)};
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// CAA: "flags tag value", the value quoted or not; returns flags, tag, value.
bool SplitCaa(std::string_view v, unsigned& flags, std::string& tag, std::string& value) {
  auto f = Fields(v);
  if (f.size() < 3 || !ParseUint(f[0], 255, flags)) return false;
  tag = f[1];
  size_t at = v.find(tag, v.find(f[0]) + f[0].size()) + tag.size();
  std::string_view rest = v.substr(at);
  size_t a = rest.find_first_not_of(' ');
  size_t b = rest.find_last_not_of(' ');
  rest = a == std::string_view::npos ? std::string_view() : rest.substr(a, b - a + 1);
  if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') rest = rest.substr(1, rest.size() - 2);
  value = std::string(rest);
  return true;
}

}  // namespace

bool Supported(std::string_view t) {
  return t == "A" || t == "AAAA" || t == "CNAME" || t == "NS" || t == "TXT" || t == "MX" || t == "SRV" || t == "CAA";
}

Result<std::string> AbsoluteName(std::string_view name, std::string_view origin) {
  std::string n = ToLower(name);
  if (n == "@") return std::string(origin);
  if (n.empty()) return InvalidArgument("empty name");
  if (n.back() != '.') n += "." + std::string(origin);
  if (n == ".") return n;
  if (n.size() > 1 && n.substr(n.size() - 2) == "..") n.pop_back();  // origin "." after a relative name
  size_t wire = 1, label = 0;
  for (char c : n) {
    if (c == '.') {
      if (label == 0) return InvalidArgument("'" + std::string(name) + "' has an empty label");
      wire += label + 1;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) {
      return InvalidArgument("'" + std::string(name) + "' has the character " + Quote(std::string(1, c)) +
                             "; names use letters, digits, '-' and '_'");
    }
    if (++label > 63) return InvalidArgument("'" + std::string(name) + "' has a label longer than 63 bytes");
  }
  if (wire > 255) return InvalidArgument("'" + std::string(name) + "' is longer than 255 bytes");
  return n;
}

std::vector<uint8_t> NameToWire(std::string_view absolute) {
  std::vector<uint8_t> out;
  size_t start = 0;
  while (start < absolute.size()) {
    size_t dot = absolute.find('.', start);
    if (dot == std::string_view::npos) dot = absolute.size();
    if (dot > start) {
      out.push_back(static_cast<uint8_t>(dot - start));
      for (size_t i = start; i < dot; ++i) out.push_back(static_cast<uint8_t>(absolute[i]));
    }
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

Result<std::string> Normalize(std::string_view type, std::string_view v, std::string_view origin) {
  if (type == "A") {
    in_addr a;
    if (inet_pton(AF_INET, std::string(v).c_str(), &a) != 1) return InvalidArgument("'" + std::string(v) + "' is not an IPv4 address");
    return std::string(v);
  }
  if (type == "AAAA") {
    in6_addr a;
    if (inet_pton(AF_INET6, std::string(v).c_str(), &a) != 1) return InvalidArgument("'" + std::string(v) + "' is not an IPv6 address");
    return std::string(v);
  }
  if (type == "CNAME" || type == "NS") return AbsoluteName(v, origin);
  if (type == "TXT") {
    if (v.size() > kMaxTxt) return InvalidArgument("the text is longer than " + std::to_string(kMaxTxt) + " bytes");
    return std::string(v);
  }
  auto f = Fields(v);
  unsigned n;
  if (type == "MX") {
    if (f.size() != 2 || !ParseUint(f[0], 65535, n)) {
      return InvalidArgument("'" + std::string(v) + "' is not 'preference exchange', e.g. '10 mail.example.com.'");
    }
    LB_ASSIGN_OR_RETURN(std::string host, AbsoluteName(f[1], origin));
    return std::to_string(n) + " " + host;
  }
  if (type == "SRV") {
    unsigned a, b, c;
    if (f.size() != 4 || !ParseUint(f[0], 65535, a) || !ParseUint(f[1], 65535, b) || !ParseUint(f[2], 65535, c)) {
      return InvalidArgument("'" + std::string(v) + "' is not 'priority weight port target', e.g. '10 5 443 web.example.com.'");
    }
    LB_ASSIGN_OR_RETURN(std::string host, AbsoluteName(f[3], origin));
    return std::to_string(a) + " " + std::to_string(b) + " " + std::to_string(c) + " " + host;
  }
  if (type == "CAA") {
    unsigned flags;
    std::string tag, value;
    if (!SplitCaa(v, flags, tag, value)) {
      return InvalidArgument("'" + std::string(v) + "' is not 'flags tag value', e.g. '0 issue \"letsencrypt.org\"'");
    }
    if (tag.empty() || tag.size() > 15) return InvalidArgument("CAA tag '" + tag + "' is not 1-15 characters");
    for (char c : tag) {
      if (!std::isalnum(static_cast<unsigned char>(c))) return InvalidArgument("CAA tag '" + tag + "' is not alphanumeric");
    }
    for (unsigned char c : value) {
      if (c < 0x20 || c > 0x7e || c == '"') {
        return InvalidArgument("CAA value '" + value + "' has a quote or a byte outside printable ASCII");
      }
    }
    return std::to_string(flags) + " " + ToLower(tag) + " \"" + value + "\"";
  }
  return InvalidArgument("unsupported type " + std::string(type));
}

Result<std::vector<uint8_t>> Encode(std::string_view type, std::string_view v) {
  std::vector<uint8_t> r;
  if (type == "A" || type == "AAAA") {
    uint8_t buf[16];
    int family = type == "A" ? AF_INET : AF_INET6;
    if (inet_pton(family, std::string(v).c_str(), buf) != 1) return InvalidArgument("bad address " + std::string(v));
    r.assign(buf, buf + (type == "A" ? 4 : 16));
    return r;
  }
  if (type == "CNAME" || type == "NS") {
    LB_ASSIGN_OR_RETURN(std::string n, AbsoluteName(v, "."));
    return NameToWire(n);
  }
  if (type == "TXT") {
    if (v.size() > kMaxTxt) return InvalidArgument("TXT longer than " + std::to_string(kMaxTxt) + " bytes");
    // Character-strings of at most 255 bytes each; an empty text is one empty string.
    size_t i = 0;
    do {
      size_t n = std::min<size_t>(255, v.size() - i);
      r.push_back(static_cast<uint8_t>(n));
      r.insert(r.end(), v.begin() + static_cast<long>(i), v.begin() + static_cast<long>(i + n));
      i += n;
    } while (i < v.size());
    return r;
  }
  auto f = Fields(v);
  if (type == "MX" || type == "SRV") {
    size_t numbers = type == "MX" ? 1 : 3;
    if (f.size() != numbers + 1) return InvalidArgument("bad " + std::string(type) + " value " + std::string(v));
    for (size_t i = 0; i < numbers; ++i) {
      unsigned x;
      if (!ParseUint(f[i], 65535, x)) return InvalidArgument("bad " + std::string(type) + " value " + std::string(v));
      Put16(r, x);
    }
    LB_ASSIGN_OR_RETURN(std::string host, AbsoluteName(f[numbers], "."));
    auto wire = NameToWire(host);
    r.insert(r.end(), wire.begin(), wire.end());
    return r;
  }
  if (type == "CAA") {
    unsigned flags;
    std::string tag, value;
    if (!SplitCaa(v, flags, tag, value)) return InvalidArgument("bad CAA value " + std::string(v));
    r.push_back(static_cast<uint8_t>(flags));
    r.push_back(static_cast<uint8_t>(tag.size()));
    r.insert(r.end(), tag.begin(), tag.end());
    r.insert(r.end(), value.begin(), value.end());
    return r;
  }
  return InvalidArgument("unsupported record type " + std::string(type));
}

std::string MasterFile(std::string_view type, std::string_view v) {
  if (type != "TXT") return std::string(v);
  std::string out;
  size_t i = 0;
  do {
    size_t n = std::min<size_t>(255, v.size() - i);
    if (!out.empty()) out += ' ';
    out += '"';
    for (unsigned char c : v.substr(i, n)) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20 || c > 0x7e) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\%03u", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
    i += n;
  } while (i < v.size());
  return out;
}

namespace {

// An uncompressed name at `at`; advances it.
bool ReadName(std::span<const uint8_t> r, size_t& at, std::string& out) {
  out.clear();
  for (;;) {
    if (at >= r.size()) return false;
    uint8_t len = r[at++];
    if (len == 0) break;
    if (len > 63 || at + len > r.size()) return false;
    out.append(reinterpret_cast<const char*>(r.data() + at), len);
    out += '.';
    at += len;
  }
  if (out.empty()) out = ".";
  return true;
}

bool Read16(std::span<const uint8_t> r, size_t& at, unsigned& out) {
  if (at + 2 > r.size()) return false;
  out = static_cast<unsigned>(r[at] << 8 | r[at + 1]);
  at += 2;
  return true;
}

}  // namespace

Result<std::string> Decode(std::string_view type, std::span<const uint8_t> r) {
  auto bad = [&] { return InvalidArgument("malformed " + std::string(type) + " RDATA"); };
  size_t at = 0;
  if (type == "A" || type == "AAAA") {
    char buf[INET6_ADDRSTRLEN];
    int family = type == "A" ? AF_INET : AF_INET6;
    if (r.size() != (type == "A" ? 4u : 16u) || !inet_ntop(family, r.data(), buf, sizeof buf)) return bad();
    return std::string(buf);
  }
  if (type == "CNAME" || type == "NS") {
    std::string n;
    if (!ReadName(r, at, n) || at != r.size()) return bad();
    return n;
  }
  if (type == "MX" || type == "SRV") {
    std::string out;
    for (int i = 0; i < (type == "MX" ? 1 : 3); ++i) {
      unsigned x;
      if (!Read16(r, at, x)) return bad();
      out += std::to_string(x) + " ";
    }
    std::string n;
    if (!ReadName(r, at, n) || at != r.size()) return bad();
    return out + n;
  }
  if (type == "TXT") {
    std::string text;
    while (at < r.size()) {
      size_t n = r[at++];
      if (at + n > r.size()) return bad();
      text.append(reinterpret_cast<const char*>(r.data() + at), n);
      at += n;
    }
    return MasterFile("TXT", text);
  }
  if (type == "CAA") {
    if (r.size() < 2 || 2u + r[1] > r.size()) return bad();
    std::string tag(reinterpret_cast<const char*>(r.data() + 2), r[1]);
    std::string value(reinterpret_cast<const char*>(r.data() + 2 + r[1]), r.size() - 2 - r[1]);
    return std::to_string(r[0]) + " " + tag + " \"" + value + "\"";
  }
  if (type == "SOA") {
    std::string mname, rname;
    if (!ReadName(r, at, mname) || !ReadName(r, at, rname) || at + 20 != r.size()) return bad();
    std::string out = mname + " " + rname;
    for (int i = 0; i < 5; ++i, at += 4) {
      uint32_t x = static_cast<uint32_t>(r[at]) << 24 | static_cast<uint32_t>(r[at + 1]) << 16 |
                   static_cast<uint32_t>(r[at + 2]) << 8 | r[at + 3];
      out += " " + std::to_string(x);
    }
    return out;
  }
  return InvalidArgument("unsupported record type " + std::string(type));
}

}  // namespace lifeboat::rdata
