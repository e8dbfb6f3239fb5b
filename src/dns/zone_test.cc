#include "dns/zone.h"

#include <gtest/gtest.h>

#include <set>

#include "dns/testing.h"
#include "plan/load.h"

namespace lifeboat::dns {
namespace {

using testing::MakeQuery;
using testing::ParseResponse;
using testing::QueryOptions;
using testing::Response;

constexpr const char* kPlan = R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
endpoints:
  e1: { region: east, address: 10.0.0.1:80 }
  e2: { region: west, address: 10.0.0.2:80 }
  e6: { region: west, address: "[2001:db8::6]:80" }
  e7: { region: east, address: "[2001:db8::7]:80" }
dns:
  zone: example.com.
  ns: [ns1]
  soa: { minimum: 30s, ttl: 1h }
  records:
    - { name: ns1, type: A, value: 10.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: e1, secondary: e2, ttl: 20s }
    - { name: shop, type: AAAA, policy: failover, primary: e6, secondary: e7, fail_open: false }
    - { name: api, type: A, policy: weighted, targets: [ { endpoint: e1, weight: 90 }, { endpoint: e2, weight: 10 } ] }
    - { name: all, type: A, policy: multivalue, targets: [e1, e2], fail_open: false }
    - { name: www, type: CNAME, value: shop }
    - { name: ext, type: CNAME, value: other.example.net. }
    - { name: gone, type: CNAME, value: nothing-here }
    - { name: loop1, type: CNAME, value: loop2 }
    - { name: loop2, type: CNAME, value: loop1 }
    - { name: a.b.deep, type: A, value: 10.0.0.9 }
    - { name: "@", type: MX, value: "10 mail.example.com." }
    - { name: txt, type: TXT, value: "hello world" }
    - { name: _sip._tcp, type: SRV, value: "10 5 5060 sip.example.com." }
    - { name: "@", type: CAA, value: '0 issue "letsencrypt.org"' }
)";

class ZoneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = plan::LoadPlanText(kPlan, "t.yaml");
    ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
    plan_ = *r.plan;
    Rebuild();
  }
  void Rebuild() {
    auto s = Snapshot::Build(*plan_.dns, plan_, [this](const std::string& ep) { return !down_.count(ep); }, 1);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    snap_ = *s;
  }
  Response Ask(const std::vector<uint8_t>& q, Transport t = Transport::kUdp, uint32_t random = 0) {
    std::vector<uint8_t> out(65535);
    size_t n = Answer(*snap_, q, out, t, random, info_);
    EXPECT_GT(n, 0u);
    out.resize(n);
    auto r = ParseResponse(out);
    EXPECT_TRUE(r.has_value()) << "unparseable response";
    return r.value_or(Response{});
  }
  Response Ask(const std::string& name, uint16_t qtype, QueryOptions o = {}) { return Ask(MakeQuery(name, qtype, o)); }
  static std::string A(const testing::Rr& rr) {
    return std::to_string(rr.rdata[0]) + "." + std::to_string(rr.rdata[1]) + "." + std::to_string(rr.rdata[2]) + "." +
           std::to_string(rr.rdata[3]);
  }

  plan::Plan plan_;
  std::set<std::string> down_;
  std::shared_ptr<const Snapshot> snap_;
  AnswerInfo info_;
};

TEST_F(ZoneTest, FailoverAnswersPrimaryThenSecondaryThenFailsOpen) {
  Response r = Ask("shop.example.com", type::kA);
  EXPECT_EQ(r.rcode, rcode::kNoError);
  EXPECT_TRUE(r.aa());
  ASSERT_EQ(r.answer.size(), 1u);
  EXPECT_EQ(A(r.answer[0]), "10.0.0.1");
  EXPECT_EQ(r.answer[0].ttl, 20u);
  EXPECT_EQ(info_.outcome, Outcome::kPrimary);
  down_ = {"e1"};
  Rebuild();
  r = Ask("shop.example.com", type::kA);
  ASSERT_EQ(r.answer.size(), 1u);
  EXPECT_EQ(A(r.answer[0]), "10.0.0.2");
  EXPECT_EQ(info_.outcome, Outcome::kSecondary);
  down_ = {"e1", "e2"};
  Rebuild();
  r = Ask("shop.example.com", type::kA);
  EXPECT_EQ(r.answer.size(), 2u);  // fail open: both
  EXPECT_EQ(info_.outcome, Outcome::kFailOpen);
}

