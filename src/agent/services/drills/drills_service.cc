#include "agent/services/drills/drills_service.h"

#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "core/clock.h"
#include "state/keys.h"

namespace lifeboat::agent {
namespace {

using OJson = nlohmann::ordered_json;

// How many drills status shows.
constexpr size_t kRecent = 5;

class DrillsService final : public Service {
 public:
  explicit DrillsService(ServiceContext& ctx) : ctx_(ctx) {
    ctx_.metrics.AddGaugeCallback(
        "lifeboat_drill_last_passed",
        "1 when the last drill of the scenario met the plan's objectives, 0 when it did not (lifeboat drill run)",
        {"scenario"}, [this] { return Last(false); });
    ctx_.metrics.AddGaugeCallback("lifeboat_drill_last_timestamp_seconds",
                                  "When the last drill of the scenario ended, Unix seconds", {"scenario"},
                                  [this] { return Last(true); });
  }
  ~DrillsService() override { Stop(); }

  std::string_view name() const override { return "drills"; }

  Status Start() override { return Follow(); }

  void Stop() override {
    std::vector<std::unique_ptr<state::WatchHandle>> watches;
    {
      std::lock_guard lock(mu_);
      watches.swap(watches_);
    }
    watches.clear();  // waits for a callback in progress, which takes mu_
  }

  OJson StatusJson() override {
    std::lock_guard lock(mu_);
    OJson recent = OJson::array();
    for (auto it = drills_.rbegin(); it != drills_.rend() && recent.size() < kRecent; ++it) {
      const state::DrillRecord& d = it->second;
      auto figure = [](double s) { return s >= 0 ? OJson(s) : OJson(); };
      recent.push_back({{"id", d.id},
                        {"scenario", d.scenario},
                        {"verdict", d.pass ? "pass" : "fail"},
                        {"rto_seconds", figure(d.rto_seconds)},
                        {"rpo_seconds", figure(d.rpo_seconds)},
                        {"ended_at", d.ended_at},
                        {"missed", d.missed}});
    }
    return {{"recorded", drills_.size()}, {"recent", recent}};
  }

 private:
  // Reads every drill and watches for the next ones.
  Status Follow() {
    auto range = ctx_.store.List(state::keys::kDrillsPrefix);
    if (!range.ok()) return range.error();
    std::map<std::string, state::DrillRecord> all;
    for (const auto& kv : range->kvs) {
      if (auto d = Summary(kv)) all[kv.key] = std::move(*d);
    }
    auto watch = ctx_.store.Watch(state::keys::kDrillsPrefix, range->revision + 1,
                                  [this](const state::Event& e) { OnEvent(e); });
    // A watch that reported a compacted history ends by itself; its handle
    // (whose callback may be the caller) is destroyed at Stop.
    std::lock_guard lock(mu_);
    drills_ = std::move(all);
    watches_.push_back(std::move(watch));
    return Ok();
  }

  // The record without its report (kept by the store, not needed here).
  static std::optional<state::DrillRecord> Summary(const state::KeyValue& kv) {
    state::DrillRecord d;
    if (!state::Decode(kv.value, d)) {
      spdlog::warn("drills: state key {} is not a drill's record; ignored", kv.key);
      return std::nullopt;
    }
    d.report.clear();
    return d;
  }

  void OnEvent(const state::Event& e) {
    if (e.type == state::Event::Type::kCompacted) {
      // Changes were missed: read them all again and watch from there.
      if (auto st = Follow(); !st.ok()) {
        spdlog::error("drills: cannot re-read the drills after a compacted history: {}", st.error().message());
      }
      return;
    }
    if (e.type == state::Event::Type::kDelete) {
      std::lock_guard lock(mu_);
      drills_.erase(e.kv.key);
      return;
    }
    auto d = Summary(e.kv);
    if (!d) return;
    spdlog::info("drills: {} {} ({})", d->id, d->pass ? "passed" : "failed", d->pass ? "within the objectives"
                                                                              : d->missed.empty() ? "" : d->missed[0]);
    std::lock_guard lock(mu_);
    drills_[e.kv.key] = std::move(*d);
  }

  // Per scenario, its newest drill's verdict or end time.
  std::vector<std::pair<metrics::Labels, double>> Last(bool time) {
    std::lock_guard lock(mu_);
    std::map<std::string, const state::DrillRecord*> newest;
    for (const auto& [key, d] : drills_) newest[d.scenario] = &d;  // key order is time order
    std::vector<std::pair<metrics::Labels, double>> out;
    for (const auto& [scenario, d] : newest) {
      double v = d->pass ? 1 : 0;
      if (time) {
        auto at = ParseUtc(d->ended_at);
        if (!at) continue;
        v = std::chrono::duration<double>(at->time_since_epoch()).count();
      }
      out.push_back({{scenario}, v});
    }
    return out;
  }

  ServiceContext& ctx_;
  std::mutex mu_;
  std::map<std::string, state::DrillRecord> drills_;  // by key, summaries only
  std::vector<std::unique_ptr<state::WatchHandle>> watches_;  // the last is live
};

}  // namespace

Result<std::unique_ptr<Service>> MakeDrillsService(ServiceContext& ctx) {
  return std::unique_ptr<Service>(new DrillsService(ctx));
}

}  // namespace lifeboat::agent
