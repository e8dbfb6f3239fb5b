// The drill client and its resolver against lifeboat's own DNS server and
// two sample applications, all in this process on loopback.
#include "drill/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "dns/server.h"
#include "drill/app.h"
#include "metrics/registry.h"
#include "plan/load.h"

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;

class DrillClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lifeboat-client-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    auto east = App::Start({(dir_ / "east").string(), "east"}, Address{"127.0.0.1", 0});
    auto west = App::Start({(dir_ / "west").string(), "west"}, Address{"127.0.0.2", 0});
    ASSERT_TRUE(east.ok() && west.ok());
    east_ = std::move(*east);
    west_ = std::move(*west);
    std::string text = R"(
name: client
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.2:1 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:)" + std::to_string(east_->port()) + R"( }
  web-west: { region: west, address: 127.0.0.2:)" + std::to_string(west_->port()) + R"( }
dns:
  zone: example.com.
  listen: [127.0.0.1:5353]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
)";
    auto loaded = plan::LoadPlanText(text, "client.yaml");
    ASSERT_TRUE(loaded.plan) << plan::FormatDiagnostics(loaded.diagnostics);
    plan_ = *loaded.plan;
    dns::DnsServerOptions o;
    o.listen = {Address{"127.0.0.1", 0}};
    o.workers = 1;
    dns_ = std::make_unique<dns::DnsServer>(o, metrics_);
    Publish();
    ASSERT_TRUE(dns_->Start().ok());
  }
  void TearDown() override {
    dns_.reset();
    east_.reset();
    west_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Publish() {
    ASSERT_TRUE(dns_->Republish(plan_, [this](const std::string& ep) { return ep != "web-east" || east_up_; }).ok());
  }
  std::optional<Address> EndpointOf(const std::string& ip) {
    for (const auto& e : plan_.endpoints) {
      if (e.address.host == ip) return e.address;
    }
    return std::nullopt;
  }

  std::filesystem::path dir_;
  std::unique_ptr<App> east_, west_;
  plan::Plan plan_;
  metrics::Registry metrics_;
  std::unique_ptr<dns::DnsServer> dns_;
  bool east_up_ = true;
};

TEST_F(DrillClientTest, TheResolverKeepsAnAnswerForItsTtlAndSkipsADeadServer) {
  FakeClock clock;
  // The first server is a port nothing listens on, as a dead region's is.
  auto resolver = Resolver::Create({Address{"127.0.0.1", 9}, dns_->bound()[0]}, clock);
  ASSERT_TRUE(resolver.ok());
  auto a = resolver->Resolve("shop.example.com.");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(a->ttl, 1u);
  EXPECT_FALSE(a->cached);
  east_up_ = false;
  Publish();
  auto b = resolver->Resolve("shop.example.com.");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->cached);
  EXPECT_EQ(b->addresses, std::vector<std::string>{"127.0.0.1"});  // still cached, as a real resolver would
  clock.Advance(1s);
  auto c = resolver->Resolve("shop.example.com.");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->cached);
  EXPECT_EQ(c->addresses, std::vector<std::string>{"127.0.0.2"});
  EXPECT_EQ(resolver->Resolve("nowhere.example.com.").error().code(), Code::kNotFound);
}

TEST_F(DrillClientTest, TheResolverSaysWhatItCannotAsk) {
  EXPECT_EQ(Resolver::Create({}).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(Resolver::Create({Address{"::1", 53}}).error().code(), Code::kInvalidArgument);
  auto none = Resolver::Create({Address{"127.0.0.1", 9}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->Resolve("shop.example.com.").error().code(), Code::kUnavailable);
}

TEST_F(DrillClientTest, WritesThroughTheNameAndFollowsItWhenTheAnswerChanges) {
  auto resolver = Resolver::Create({dns_->bound()[0]});
  ASSERT_TRUE(resolver.ok());
  Client client({"shop.example.com.", [this](const std::string& ip) { return EndpointOf(ip); }, 5ms, 1s, 1000},
                std::move(*resolver));
  client.Start();
  auto wait_for = [&](auto done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  };
  wait_for([&] { return client.acked() >= 20; });
  east_up_ = false;
  Publish();
  auto moved = [&] {
    auto attempts = client.Attempts();
    return !attempts.empty() && attempts.back().acked && attempts.back().target == EndpointOf("127.0.0.2")->ToString();
  };
  wait_for(moved);  // within the 1 s TTL
  client.Stop();
  ASSERT_TRUE(moved());
  auto attempts = client.Attempts();
  ASSERT_GE(attempts.size(), 21u);
  for (size_t i = 0; i < attempts.size(); ++i) EXPECT_EQ(attempts[i].seq, 1000 + i);
  auto in_east = ReadBack(*EndpointOf("127.0.0.1"), 2s);
  auto in_west = ReadBack(*EndpointOf("127.0.0.2"), 2s);
  ASSERT_TRUE(in_east.ok() && in_west.ok());
  EXPECT_FALSE(in_east->empty());
  EXPECT_FALSE(in_west->empty());
  std::set<uint64_t> both = *in_east;
  both.insert(in_west->begin(), in_west->end());
  auto loss = MeasureLoss(attempts, both, attempts.back().end);
  EXPECT_EQ(loss.missing, 0u);
  EXPECT_EQ(loss.acked, client.acked());
  // What west holds is exactly what was acknowledged there.
  for (const auto& a : attempts) {
    if (a.acked) {
      EXPECT_EQ(in_west->count(a.seq) + in_east->count(a.seq), 1u) << a.seq;
    }
  }
  east_.reset();
  EXPECT_FALSE(ReadBack(*EndpointOf("127.0.0.1"), 1s).ok());
}

}  // namespace
}  // namespace lifeboat::drill

namespace lifeboat::drill {
namespace {

TEST(RecordList, ReadsANumberALineAndNamesWhatIsNot) {
  EXPECT_EQ(*ParseRecordList(""), std::set<uint64_t>{});
  EXPECT_EQ(*ParseRecordList("1\n2\n30\n"), (std::set<uint64_t>{1, 2, 30}));
  EXPECT_EQ(*ParseRecordList("7"), std::set<uint64_t>{7});
  auto bad = ParseRecordList("1\nx\x01y\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "not a record number: 'x?y'");
  EXPECT_FALSE(ParseRecordList("1\n\n2\n").ok());
  EXPECT_FALSE(ParseRecordList("-1\n").ok());
  EXPECT_FALSE(ParseRecordList("99999999999999999999999\n").ok());
}

}  // namespace
}  // namespace lifeboat::drill
