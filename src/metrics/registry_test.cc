#include "metrics/registry.h"

#include <gtest/gtest.h>

#include <ctime>
#include <thread>

#include "metrics/process.h"

namespace lifeboat::metrics {
namespace {

TEST(Registry, RendersHelpTypeAndSeriesInOrder) {
  Registry r;
  auto& req = r.AddCounter("lifeboat_http_requests_total", "Admin API requests.", {"path", "code"});
  auto& up = r.AddGauge("lifeboat_up", "Whether it is up.");
  r.AddGaugeCallback("lifeboat_uptime_seconds", "Seconds since start.", {},
                     [] { return std::vector<std::pair<Labels, double>>{{{}, 1.5}}; });
  req.With({"/healthz", "200"}).Inc();
  req.With({"/healthz", "200"}).Inc();
  req.With({"/metrics", "200"}).Inc();
  up.Get().Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP lifeboat_http_requests_total Admin API requests.\n"
            "# TYPE lifeboat_http_requests_total counter\n"
            "lifeboat_http_requests_total{path=\"/healthz\",code=\"200\"} 2\n"
            "lifeboat_http_requests_total{path=\"/metrics\",code=\"200\"} 1\n"
            "# HELP lifeboat_up Whether it is up.\n"
            "# TYPE lifeboat_up gauge\n"
            "lifeboat_up 1\n"
            "# HELP lifeboat_uptime_seconds Seconds since start.\n"
            "# TYPE lifeboat_uptime_seconds gauge\n"
            "lifeboat_uptime_seconds 1.5\n");
}

TEST(Registry, HistogramsAreCumulativeWithSumAndCount) {
  Registry r;
  auto& h = r.AddHistogram("lifeboat_probe_duration_seconds", "Probe latency.", {"endpoint"}, {0.1, 1});
  h.With({"web"}).Observe(0.05);
  h.With({"web"}).Observe(0.1);  // on a bound: counts in that bucket (le)
  h.With({"web"}).Observe(3);
  EXPECT_EQ(r.Render(),
            "# HELP lifeboat_probe_duration_seconds Probe latency.\n"
            "# TYPE lifeboat_probe_duration_seconds histogram\n"
            "lifeboat_probe_duration_seconds_bucket{endpoint=\"web\",le=\"0.10000000000000001\"} 2\n"
            "lifeboat_probe_duration_seconds_bucket{endpoint=\"web\",le=\"1\"} 2\n"
            "lifeboat_probe_duration_seconds_bucket{endpoint=\"web\",le=\"+Inf\"} 3\n"
            "lifeboat_probe_duration_seconds_sum{endpoint=\"web\"} 3.1499999999999999\n"
            "lifeboat_probe_duration_seconds_count{endpoint=\"web\"} 3\n");
  Registry bare;
  bare.AddHistogram("lifeboat_x_seconds", "x", {}, {1}).Get().Observe(2);
  EXPECT_NE(bare.Render().find("lifeboat_x_seconds_bucket{le=\"+Inf\"} 1\nlifeboat_x_seconds_sum 2\n"), std::string::npos)
      << bare.Render();
}

TEST(ProcessMetrics, ReadThisProcess) {
  // Spend a few clock ticks of CPU first: a new process may have used none.
  volatile uint64_t spin = 0;
  for (auto start = std::clock(); std::clock() - start < CLOCKS_PER_SEC / 20;) spin = spin + 1;
  Registry r;
  AddProcessMetrics(r);
  std::string text = r.Render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_max_fds ", "process_start_time_seconds ", "process_virtual_memory_bytes "}) {
    auto at = text.find(std::string("\n") + name);
    ASSERT_NE(at, std::string::npos) << name;
    double v = std::stod(text.substr(at + 1 + std::string(name).size()));
    EXPECT_GT(v, 0) << name;
  }
}

TEST(Registry, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(FormatValue(0.1), "0.10000000000000001");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
}

TEST(Registry, CountsFromManyThreadsWithoutLoss) {
  Registry r;
  auto& c = r.AddCounter("lifeboat_test_total", "Test.", {"t"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.With({"x"}).Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.With({"x"}).value(), 40000);
}

}  // namespace
}  // namespace lifeboat::metrics