TEST_F(ZoneTest, FailClosedAnswersNoData) {
  down_ = {"e6", "e7"};
  Rebuild();
  Response r = Ask("shop.example.com", type::kAAAA);
  EXPECT_EQ(r.rcode, rcode::kNoError);
  EXPECT_TRUE(r.answer.empty());
  ASSERT_EQ(r.authority.size(), 1u);
  EXPECT_EQ(r.authority[0].type, type::kSOA);
  EXPECT_EQ(info_.outcome, Outcome::kNoData);
  down_ = {"e1", "e2"};
  Rebuild();
  r = Ask("all.example.com", type::kA);
  EXPECT_TRUE(r.answer.empty());
  EXPECT_EQ(info_.outcome, Outcome::kNoData);
}

// RFC 2181 section 5: an RRset is never split. It was cut to 64 records,
// without TC, over UDP and TCP.
TEST_F(ZoneTest, ALargeRRsetIsWholeOrTruncated) {
  std::string values, small_values;
  for (int i = 0; i < 80; ++i) values += std::string(i ? ", " : "") + "\"value-" + std::to_string(100 + i) + "-abcdefgh\"";
  for (int i = 0; i < 70; ++i) small_values += std::string(i ? ", " : "") + "\"" + std::to_string(10 + i) + "\"";
  auto r = plan::LoadPlanText(std::string(kPlan) + "    - { name: big, type: TXT, value: [" + values + "] }\n" +
                                  "    - { name: many, type: TXT, value: [" + small_values + "] }\n",
                              "t.yaml");
  ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  plan_ = *r.plan;
  Rebuild();
  Response tcp = Ask(MakeQuery("big.example.com", type::kTXT), Transport::kTcp);
  EXPECT_FALSE(tcp.tc());
  EXPECT_EQ(tcp.answer.size(), 80u);
  Response udp = Ask("many.example.com", type::kTXT, QueryOptions{.edns_payload = 1232});
  EXPECT_FALSE(udp.tc());
  EXPECT_EQ(udp.answer.size(), 70u);
  Response over = Ask("big.example.com", type::kTXT, QueryOptions{.edns_payload = 1232});
  EXPECT_TRUE(over.tc());
  EXPECT_TRUE(over.answer.empty()) << "never a part of the RRset";
  Response small = Ask("big.example.com", type::kTXT);  // 512 bytes without EDNS
  EXPECT_TRUE(small.tc());
  EXPECT_TRUE(small.answer.empty()) << "never a part of the RRset";
}

// RFC 3225 section 3: the DO bit of the query is copied into the response.
TEST_F(ZoneTest, TheDoBitIsCopied) {
  Response r = Ask("shop.example.com", type::kA, QueryOptions{.edns_payload = 1232, .dnssec_ok = true});
  ASSERT_TRUE(r.has_opt);
  EXPECT_TRUE(r.opt_do);
  r = Ask("shop.example.com", type::kA, QueryOptions{.edns_payload = 1232});
  ASSERT_TRUE(r.has_opt);
  EXPECT_FALSE(r.opt_do);
  r = Ask("example.net", type::kA, QueryOptions{.edns_payload = 1232, .dnssec_ok = true});  // REFUSED
  EXPECT_EQ(r.rcode, rcode::kRefused);
  EXPECT_TRUE(r.opt_do);
}

// RFC 2308 section 2.2: NODATA at the end of a CNAME chain carries the SOA.
TEST_F(ZoneTest, NoDataThroughACnameHasTheSoa) {
  Response r = Ask("www.example.com", type::kMX);  // www CNAME shop; shop has no MX
  EXPECT_EQ(r.rcode, rcode::kNoError);
  ASSERT_EQ(r.answer.size(), 1u);
  EXPECT_EQ(r.answer[0].type, type::kCNAME);
  ASSERT_EQ(r.authority.size(), 1u);
  EXPECT_EQ(r.authority[0].type, type::kSOA);
  // A chain that leaves the zone is not negative here.
  r = Ask("ext.example.com", type::kA);
  EXPECT_EQ(r.answer.size(), 1u);
  EXPECT_TRUE(r.authority.empty());
}

