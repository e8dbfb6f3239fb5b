#include "drill/history.h"

#include <ctime>

namespace lifeboat::drill {

std::string DrillId(Clock::TimePoint started, std::string_view scenario) {
  std::time_t t = std::chrono::system_clock::to_time_t(started);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf) + "-" + std::string(scenario);
}

Status RecordDrill(state::Store& store, const state::DrillRecord& record) {
  LB_RETURN_IF_ERROR(state::keys::DrillOf(record.id).Put(store, record));
  LB_ASSIGN_OR_RETURN(auto all, store.List(state::keys::kDrillsPrefix));
  for (size_t i = 0; i + kKeptDrills < all.kvs.size(); ++i) {
    LB_RETURN_IF_ERROR(store.Delete(all.kvs[i].key));
  }
  return Ok();
}

Result<std::vector<state::DrillRecord>> ListDrills(state::Store& store) {
  LB_ASSIGN_OR_RETURN(auto all, store.List(state::keys::kDrillsPrefix));
  std::vector<state::DrillRecord> out;
  for (const auto& kv : all.kvs) {
    state::DrillRecord d;
    if (!state::Decode(kv.value, d)) return DataLoss("state key " + kv.key + " is not a drill's record");
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace lifeboat::drill
