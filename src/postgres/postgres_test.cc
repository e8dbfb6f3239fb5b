// The pure parts always; the parts that talk to a server when
// LIFEBOAT_TEST_PG_PRIMARY and LIFEBOAT_TEST_PG_STANDBY hold the connection
// strings of a primary and its streaming standby, which
// tests/integration/postgres_test.sh starts (PostgreSQL 15 from Debian).
#include <gtest/gtest.h>

#include <cstdlib>

#include "postgres/conn.h"
#include "postgres/control.h"
#include "postgres/inspect.h"
#include "postgres/instance.h"
#include "postgres/local.h"

namespace lifeboat::postgres {
namespace {

using namespace std::chrono_literals;

TEST(Lsn, ParsesAndFormatsPostgresNotation) {
  EXPECT_EQ(ParseLsn("0/0"), 0u);
  EXPECT_EQ(ParseLsn("16/B374D848"), (0x16ull << 32) | 0xB374D848ull);
  EXPECT_EQ(FormatLsn((0x16ull << 32) | 0xB374D848ull), "16/B374D848");
  EXPECT_EQ(FormatLsn(*ParseLsn("0/3000148")), "0/3000148");
  for (const char* bad : {"", "/", "1/", "/1", "x/1", "1/2/3", "1 /2", "100000000/0"}) {
    EXPECT_FALSE(ParseLsn(bad).has_value()) << bad;
  }
}

TEST(Describe, NamesTheServerButNeverThePassword) {
  EXPECT_EQ(Describe("host=10.0.1.30 port=5433 dbname=orders password=hunter2 user=app"), "10.0.1.30:5433/orders");
  EXPECT_EQ(Describe("postgresql://app:hunter2@db.example:6432/orders"), "db.example:6432/orders");
  EXPECT_EQ(Describe("dbname=orders"), "localhost/orders");
  EXPECT_EQ(Describe("host=/run/postgresql"), "socket /run/postgresql");
  EXPECT_EQ(Describe("host='unterminated"), "(an unreadable connection string)");
}

TEST(StandbyName, IsAValidIdentifierForAnyRegionName) {
  EXPECT_EQ(StandbyName("us-east"), "lifeboat_us_east");
  EXPECT_EQ(StandbyName("EU.Central-1"), "lifeboat_eu_central_1");
}

TEST(ConninfoValue, QuotesWhatLibpqReadsBack) {
  std::string pw = "it's a \\ secret";
  std::string info = "host=x password=" + ConninfoValue(pw);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(info.c_str(), &err);
  ASSERT_NE(opts, nullptr) << (err ? err : "");
  std::string got;
  for (auto* o = opts; o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val) got = o->val;
  }
  PQconninfoFree(opts);
  EXPECT_EQ(got, pw);
}

plan::Database ThreeRegions(plan::DbMode mode) {
  plan::Database db;
  db.name = "orders";
  db.mode = mode;
  db.instances = {{"east", "host=a"}, {"west", "host=b"}, {"north", "host=c"}};
  return db;
}

TEST(SyncStandbyNames, AnyOneOtherRegionInSyncModeAndNoneOtherwise) {
  EXPECT_EQ(SyncStandbyNames(ThreeRegions(plan::DbMode::kSync), "east", false),
            "ANY 1 (\"lifeboat_north\", \"lifeboat_west\")");
  EXPECT_EQ(SyncStandbyNames(ThreeRegions(plan::DbMode::kSync), "east", true), "");
  EXPECT_EQ(SyncStandbyNames(ThreeRegions(plan::DbMode::kAsync), "east", false), "");
}

TEST(LagOf, BytesFromBothSidesAndSecondsFromThePrimarysOwnMeasure) {
  ServerState primary, standby;
  primary.flush_lsn = 1000;
  standby.in_recovery = true;
  standby.replay_lsn = 400;
  standby.receive_lsn = 900;
  standby.last_replay_age_seconds = 30;  // an idle primary makes this large
  Replica row;
  row.application_name = "lifeboat_west";
  row.replay_lag_seconds = 0.25;
  primary.replicas.push_back(row);
  Lag lag = LagOf(&primary, standby, "lifeboat_west");
  EXPECT_EQ(lag.bytes, 600u);
  EXPECT_DOUBLE_EQ(*lag.seconds, 0.25);
  // Caught up: zero, whatever the age of the last transaction.
  standby.replay_lsn = 1000;
  lag = LagOf(&primary, standby, "lifeboat_west");
  EXPECT_EQ(lag.bytes, 0u);
  EXPECT_DOUBLE_EQ(*lag.seconds, 0);
  // The primary gone: bytes unknown; seconds zero when all received is replayed.
  standby.receive_lsn = 1000;
  lag = LagOf(nullptr, standby, "lifeboat_west");
  EXPECT_FALSE(lag.bytes.has_value());
  EXPECT_DOUBLE_EQ(*lag.seconds, 0);
  standby.replay_lsn = 800;
  lag = LagOf(nullptr, standby, "lifeboat_west");
  EXPECT_DOUBLE_EQ(*lag.seconds, 30);
}

TEST(PasswordOf, TheEnvironmentOverridesTheFileAndAMissingFileIsNamed) {
  plan::Database db;
  db.name = "order-db";
  EXPECT_EQ(PasswordVariable(db), "LIFEBOAT_DB_ORDER_DB_PASSWORD");
  ::unsetenv("LIFEBOAT_DB_ORDER_DB_PASSWORD");
  EXPECT_EQ(*PasswordOf(db), "");
  db.password_file = "/nonexistent/pw";
  auto r = PasswordOf(db);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/pw"), std::string::npos);
  ::setenv("LIFEBOAT_DB_ORDER_DB_PASSWORD", "from-env", 1);
  EXPECT_EQ(*PasswordOf(db), "from-env");
  ::unsetenv("LIFEBOAT_DB_ORDER_DB_PASSWORD");
}

TEST(Conn, ANonListeningPortIsUnavailableAndNamesTheServer) {
  auto c = Conn::Open({"host=127.0.0.1 port=1 dbname=x connect_timeout=2", "secret", "lifeboat"}, 3s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Code::kUnavailable) << c.error().message();
  EXPECT_NE(c.error().message().find("127.0.0.1:1/x"), std::string::npos) << c.error().message();
  EXPECT_EQ(c.error().message().find("secret"), std::string::npos);
}

// --- against real servers -------------------------------------------------

struct Servers {
  std::string primary, standby;
};
std::optional<Servers> FromEnv() {
  const char* p = std::getenv("LIFEBOAT_TEST_PG_PRIMARY");
  const char* s = std::getenv("LIFEBOAT_TEST_PG_STANDBY");
  if (p == nullptr || s == nullptr) return std::nullopt;
  return Servers{p, s};
}
#define NEED_SERVERS()                                                                                   \
  auto servers = FromEnv();                                                                              \
  if (!servers) GTEST_SKIP() << "LIFEBOAT_TEST_PG_PRIMARY/STANDBY are not set: "                         \
                                "tests/integration/postgres_test.sh runs these against PostgreSQL 15"; \
  const char* pw = std::getenv("LIFEBOAT_TEST_PG_PASSWORD");                                             \
  const std::string password = pw ? pw : ""

TEST(RealServer, InspectTellsPrimaryFromStandbyAndSeesTheStream) {
  NEED_SERVERS();
  auto p = Conn::Open({servers->primary, password, "lifeboat-test"}, 5s);
  ASSERT_TRUE(p.ok()) << p.error().message();
  auto ps = Inspect(*p);
  ASSERT_TRUE(ps.ok()) << ps.error().message();
  EXPECT_FALSE(ps->in_recovery);
  EXPECT_FALSE(ps->fenced);
  EXPECT_TRUE(ps->version.starts_with("15")) << ps->version;
  ASSERT_TRUE(ps->flush_lsn.has_value());
  ASSERT_EQ(ps->replicas.size(), 1u);
  EXPECT_EQ(ps->replicas[0].state, "streaming");

  auto s = Conn::Open({servers->standby, password, "lifeboat-test"}, 5s);
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto ss = Inspect(*s);
  ASSERT_TRUE(ss.ok()) << ss.error().message();
  EXPECT_TRUE(ss->in_recovery);
  EXPECT_EQ(ss->upstream_status, "streaming");
  EXPECT_EQ(ss->system_identifier, ps->system_identifier);
  EXPECT_FALSE(ss->current_lsn.has_value());
  ASSERT_TRUE(ss->replay_lsn.has_value());
  EXPECT_EQ(ps->replicas[0].application_name, "lifeboat_west");
}

TEST(RealServer, AWriteOnTheStandbyIsARefusalWithItsSqlstate) {
  NEED_SERVERS();
  auto s = Conn::Open({servers->standby, password, "lifeboat-test"}, 5s);
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto r = s->Exec("CREATE TABLE lifeboat_never (x int)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition) << r.error().message();
  EXPECT_EQ(s->last_error().sqlstate, "25006");
  EXPECT_TRUE(s->Exec("SELECT 1").ok());  // the connection lives on
}

TEST(RealServer, AStatementPastItsDeadlineCostsTheDeadlineAndTheConnection) {
  NEED_SERVERS();
  auto c = Conn::Open({servers->primary, password, "lifeboat-test"}, 5s);
  ASSERT_TRUE(c.ok()) << c.error().message();
  auto start = std::chrono::steady_clock::now();
  auto r = c->Query("SELECT pg_sleep(30)", {}, 300ms);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kDeadlineExceeded);
  EXPECT_LT(took, 5s);
  EXPECT_FALSE(c->ok());
  EXPECT_EQ(c->Query("SELECT 1").error().code(), Code::kUnavailable);
}

TEST(RealServer, AWrongPasswordIsUnauthenticated) {
  NEED_SERVERS();
  if (password.empty()) GTEST_SKIP() << "the servers trust every login";
  auto c = Conn::Open({servers->primary, password + "-wrong", "lifeboat-test"}, 5s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Code::kUnauthenticated) << c.error().message();
  EXPECT_EQ(c.error().message().find(password), std::string::npos);
}

TEST(RealServer, ParametersTravelAsValuesNotAsSql) {
  NEED_SERVERS();
  auto c = Conn::Open({servers->primary, password, "lifeboat-test"}, 5s);
  ASSERT_TRUE(c.ok()) << c.error().message();
  auto r = c->Query("SELECT $1::text AS v, NULL::text AS n", {"'; DROP TABLE x; --"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->At(0, "v"), "'; DROP TABLE x; --");
  EXPECT_FALSE(r->At(0, "n").has_value());
  EXPECT_FALSE(r->At(0, "nope").has_value());
}

}  // namespace
}  // namespace lifeboat::postgres