// RFC 6891 section 6.1.1: a FORMERR to a query with a valid OPT carries an OPT.
TEST_F(ZoneTest, FormErrKeepsAValidOpt) {
  for (uint16_t qd : {0, 2}) {
    Response r = Ask("shop.example.com", type::kA, QueryOptions{.edns_payload = 1232, .qdcount = qd});
    EXPECT_EQ(r.rcode, rcode::kFormErr) << qd;
    EXPECT_TRUE(r.has_opt) << qd;
  }
}

// Found by the differential test against NSD.
TEST_F(ZoneTest, AnyAtACnameIsTheCnameAndNsAnswersCarryGlue) {
  Response any = Ask("www.example.com", type::kANY);
  ASSERT_EQ(any.answer.size(), 1u);
  EXPECT_EQ(any.answer[0].type, type::kCNAME) << "ANY does not follow the CNAME";
  Response ns = Ask("example.com", type::kNS);
  ASSERT_EQ(ns.answer.size(), 1u);
  ASSERT_EQ(ns.additional.size(), 1u);
  EXPECT_EQ(ns.additional[0].owner, "ns1.example.com.");
  EXPECT_EQ(A(ns.additional[0]), "10.0.0.53");
}

TEST_F(ZoneTest, WeightedFollowsTheWeightsAmongHealthyTargets) {
  int first = 0;
  for (uint32_t i = 0; i < 1000; ++i) {
    Response r = Ask(MakeQuery("api.example.com", type::kA), Transport::kUdp, i * 2654435761u);
    ASSERT_EQ(r.answer.size(), 1u);
    first += A(r.answer[0]) == "10.0.0.1";
  }
  EXPECT_GT(first, 850);
  EXPECT_LT(first, 950);
  down_ = {"e1"};
  Rebuild();
  for (uint32_t i = 0; i < 50; ++i) {
    Response r = Ask(MakeQuery("api.example.com", type::kA), Transport::kUdp, i * 7919u);
    ASSERT_EQ(r.answer.size(), 1u);
    EXPECT_EQ(A(r.answer[0]), "10.0.0.2");
  }
}

TEST_F(ZoneTest, MultivalueAnswersEveryHealthyTarget) {
  EXPECT_EQ(Ask("all.example.com", type::kA).answer.size(), 2u);
  down_ = {"e2"};
  Rebuild();
  Response r = Ask("all.example.com", type::kA);
  ASSERT_EQ(r.answer.size(), 1u);
  EXPECT_EQ(A(r.answer[0]), "10.0.0.1");
}

TEST_F(ZoneTest, NxDomainAndNoDataCarryTheSoaWithTheNegativeTtl) {
  Response nx = Ask("nope.example.com", type::kA);
  EXPECT_EQ(nx.rcode, rcode::kNxDomain);
  EXPECT_TRUE(nx.aa());
  ASSERT_EQ(nx.authority.size(), 1u);
  EXPECT_EQ(nx.authority[0].type, type::kSOA);
  EXPECT_EQ(nx.authority[0].owner, "example.com.");
  EXPECT_EQ(nx.authority[0].ttl, 30u);  // min(SOA TTL 3600, minimum 30)
  Response nodata = Ask("txt.example.com", type::kA);
  EXPECT_EQ(nodata.rcode, rcode::kNoError);
  EXPECT_TRUE(nodata.answer.empty());
  ASSERT_EQ(nodata.authority.size(), 1u);
  EXPECT_EQ(nodata.authority[0].ttl, 30u);
}

TEST_F(ZoneTest, EmptyNonTerminalIsNoDataNotNxDomain) {
  for (const char* name : {"b.deep.example.com", "deep.example.com"}) {
    Response r = Ask(name, type::kA);
    EXPECT_EQ(r.rcode, rcode::kNoError) << name;
    EXPECT_TRUE(r.answer.empty());
    EXPECT_EQ(r.authority.size(), 1u);
  }
  EXPECT_EQ(Ask("x.a.b.deep.example.com", type::kA).rcode, rcode::kNxDomain);
}

