// libFuzzer target for DNS packets: any bytes, over UDP and TCP, must give
// either no answer or a well-formed response carrying the query's id that
// fits the transport's limit; never a crash or a sanitizer report.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dns/testing.h"
#include "dns/zone.h"
#include "plan/load.h"

namespace {

const lifeboat::dns::Snapshot& Zone() {
  static const auto snap = [] {
    auto r = lifeboat::plan::LoadPlanText(R"(
name: f
pattern: warm-standby
regions: { a: { role: primary, agent: 127.0.0.1:1 }, b: { role: standby, agent: 127.0.0.1:2 } }
endpoints: { e1: { region: a, address: 10.0.0.1:80 }, e2: { region: b, address: 10.0.0.2:80 } }
dns:
  zone: example.com.
  ns: [ns1]
  records:
    - { name: shop, type: A, policy: failover, primary: e1, secondary: e2 }
    - { name: api, type: A, policy: weighted, targets: [ { endpoint: e1, weight: 3 }, { endpoint: e2, weight: 1 } ] }
    - { name: www, type: CNAME, value: shop }
    - { name: l1, type: CNAME, value: l2 }
    - { name: l2, type: CNAME, value: l1 }
    - { name: a.b.c, type: TXT, value: [x, y, z] }
    - { name: "@", type: MX, value: "10 mail" }
)", "fuzz.yaml");
    if (!r.plan) std::abort();
    auto s = lifeboat::dns::Snapshot::Build(*r.plan->dns, *r.plan, [](const std::string&) { return true; }, 1);
    if (!s.ok()) std::abort();
    return *s;
  }();
  return *snap;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lifeboat::dns;
  static std::vector<uint8_t> out(65535);
  std::span<const uint8_t> packet(data, size);
  for (Transport t : {Transport::kUdp, Transport::kTcp}) {
    AnswerInfo info;
    size_t n = Answer(Zone(), packet, out, t, static_cast<uint32_t>(size), info);
    if (n == 0) continue;
    if (t == Transport::kUdp && n > kMaxUdpPayload) std::abort();
    auto r = testing::ParseResponse(std::vector<uint8_t>(out.begin(), out.begin() + static_cast<long>(n)));
    if (!r) std::abort();                                                // we wrote something malformed
    if (size >= 2 && r->id != static_cast<uint16_t>(data[0] << 8 | data[1])) std::abort();
    if (!(r->flags & 0x8000)) std::abort();                              // QR must be set
  }
  return 0;
}
