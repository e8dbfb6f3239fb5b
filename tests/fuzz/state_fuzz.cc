// Feeds untrusted bytes to the parser of etcd's watch stream (one JSON line of
// the v3 gateway: events with base64 keys and values, revisions as strings).
// It must refuse or succeed; what it accepts keeps every key below the
// store's prefix.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "state/etcd_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto m = lifeboat::state::EtcdStore::ParseWatchLine(line, "/lifeboat/");
  if (m.ok()) {
    for (const auto& e : m->events) {
      if (e.type == lifeboat::state::Event::Type::kCompacted) std::abort();  // never from a stream line
    }
  }
  return 0;
}