TEST_F(ZoneTest, CnameIsFollowedInsideTheZone) {
  Response r = Ask("www.example.com", type::kA);
  ASSERT_EQ(r.answer.size(), 2u);
  EXPECT_EQ(r.answer[0].type, type::kCNAME);
  EXPECT_EQ(r.answer[0].owner, "www.example.com.");
  EXPECT_EQ(r.answer[1].type, type::kA);
  EXPECT_EQ(r.answer[1].owner, "shop.example.com.");
  EXPECT_EQ(A(r.answer[1]), "10.0.0.1");
  // Out of the zone: the CNAME alone, never recursion.
  Response ext = Ask("ext.example.com", type::kA);
  ASSERT_EQ(ext.answer.size(), 1u);
  EXPECT_EQ(ext.rcode, rcode::kNoError);
  // To a missing name: NXDOMAIN for the last name (RFC 6604).
  Response gone = Ask("gone.example.com", type::kA);
  EXPECT_EQ(gone.rcode, rcode::kNxDomain);
  EXPECT_EQ(gone.answer.size(), 1u);
  // Asking for the CNAME itself.
  EXPECT_EQ(Ask("www.example.com", type::kCNAME).answer.size(), 1u);
}

TEST_F(ZoneTest, CnameLoopIsBounded) {
  Response r = Ask("loop1.example.com", type::kA);
  EXPECT_EQ(r.rcode, rcode::kNoError);
  EXPECT_LE(r.answer.size(), 8u);
  EXPECT_GE(r.answer.size(), 2u);
}

TEST_F(ZoneTest, NamesMatchCaseInsensitivelyAndTheQuestionIsEchoedAsSent) {
  Response r = Ask("ShOp.ExAmPlE.cOm", type::kA);
  EXPECT_EQ(r.qname, "ShOp.ExAmPlE.cOm.");
  ASSERT_EQ(r.answer.size(), 1u);
  EXPECT_EQ(r.answer[0].owner, "ShOp.ExAmPlE.cOm.");  // compressed to the question
}

TEST_F(ZoneTest, AnswerOwnerIsCompressedToTheQuestion) {
  std::vector<uint8_t> out(512);
  auto q = MakeQuery("shop.example.com", type::kA);
  size_t n = Answer(*snap_, q, out, Transport::kUdp, 0, info_);
  ASSERT_GT(n, q.size() + 2);
  EXPECT_EQ(out[q.size()], 0xC0);
  EXPECT_EQ(out[q.size() + 1], 12);
}

TEST_F(ZoneTest, OutsideTheZoneIsRefusedWithoutAa) {
  for (const char* name : {"example.org", "com", "notexample.com"}) {
    Response r = Ask(name, type::kA);
    EXPECT_EQ(r.rcode, rcode::kRefused) << name;
    EXPECT_FALSE(r.aa());
    EXPECT_TRUE(r.answer.empty());
  }
  EXPECT_EQ(Ask("example.com", type::kAXFR).rcode, rcode::kRefused);
}

TEST_F(ZoneTest, ApexAnswersSoaNsAndMinimalAny) {
  EXPECT_EQ(Ask("example.com", type::kSOA).answer.size(), 1u);
  EXPECT_EQ(Ask("example.com", type::kNS).answer.size(), 1u);
  EXPECT_EQ(Ask("example.com", type::kMX).answer.size(), 1u);
  Response any = Ask("example.com", type::kANY);
  ASSERT_EQ(any.answer.size(), 1u);  // one RRset only (RFC 8482)
  EXPECT_EQ(Ask("example.com", 99).answer.size(), 0u);  // unknown type: NODATA
  EXPECT_EQ(Ask("example.com", 99).rcode, rcode::kNoError);
}

TEST_F(ZoneTest, EdnsIsEchoedAndCappedAndBadVersionsRefused) {
  QueryOptions o;
  o.edns_payload = 4096;
  Response r = Ask("shop.example.com", type::kA, o);
  EXPECT_TRUE(r.has_opt);
  EXPECT_EQ(r.opt_payload, 1232);
  EXPECT_FALSE(Ask("shop.example.com", type::kA).has_opt);  // none asked, none given
  o.edns_version = 1;
  Response bad = Ask("shop.example.com", type::kA, o);
  EXPECT_EQ(bad.rcode, rcode::kBadVers);
  EXPECT_TRUE(bad.answer.empty());
}

