// The PROXY protocol version 2 header (haproxy.org/download/2.6/doc/proxy-protocol.txt,
// section 2.2) that a listener with proxy_protocol: v2 sends to the endpoint
// before the client's first byte, so that the application sees the client's
// address.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace lifeboat::proxy {

// The header for a connection from `client` to `local` (the listener's
// address as the client reached it), both AF_INET or both AF_INET6; a mixed
// or other pair gives the LOCAL command with no addresses, which the
// receiver takes as "no client address known". `stream`: TCP, else UDP.
std::vector<uint8_t> ProxyV2Header(const sockaddr_storage& client, const sockaddr_storage& local, bool stream = true);

}  // namespace lifeboat::proxy
