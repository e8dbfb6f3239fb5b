// The sample application's PostgreSQL records against real servers: run by
// tests/integration/postgres_test.sh with LIFEBOAT_TEST_PG_PRIMARY and
// _STANDBY set (skipped otherwise; the unit run has no server).
#include "drill/pg_records.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;

std::optional<postgres::Target> FromEnv(const char* name) {
  const char* conninfo = std::getenv(name);
  if (conninfo == nullptr) return std::nullopt;
  const char* pw = std::getenv("LIFEBOAT_TEST_PG_PASSWORD");
  return postgres::Target{conninfo, pw ? pw : "", "lifeboat-drill-app"};
}

#define NEED_SERVERS()                                                                          \
  auto primary = FromEnv("LIFEBOAT_TEST_PG_PRIMARY");                                           \
  auto standby = FromEnv("LIFEBOAT_TEST_PG_STANDBY");                                           \
  if (!primary || !standby) GTEST_SKIP() << "LIFEBOAT_TEST_PG_PRIMARY/STANDBY are not set: "    \
                                            "tests/integration/postgres_test.sh runs these"

net::HttpRequest Req(std::string method, std::string path, std::string body = "") {
  net::HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

TEST(PgRecords, RecordsRoundTripByteForByteAndTheStandbySeesThem) {
  NEED_SERVERS();
  AppOptions app{"", "east", PostgresRecords(*primary)};
  std::string odd("a\0b\xff\n'\\x", 9);
  EXPECT_EQ(HandleAppRequest(app, Req("PUT", "/records/900000001", odd)).status, 201);
  EXPECT_EQ(HandleAppRequest(app, Req("PUT", "/records/900000002", "two")).status, 201);
  EXPECT_EQ(HandleAppRequest(app, Req("PUT", "/records/900000002", "two again")).status, 201);
  auto got = HandleAppRequest(app, Req("GET", "/records/900000001"));
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, odd);
  EXPECT_EQ(HandleAppRequest(app, Req("GET", "/records/900000002")).body, "two again");
  EXPECT_EQ(HandleAppRequest(app, Req("GET", "/records/900000003")).status, 404);

  // The standby replays them (asynchronously: wait a little).
  auto on_standby = PostgresRecords(*standby);
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    auto list = on_standby->List();
    ASSERT_TRUE(list.ok()) << list.error().message();
    seen = list->count(900000001) && list->count(900000002);
    if (!seen) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(seen);
  auto body = on_standby->Get(900000001);
  ASSERT_TRUE(body.ok()) << body.error().message();
  EXPECT_EQ(*body, odd);
}

TEST(PgRecords, TheStandbyRefusesAWriteAndTheApplicationSays503) {
  NEED_SERVERS();
  AppOptions app{"", "west", PostgresRecords(*standby)};
  auto r = HandleAppRequest(app, Req("PUT", "/records/900000010", "x"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("read-only"), std::string::npos) << r.body;
  // It goes on answering reads after the refusal.
  EXPECT_EQ(HandleAppRequest(app, Req("GET", "/records")).status, 200);
}

TEST(PgRecords, AServerThatIsNotThereIsA503NotAHang) {
  postgres::Target nowhere{"host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", "", "lifeboat-drill-app"};
  AppOptions app{"", "east", PostgresRecords(nowhere, 1s)};
  auto put = HandleAppRequest(app, Req("PUT", "/records/1", "x"));
  EXPECT_EQ(put.status, 503);
  EXPECT_NE(put.body.find("127.0.0.1:1"), std::string::npos) << put.body;
  EXPECT_EQ(HandleAppRequest(app, Req("GET", "/records")).status, 503);
}

}  // namespace
}  // namespace lifeboat::drill