TEST_F(ZoneTest, TooBigForUdpSetsTcAndTcpGetsItAll) {
  std::string big = std::string(R"(
    - { name: big, type: TXT, value: [)");
  for (int i = 0; i < 40; ++i) big += std::string(i ? "," : "") + "\"" + std::string(60, 'x') + std::to_string(i) + "\"";
  big += "] }\n";
  auto r = plan::LoadPlanText(std::string(kPlan) + big, "t.yaml");
  ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  plan_ = *r.plan;
  Rebuild();
  Response udp = Ask("big.example.com", type::kTXT);
  EXPECT_TRUE(udp.tc());
  EXPECT_TRUE(udp.answer.empty());
  EXPECT_EQ(udp.qname, "big.example.com.");
  QueryOptions o;
  o.edns_payload = 1232;
  Response udp_edns = Ask("big.example.com", type::kTXT, o);
  EXPECT_TRUE(udp_edns.tc());
  EXPECT_TRUE(udp_edns.has_opt);  // the OPT survives truncation
  Response tcp = Ask(MakeQuery("big.example.com", type::kTXT), Transport::kTcp);
  EXPECT_FALSE(tcp.tc());
  EXPECT_EQ(tcp.answer.size(), 40u);
}

TEST_F(ZoneTest, RdataOfStaticTypesIsWireExact) {
  auto name = [](const std::string& n) {
    WireName w;
    EncodeName(n, w);
    return std::vector<uint8_t>(w.bytes, w.bytes + w.size);
  };
  Response mx = Ask("example.com", type::kMX);
  ASSERT_EQ(mx.answer.size(), 1u);
  std::vector<uint8_t> want{0, 10};
  auto mail = name("mail.example.com");
  want.insert(want.end(), mail.begin(), mail.end());
  EXPECT_EQ(mx.answer[0].rdata, want);
  Response txt = Ask("txt.example.com", type::kTXT);
  ASSERT_EQ(txt.answer.size(), 1u);
  std::vector<uint8_t> hello{11, 'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  EXPECT_EQ(txt.answer[0].rdata, hello);
  Response srv = Ask("_sip._tcp.example.com", type::kSRV);
  ASSERT_EQ(srv.answer.size(), 1u);
  std::vector<uint8_t> s{0, 10, 0, 5, 0x13, 0xc4};
  auto sip = name("sip.example.com");
  s.insert(s.end(), sip.begin(), sip.end());
  EXPECT_EQ(srv.answer[0].rdata, s);
  Response caa = Ask("example.com", type::kCAA);
  ASSERT_EQ(caa.answer.size(), 1u);
  std::string v = "letsencrypt.org";
  std::vector<uint8_t> c{0, 5, 'i', 's', 's', 'u', 'e'};
  c.insert(c.end(), v.begin(), v.end());
  EXPECT_EQ(caa.answer[0].rdata, c);
}

TEST_F(ZoneTest, OtherOpcodesAreNotImplemented) {
  QueryOptions o;
  o.flags = 2 << 11;  // STATUS
  EXPECT_EQ(Ask("shop.example.com", type::kA, o).rcode, rcode::kNotImp);
}

TEST_F(ZoneTest, ResponsesAndRuntsAreDropped) {
  std::vector<uint8_t> out(512);
  QueryOptions o;
  o.flags = 0x8000;  // a response
  EXPECT_EQ(Answer(*snap_, MakeQuery("shop.example.com", type::kA, o), out, Transport::kUdp, 0, info_), 0u);
  std::vector<uint8_t> runt(11, 0);
  EXPECT_EQ(Answer(*snap_, runt, out, Transport::kUdp, 0, info_), 0u);
}

TEST_F(ZoneTest, MalformedQueriesGetFormErrWithTheirId) {
  auto q = MakeQuery("shop.example.com", type::kA);
  auto truncated = std::vector<uint8_t>(q.begin(), q.end() - 3);
  Response r = Ask(truncated);
  EXPECT_EQ(r.rcode, rcode::kFormErr);
  EXPECT_EQ(r.id, 0x1234);
  auto trailing = q;
  trailing.push_back(0);
  EXPECT_EQ(Ask(trailing).rcode, rcode::kFormErr);
  auto two = q;
  two[5] = 2;  // QDCOUNT 2, one question present
  EXPECT_EQ(Ask(two).rcode, rcode::kFormErr);
  auto lying = q;
  lying[7] = 5;  // ANCOUNT 5, none present
  EXPECT_EQ(Ask(lying).rcode, rcode::kFormErr);
}

}  // namespace
}  // namespace lifeboat::dns
