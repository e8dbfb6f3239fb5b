#include "core/address.h"

#include <gtest/gtest.h>

namespace lifeboat {
namespace {

TEST(Address, ParsesIPv4IPv6AndNames) {
  auto a = ParseAddress("10.0.1.10:7700");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.0.1.10");
  EXPECT_EQ(a->port, 7700);
  auto b = ParseAddress("[2001:db8::1]:53");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "2001:db8::1");
  EXPECT_TRUE(b->is_ipv6());
  EXPECT_EQ(b->ToString(), "[2001:db8::1]:53");
  EXPECT_EQ(ParseAddress("db.example.com:5432")->host, "db.example.com");
}

TEST(Address, RejectsWhatIsNotHostPort) {
  for (const char* bad : {"10.0.1.10", "10.0.1.10:", "10.0.1.10:0", "10.0.1.10:65536", "10.0.1.10:http",
                          "2001:db8::1:53", "[2001:db8::1]", "[zz::1]:53", "300.1.1.1:80", ":80",
                          "a..b:80", "[::1]53"}) {
    EXPECT_FALSE(ParseAddress(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace lifeboat
