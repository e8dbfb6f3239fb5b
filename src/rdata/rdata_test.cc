#include "rdata/rdata.h"

#include <gtest/gtest.h>

namespace lifeboat::rdata {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Rdata, NamesAreAbsoluteLowerCaseAndChecked) {
  EXPECT_EQ(*AbsoluteName("Shop", "example.com."), "shop.example.com.");
  EXPECT_EQ(*AbsoluteName("@", "example.com."), "example.com.");
  EXPECT_EQ(*AbsoluteName("other.example.net.", "example.com."), "other.example.net.");
  EXPECT_EQ(*AbsoluteName("x", "."), "x.");
  EXPECT_FALSE(AbsoluteName("a..b", "example.com.").ok());
  EXPECT_FALSE(AbsoluteName("a b", "example.com.").ok());
  EXPECT_FALSE(AbsoluteName(std::string(64, 'a'), "example.com.").ok());
  EXPECT_EQ(NameToWire("ab.c."), Bytes(std::string("\x02" "ab" "\x01" "c" "\x00", 6)));
  EXPECT_EQ(NameToWire("."), Bytes(std::string("\x00", 1)));
}

// The loader and the server disagreed on CAA quoting and the TXT cap: one
// codec now normalizes and encodes, and what it normalizes it encodes.
TEST(Rdata, CaaIsTheSameQuotedOrNot) {
  auto quoted = Normalize("CAA", "0 issue \"letsencrypt.org\"", "example.com.");
  auto bare = Normalize("CAA", "0 ISSUE letsencrypt.org", "example.com.");
  ASSERT_TRUE(quoted.ok() && bare.ok());
  EXPECT_EQ(*quoted, "0 issue \"letsencrypt.org\"");
  EXPECT_EQ(*quoted, *bare);
  EXPECT_EQ(*Encode("CAA", *quoted), Bytes(std::string("\x00\x05issueletsencrypt.org", 22)));
  EXPECT_FALSE(Normalize("CAA", "0 issue \"a\"b\"", "example.com.").ok());
  EXPECT_FALSE(Normalize("CAA", "256 issue x", "example.com.").ok());
}

TEST(Rdata, TxtCapIsOneNumberAndSplitsAt255) {
  std::string at_cap(4000, 'x');
  ASSERT_TRUE(Normalize("TXT", at_cap, "example.com.").ok());
  auto wire = Encode("TXT", at_cap);
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(wire->size(), 4000u + 16u);  // 15 strings of 255 and one of 175, each with its length byte
  EXPECT_FALSE(Normalize("TXT", at_cap + "x", "example.com.").ok());
  EXPECT_FALSE(Encode("TXT", at_cap + "x").ok());
  EXPECT_EQ(*Encode("TXT", ""), Bytes(std::string("\x00", 1)));
}

TEST(Rdata, EveryTypeRoundTripsFromThePlansForm) {
  struct Case {
    const char* type;
    const char* value;
    const char* normalized;
  } cases[] = {
      {"A", "192.0.2.1", "192.0.2.1"},
      {"AAAA", "2001:db8::1", "2001:db8::1"},
      {"CNAME", "shop", "shop.example.com."},
      {"NS", "ns1.example.net.", "ns1.example.net."},
      {"MX", "10 mail", "10 mail.example.com."},
      {"SRV", "10 5 443 web", "10 5 443 web.example.com."},
  };
  for (const auto& c : cases) {
    auto n = Normalize(c.type, c.value, "example.com.");
    ASSERT_TRUE(n.ok()) << c.type << ": " << n.error().message();
    EXPECT_EQ(*n, c.normalized);
    EXPECT_TRUE(Encode(c.type, *n).ok()) << c.type;
  }
  EXPECT_EQ(*Encode("MX", "10 mail.example.com."), Bytes(std::string("\x00\x0a\x04mail\x07" "example\x03" "com\x00", 20)));
  EXPECT_FALSE(Normalize("A", "300.1.1.1", "example.com.").ok());
  EXPECT_FALSE(Normalize("MX", "mail 10", "example.com.").ok());
  EXPECT_FALSE(Normalize("SRV", "1 2 70000 x", "example.com.").ok());
  EXPECT_FALSE(Normalize("PTR", "x", "example.com.").ok());
}

TEST(Rdata, MasterFileQuotesAndEscapesText) {
  EXPECT_EQ(MasterFile("TXT", "say \"hi\" \\ now"), "\"say \\\"hi\\\" \\\\ now\"");
  EXPECT_EQ(MasterFile("TXT", std::string("a\x01", 2)), "\"a\\001\"");
  EXPECT_EQ(MasterFile("TXT", std::string(300, 'y')), "\"" + std::string(255, 'y') + "\" \"" + std::string(45, 'y') + "\"");
  EXPECT_EQ(MasterFile("MX", "10 mail.example.com."), "10 mail.example.com.");
}

TEST(Rdata, DecodeIsEncodeBackToTheMasterFile) {
  struct Case {
    const char* type;
    const char* value;
    const char* master;
  } cases[] = {
      {"A", "192.0.2.1", "192.0.2.1"},
      {"AAAA", "2001:db8::1", "2001:db8::1"},
      {"CNAME", "shop.example.com.", "shop.example.com."},
      {"MX", "10 mail.example.com.", "10 mail.example.com."},
      {"SRV", "10 5 443 web.example.com.", "10 5 443 web.example.com."},
      {"TXT", "say \"hi\"", "\"say \\\"hi\\\"\""},
      {"CAA", "0 issue \"letsencrypt.org\"", "0 issue \"letsencrypt.org\""},
  };
  for (const auto& c : cases) {
    auto wire = Encode(c.type, c.value);
    ASSERT_TRUE(wire.ok()) << c.type;
    auto back = Decode(c.type, *wire);
    ASSERT_TRUE(back.ok()) << c.type;
    EXPECT_EQ(*back, c.master) << c.type;
  }
  EXPECT_FALSE(Decode("A", Bytes("abc")).ok());
  EXPECT_FALSE(Decode("MX", Bytes(std::string("\x00\x0a\x05mail", 7))).ok());
  EXPECT_FALSE(Decode("TXT", Bytes(std::string("\x05" "ab", 3))).ok());
}

}  // namespace
}  // namespace lifeboat::rdata
