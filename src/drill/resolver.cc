#include "drill/resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cstring>

namespace lifeboat::drill {

Result<Resolver> Resolver::Create(const std::vector<Address>& servers, Clock& clock) {
  if (servers.empty()) return Error(Code::kInvalidArgument, "the drill client needs a DNS server to ask");
  if (servers.size() > MAXNS) {
    return Error(Code::kInvalidArgument, "the drill client asks " + std::to_string(MAXNS) + " DNS servers at most");
  }
  for (const auto& s : servers) {
    in_addr a{};
    if (inet_pton(AF_INET, s.host.c_str(), &a) != 1) {
      return Error(Code::kInvalidArgument, "DNS server " + s.ToString() + ": the drill client asks IPv4 servers only");
    }
  }
  return Resolver(servers, clock);
}

Result<Resolved> Resolver::Resolve(const std::string& name) {
  auto now = clock_->Now();
  if (auto it = cache_.find(name); it != cache_.end() && now < it->second.expires) {
    Resolved r = it->second.answer;
    r.cached = true;
    return r;
  }
  auto r = Query(name);
  if (r.ok() && r->ttl > 0) cache_[name] = {*r, now + std::chrono::seconds(r->ttl)};
  return r;
}

Result<Resolved> Resolver::Query(const std::string& name) {
  struct __res_state st;
  std::memset(&st, 0, sizeof st);
  if (res_ninit(&st) != 0) return Error(Code::kInternal, "res_ninit failed");
  st.nscount = static_cast<int>(servers_.size());
  for (size_t i = 0; i < servers_.size(); ++i) {
    sockaddr_in& sa = st.nsaddr_list[i];
    std::memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(servers_[i].port);
    inet_pton(AF_INET, servers_[i].host.c_str(), &sa.sin_addr);
  }
  st.retrans = 1;  // seconds per try: the smallest libresolv takes
  st.retry = 1;
  st.options &= ~static_cast<unsigned long>(RES_DNSRCH | RES_DEFNAMES);
  unsigned char answer[4096];
  int n = res_nquery(&st, name.c_str(), ns_c_in, ns_t_a, answer, sizeof answer);
  int herr = st.res_h_errno;
  res_nclose(&st);
  if (n < 0) {
    if (herr == HOST_NOT_FOUND || herr == NO_DATA) return Error(Code::kNotFound, name + " has no A record");
    return Error(Code::kUnavailable, "no DNS server answered for " + name);
  }
  ns_msg msg;
  if (ns_initparse(answer, n, &msg) != 0) return Error(Code::kUnavailable, "an unreadable DNS answer for " + name);
  Resolved r;
  bool first = true;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) break;
    if (ns_rr_type(rr) != ns_t_a || ns_rr_rdlen(rr) != 4) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, ns_rr_rdata(rr), text, sizeof text);
    r.addresses.emplace_back(text);
    r.ttl = first ? ns_rr_ttl(rr) : std::min<uint32_t>(r.ttl, ns_rr_ttl(rr));
    first = false;
  }
  if (r.addresses.empty()) return Error(Code::kNotFound, name + " has no A record");
  return r;
}

}  // namespace lifeboat::drill
