// Feeds untrusted bytes to the parsers of what the state store returns: a
// line of etcd's watch stream (the v3 gateway: events with base64 keys and
// values, revisions as strings), and a stored value of every key type (other
// regions' agents write them). Each must refuse or succeed; what the stream
// parser accepts keeps every key below the store's prefix.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "state/etcd_store.h"
#include "state/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto m = lifeboat::state::EtcdStore::ParseWatchLine(line, "/lifeboat/");
  if (m.ok()) {
    for (const auto& e : m->events) {
      if (e.type == lifeboat::state::Event::Type::kCompacted) std::abort();  // never from a stream line
    }
  }
  using namespace lifeboat::state;
  {
    VolumeRole v;
    (void)Decode(line, v);
  }
  {
    RoutingControl v;
    (void)Decode(line, v);
  }
  {
    LastBackup v;
    (void)Decode(line, v);
  }
  {
    PrimaryRecord v;
    if (Decode(line, v) && (v.region.empty() || v.epoch == 0)) std::abort();  // refused by contract
  }
  {
    FailoverRun v;
    (void)Decode(line, v);
  }
  {
    ObserverView v;
    if (Decode(line, v) && v.observer.empty()) std::abort();
  }
  {
    RestoreRecord v;
    if (Decode(line, v) && (v.run.empty() || v.state.empty())) std::abort();  // refused by contract
  }
  {
    DrillRecord v;
    if (Decode(line, v) && (v.id.empty() || v.scenario.empty())) std::abort();  // refused by contract
  }
  return 0;
}
