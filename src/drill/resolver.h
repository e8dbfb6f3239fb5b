// The drill client's DNS resolver (what RFC 1034 calls a stub resolver): asks the given DNS servers for a
// name's A records through glibc's libresolv (res_nquery on a private
// resolver state, so /etc/resolv.conf is not involved) and keeps each answer
// for its TTL, as the resolver of a real client would. Servers are asked in
// order; one that refuses the connection (a dead region's) is skipped at once.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/clock.h"
#include "core/result.h"

namespace lifeboat::drill {

struct Resolved {
  std::vector<std::string> addresses;  // "127.0.0.2"
  uint32_t ttl = 0;                    // seconds, the smallest of the answer's
  bool cached = false;                 // from the cache, not the wire
};

class Resolver {
 public:
  // IPv4 servers only (libresolv's private state takes no others); at most three.
  static Result<Resolver> Create(const std::vector<Address>& servers, Clock& clock = Clock::Real());

  // NotFound for NXDOMAIN or no A record; Unavailable when no server answers.
  Result<Resolved> Resolve(const std::string& name);

 private:
  Resolver(std::vector<Address> servers, Clock& clock) : servers_(std::move(servers)), clock_(&clock) {}
  Result<Resolved> Query(const std::string& name);

  struct Entry {
    Resolved answer;
    Clock::TimePoint expires;
  };
  std::vector<Address> servers_;
  Clock* clock_;
  std::map<std::string, Entry> cache_;
};

}  // namespace lifeboat::drill
