// Every key of the state store, with its value's type and codec: the one
// place that defines them. With a store shared between regions (etcd) these
// keys are a contract between lifeboat versions, so each is documented in
// docs/format/state.md (a test checks that the doc lists every pattern of
// kPatterns). A value that does not decode is DataLoss, naming the key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "state/store.h"

namespace lifeboat::state {

// The role of one region's copy of a replicated volume (replicate/V/role).
struct VolumeRole {
  bool source = false;
  std::string source_region;  // for a target: the region it follows
  uint64_t epoch = 1;         // raised by every promote; a target refuses older senders
};

// One region's routing control (routing/controls/R).
struct RoutingControl {
  bool on = true;
  std::string by = "default";  // who set it
  std::string at;              // when, RFC 3339 UTC; empty for the default
};

// The last successful run of a backup schedule for one volume (backup/S/V/last).
struct LastBackup {
  int64_t time_ns = 0;  // the backup's time, Unix nanoseconds
  std::string id;
  uint64_t bytes = 0;
  uint64_t stored_bytes = 0;
  double duration_seconds = 0;
};

// A key and the type of its value. Get and Put encode and decode.
template <class V>
class Key {
 public:
  explicit Key(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  // The value, nullopt when the key is absent, DataLoss when it does not decode.
  Result<std::optional<V>> Get(Store& store) const;
  // Writes the value; the store's revision of the write.
  Result<int64_t> Put(Store& store, const V& value, Expect expect = Expect::Any()) const;

 private:
  std::string name_;
};

namespace keys {

// How many times an agent started on this data dir (decimal).
Key<int64_t> AgentStarts();
// When an agent first started on this data dir (RFC 3339 UTC).
Key<std::string> AgentFirstStartedAt();
Key<VolumeRole> VolumeRoleOf(std::string_view volume);
Key<RoutingControl> RoutingControlOf(std::string_view region);
Key<LastBackup> LastBackupOf(std::string_view schedule, std::string_view volume);

// Every key's pattern, as docs/format/state.md writes it.
inline constexpr std::array<std::string_view, 5> kPatterns = {
    "agent/starts", "agent/first_started_at", "replicate/{volume}/role", "routing/controls/{region}",
    "backup/{schedule}/{volume}/last"};

}  // namespace keys

// The codecs, one pair per value type (defined in keys.cc).
std::string Encode(int64_t v);
std::string Encode(const std::string& v);
std::string Encode(const VolumeRole& v);
std::string Encode(const RoutingControl& v);
std::string Encode(const LastBackup& v);
// Each returns false when `text` is not a value of its type.
bool Decode(std::string_view text, int64_t& out);
bool Decode(std::string_view text, std::string& out);
bool Decode(std::string_view text, VolumeRole& out);
bool Decode(std::string_view text, RoutingControl& out);
bool Decode(std::string_view text, LastBackup& out);

template <class V>
Result<std::optional<V>> Key<V>::Get(Store& store) const {
  LB_ASSIGN_OR_RETURN(auto kv, store.Get(name_));
  if (!kv) return std::optional<V>();
  V v{};
  if (!Decode(kv->value, v)) {
    std::string shown = kv->value.size() > 80 ? kv->value.substr(0, 80) + "..." : kv->value;
    return DataLoss("state key " + name_ + " holds '" + shown + "', which is not a value of this key");
  }
  return std::optional<V>(std::move(v));
}

template <class V>
Result<int64_t> Key<V>::Put(Store& store, const V& value, Expect expect) const {
  return store.Put(name_, Encode(value), expect);
}

}  // namespace lifeboat::state
