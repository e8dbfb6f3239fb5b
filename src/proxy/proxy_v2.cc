#include "proxy/proxy_v2.h"

#include <netinet/in.h>

#include <cstring>

namespace lifeboat::proxy {

namespace {
constexpr uint8_t kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void PutBytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
}  // namespace

std::vector<uint8_t> ProxyV2Header(const sockaddr_storage& client, const sockaddr_storage& local, bool stream) {
  std::vector<uint8_t> out(std::begin(kSignature), std::end(kSignature));
  const uint8_t transport = stream ? 0x1 : 0x2;
  if (client.ss_family == AF_INET && local.ss_family == AF_INET) {
    const auto& c = reinterpret_cast<const sockaddr_in&>(client);
    const auto& l = reinterpret_cast<const sockaddr_in&>(local);
    out.push_back(0x21);  // version 2, PROXY
    out.push_back(static_cast<uint8_t>(0x10 | transport));
    Put16(out, 12);
    PutBytes(out, &c.sin_addr, 4);
    PutBytes(out, &l.sin_addr, 4);
    PutBytes(out, &c.sin_port, 2);  // already in network order
    PutBytes(out, &l.sin_port, 2);
  } else if (client.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
    const auto& c = reinterpret_cast<const sockaddr_in6&>(client);
    const auto& l = reinterpret_cast<const sockaddr_in6&>(local);
    out.push_back(0x21);
    out.push_back(static_cast<uint8_t>(0x20 | transport));
    Put16(out, 36);
    PutBytes(out, &c.sin6_addr, 16);
    PutBytes(out, &l.sin6_addr, 16);
    PutBytes(out, &c.sin6_port, 2);
    PutBytes(out, &l.sin6_port, 2);
  } else {
    out.push_back(0x20);  // version 2, LOCAL
    out.push_back(0x00);  // UNSPEC
    Put16(out, 0);
  }
  return out;
}

}  // namespace lifeboat::proxy
