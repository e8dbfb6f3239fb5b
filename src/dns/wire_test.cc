#include "dns/wire.h"

#include <gtest/gtest.h>

#include "dns/testing.h"

namespace lifeboat::dns {
namespace {

std::vector<uint8_t> Header(uint16_t qd, uint16_t an = 0, uint16_t ns = 0, uint16_t ar = 0) {
  return {0x12, 0x34, 0x01, 0x00, 0, static_cast<uint8_t>(qd), 0, static_cast<uint8_t>(an), 0, static_cast<uint8_t>(ns),
          0, static_cast<uint8_t>(ar)};
}

ParseOutcome Parse(const std::vector<uint8_t>& p) {
  Query q;
  return ParseQuery(p, q);
}

TEST(Wire, ParsesAPlainQuery) {
  auto p = testing::MakeQuery("Www.Example.com", type::kAAAA);
  Query q;
  ASSERT_EQ(ParseQuery(p, q), ParseOutcome::kOk);
  EXPECT_EQ(q.id, 0x1234);
  EXPECT_EQ(q.qtype, type::kAAAA);
  EXPECT_EQ(DecodeName(q.qname.span()), "Www.Example.com.");
  EXPECT_TRUE(q.rd());
  EXPECT_FALSE(q.edns);
}

TEST(Wire, CompressionPointerLoopsAreRejected) {
  auto p = Header(1);
  p.insert(p.end(), {0xC0, 12, 0, 1, 0, 1});  // a pointer to itself
  EXPECT_EQ(Parse(p), ParseOutcome::kFormErr);
  auto q = Header(1);
  q.insert(q.end(), {0xC0, 14, 0xC0, 12, 0, 1, 0, 1});  // forward pointer
  EXPECT_EQ(Parse(q), ParseOutcome::kFormErr);
}

TEST(Wire, BackwardPointersInLaterRecordsAreFine) {
  auto p = testing::MakeQuery("a.example", type::kA);
  p[7] = 1;  // ANCOUNT 1: an answer record whose owner points at the question
  p.insert(p.end(), {0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4});
  EXPECT_EQ(Parse(p), ParseOutcome::kOk);
}

TEST(Wire, LabelsOver63AndNamesOver255AreRejected) {
  auto p = Header(1);
  p.push_back(64);
  p.insert(p.end(), 64, 'a');
  p.insert(p.end(), {0, 0, 1, 0, 1});
  EXPECT_EQ(Parse(p), ParseOutcome::kFormErr);
  auto q = Header(1);
  for (int i = 0; i < 5; ++i) {
    q.push_back(60);
    q.insert(q.end(), 60, 'b');
  }
  q.insert(q.end(), {0, 0, 1, 0, 1});  // 306 bytes
  EXPECT_EQ(Parse(q), ParseOutcome::kFormErr);
  WireName n;
  EXPECT_FALSE(EncodeName(std::string(64, 'a') + ".com", n));
  EXPECT_TRUE(EncodeName(std::string(63, 'a') + ".com", n));
}

TEST(Wire, TruncatedPacketsAndCountsThatLie) {
  auto p = testing::MakeQuery("example.com", type::kA);
  for (size_t len = 12; len < p.size(); ++len) {
    EXPECT_EQ(Parse(std::vector<uint8_t>(p.begin(), p.begin() + static_cast<long>(len))), ParseOutcome::kFormErr) << len;
  }
  auto lying = p;
  lying[11] = 3;  // ARCOUNT 3
  EXPECT_EQ(Parse(lying), ParseOutcome::kFormErr);
  EXPECT_EQ(Parse(Header(0)), ParseOutcome::kFormErr);
  EXPECT_EQ(Parse(std::vector<uint8_t>(5, 0)), ParseOutcome::kDrop);
}

TEST(Wire, EdnsIsParsedAndMalformedOptIsRejected) {
  testing::QueryOptions o;
  o.edns_payload = 4096;
  auto p = testing::MakeQuery("example.com", type::kA, o);
  Query q;
  ASSERT_EQ(ParseQuery(p, q), ParseOutcome::kOk);
  ASSERT_TRUE(q.edns);
  EXPECT_EQ(q.edns->udp_payload, 4096);
  // Two OPT records.
  auto two = p;
  two[11] = 2;
  two.insert(two.end(), p.end() - 11, p.end());
  EXPECT_EQ(Parse(two), ParseOutcome::kBadEdns);
  // An option whose length runs past RDATA.
  auto bad = p;
  bad[bad.size() - 1] = 4;  // RDLENGTH 4
  bad.insert(bad.end(), {0, 10, 0, 9});
  EXPECT_EQ(Parse(bad), ParseOutcome::kBadEdns);
  // OPT not owned by the root.
  auto owner = testing::MakeQuery("example.com", type::kA);
  owner[11] = 1;
  owner.insert(owner.end(), {1, 'x', 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(Parse(owner), ParseOutcome::kBadEdns);
}

// A TSIG record (a query signed with a key this server does not know).
std::vector<uint8_t> SignedQuery(const std::vector<uint8_t>& algorithm) {
  auto p = testing::MakeQuery("example.com", type::kA);
  p[11] = 1;  // ARCOUNT
  std::vector<uint8_t> rdata = algorithm;
  rdata.insert(rdata.end(), 16, 0);  // time signed, fudge, MAC size 0, original ID, error, other length 0
  p.insert(p.end(), {3, 'k', 'e', 'y', 0, 0, 250, 0, 255, 0, 0, 0, 0});
  p.push_back(static_cast<uint8_t>(rdata.size() >> 8));
  p.push_back(static_cast<uint8_t>(rdata.size()));
  p.insert(p.end(), rdata.begin(), rdata.end());
  return p;
}

TEST(Wire, ATsigAlgorithmNameOver255BytesIsRejected) {
  std::vector<uint8_t> name;
  for (int i = 0; i < 4; ++i) {
    name.push_back(63);
    name.insert(name.end(), 63, 'a');
  }
  name.push_back(0);  // 257 bytes
  EXPECT_EQ(Parse(SignedQuery(name)), ParseOutcome::kFormErr);
  name.erase(name.begin() + 1, name.begin() + 3);  // labels of 61 and 3 x 63, and the root: 255 bytes
  name[0] = 61;
  Query q;
  ASSERT_EQ(ParseQuery(SignedQuery(name), q), ParseOutcome::kOk);
  ASSERT_TRUE(q.tsig);
  EXPECT_EQ(q.tsig->algorithm.size(), 255u);
}

TEST(Wire, OtherOpcodesAreNotImp) {
  auto p = testing::MakeQuery("example.com", type::kA);
  p[2] = 0x28;  // opcode 5 (UPDATE)
  EXPECT_EQ(Parse(p), ParseOutcome::kNotImp);
}

TEST(Wire, WriterCompressesRepeatedSuffixes) {
  uint8_t buf[512];
  MessageWriter w(buf);
  WireName a, b;
  EncodeName("www.example.com", a);
  EncodeName("mail.example.com", b);
  w.Header(1, 0x8400, 1, 1, 0, 0);
  w.Question(a, type::kA, kClassIN);
  size_t before = w.size();
  uint8_t fixed[] = {0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4};
  w.Record(b.span(), fixed);
  // "mail" (5 bytes) then a pointer (2) to "example.com" inside the question.
  EXPECT_EQ(w.size() - before, 5u + 2u + sizeof fixed);
  EXPECT_FALSE(w.overflow());
}

// Found by fuzzing: a name whose suffix repeats its first label ("\1\0\1\0")
// was compressed against its own half-written bytes, pointing into itself.
TEST(Wire, WriterNeverPointsANameIntoItself) {
  uint8_t buf[512];
  std::fill(std::begin(buf), std::end(buf), 0);  // stale zeros, as in a reused buffer
  MessageWriter w(buf);
  WireName n;
  const uint8_t raw[] = {1, 0, 1, 0, 0};
  std::copy(std::begin(raw), std::end(raw), n.bytes);
  n.size = sizeof raw;
  w.Header(1, 0x8000, 1, 0, 0, 0);
  w.Question(n, type::kA, kClassIN);
  EXPECT_EQ(w.size(), kHeaderSize + sizeof raw + 4);  // written in full, no pointer
  auto r = testing::ParseResponse(std::vector<uint8_t>(buf, buf + w.size()));
  ASSERT_TRUE(r.has_value());
}

TEST(Wire, WriterReportsOverflowInsteadOfWritingPastTheEnd) {
  uint8_t buf[20];
  MessageWriter w(buf);
  WireName a;
  EncodeName("a-rather-long-name.example.com", a);
  w.Header(1, 0, 1, 0, 0, 0);
  w.Question(a, type::kA, kClassIN);
  EXPECT_TRUE(w.overflow());
  EXPECT_LE(w.size(), sizeof buf);
}

}  // namespace
}  // namespace lifeboat::dns
