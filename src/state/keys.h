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
#include <vector>

#include "core/result.h"
#include "state/store.h"

namespace lifeboat::state {

// The role of one region's copy of a replicated volume (replicate/V/role).
struct VolumeRole {
  bool source = false;
  std::string source_region;  // for a target: the region it follows
  uint64_t epoch = 1;         // the failover epoch it took this role in; a target refuses older senders
  // A source whose epoch a failover superseded: it sends nothing and
  // receives nothing until a failback reverses it (or a failover promotes it).
  bool fenced = false;
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

// Who is primary, and the failover epoch: the fencing token every action
// that matters carries (failover/primary). Changed only by compare-and-swap.
struct PrimaryRecord {
  std::string region;
  uint64_t epoch = 1;  // raised by every failover
  std::string since;   // RFC 3339 UTC; empty for the plan's initial primary
  std::string by;      // who moved it
};

// One step of a failover run, as the runbook records it before and after.
struct StepRecord {
  std::string name;
  std::string state = "pending";  // pending, running, done, failed
  int attempts = 0;
  std::string started_at, ended_at;  // RFC 3339 UTC of the last attempt
  std::string output;                // the step's report, or its last error
};

// The current or last failover run (failover/run).
struct FailoverRun {
  std::string id;
  std::string from, to;
  uint64_t epoch = 0;  // the epoch the run moves to
  bool planned = false;
  std::string state = "running";  // running, done, failed
  std::string started_at, ended_at;
  std::string owner;  // the agent that drives it now, or drove it last
  std::vector<StepRecord> steps;
};

// What one region's agent sees of the primary region (views/R), published
// under that agent's lease so that a dead observer's view vanishes.
struct ObserverView {
  std::string observer;  // the region
  std::string agent;     // REGION@HOST:PID
  std::string primary;   // the primary it observed, and its epoch
  uint64_t epoch = 0;
  // The primary seen down here without a break for at least failover.grace.
  bool primary_down = false;
  int64_t down_for_ms = 0;  // how long it has been seen down (0: up)
  std::string reason;       // why down, or why up
  // Every endpoint with a health check, as probed from this region.
  std::vector<std::pair<std::string, bool>> endpoints;
  // This region's copies of replicated volumes, with their roles: a region
  // can become primary only while every copy of it follows the primary of
  // the current epoch (a fenced or older copy may lack what was written
  // since; a failback resynchronizes it first).
  struct Copy {
    std::string volume;
    VolumeRole role;
  };
  std::vector<Copy> copies;
  // The volumes this region sends, with each target's state: what a planned
  // failover waits on (every target of the new primary in sync).
  struct Sending {
    std::string volume, target;
    bool in_sync = false;
    // How far behind the target is, in milliseconds (the age of the oldest
    // change it lacks); -1 when the source cannot tell (not connected, no
    // full pass yet).
    int64_t lag_ms = -1;
    bool operator==(const Sending&) const = default;
  };
  std::vector<Sending> sending;
  // This region's server of each database (agent/services/database): its
  // role and how far behind the primary's server it was when last measured
  // (what a failover to this region accepts, checked against
  // max_lag_on_failover).
  struct Database {
    std::string database;
    std::string role;  // "primary", "standby", "fenced primary", "unreachable"
    int64_t lag_bytes = -1;  // -1: never measured
    bool operator==(const Database&) const = default;
  };
  std::vector<Database> databases;
  std::string at;  // when this view was written, RFC 3339 UTC
};

// What one region's agent last did to its database server
// (regions/R/db/NAME/role): promoted it, or fenced it, in which failover
// epoch. The failover's promote step waits for "primary" at its epoch.
struct DatabaseRole {
  std::string role;  // "primary", "fenced"
  uint64_t epoch = 0;
  std::string lsn;   // promoted: the first position it wrote at; fenced: its final position
  std::string at;    // RFC 3339 UTC
};

// A region's restore of the newest backups into its copies, the
// backup-restore pattern's failover step (regions/R/failover/restore): the
// region's own agent restores and writes it, the run's driver waits on it.
struct RestoreRecord {
  std::string run;    // the failover run and attempt it answers: "ID#N"
  std::string state;  // running, done, failed
  struct Volume {
    std::string volume, location, backup;  // backup: its id; empty when the volume has none
    uint64_t files = 0, bytes = 0, not_restored = 0;
    std::string error;
  };
  std::vector<Volume> volumes;
  std::string started_at, ended_at;  // RFC 3339 UTC
};

// One drill, as `lifeboat drill run` recorded it at its end (drills/{id}):
// what `lifeboat drill report` lists and renders, what the agents' status
// pages show as recent drills, and what the drill alert reads.
struct DrillRecord {
  std::string id;        // "20261203T130501Z-region-outage": sorts by time
  std::string scenario;  // "region-outage"
  std::string plan;
  std::string started_at, ended_at;  // RFC 3339 UTC
  bool pass = false;                 // the plan's objectives met
  std::vector<std::string> missed;   // why not, figure by figure
  double rto_seconds = -1, rpo_seconds = -1;  // -1: not measured (never recovered; no objective)
  std::string dir;     // the drill's data dir, where drill.html was written
  std::string report;  // the whole report (drill.json with the client's attempts), JSON text
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

// A region's own keys live below regions/{region}/ (several regions' agents
// share one store); the others are shared by every region.

// How many times the region's agent started (decimal).
Key<int64_t> AgentStarts(std::string_view region);
// When the region's agent first started (RFC 3339 UTC).
Key<std::string> AgentFirstStartedAt(std::string_view region);
// The role of the region's copy of a volume.
Key<VolumeRole> VolumeRoleOf(std::string_view region, std::string_view volume);
Key<DatabaseRole> DatabaseRoleOf(std::string_view region, std::string_view database);
Key<LastBackup> LastBackupOf(std::string_view region, std::string_view schedule, std::string_view volume);
// Shared: one switch per serving region, seen by every region's DNS server.
Key<RoutingControl> RoutingControlOf(std::string_view region);
inline constexpr std::string_view kRoutingControlsPrefix = "routing/controls/";
// Shared: who is primary at which epoch.
Key<PrimaryRecord> Primary();
// Shared: the failover run, and the leased lock of the agent driving it
// (its value: that agent's name).
Key<FailoverRun> CurrentFailover();
inline constexpr std::string_view kFailoverLock = "failover/lock";
// The region's restore for a failover's `restore` step.
Key<RestoreRecord> RestoreOf(std::string_view region);
// Shared: each region's view of the primary, under its agent's lease.
Key<ObserverView> ViewOf(std::string_view region);
inline constexpr std::string_view kViewsPrefix = "views/";
// Shared: the drills run for this plan, by id (oldest first in key order).
Key<DrillRecord> DrillOf(std::string_view id);
inline constexpr std::string_view kDrillsPrefix = "drills/";

// Every key's pattern, as docs/format/state.md writes it.
inline constexpr std::array<std::string_view, 12> kPatterns = {
    "regions/{region}/agent/starts", "regions/{region}/agent/first_started_at",
    "regions/{region}/replicate/{volume}/role", "regions/{region}/db/{database}/role", "regions/{region}/backup/{schedule}/{volume}/last",
    "regions/{region}/failover/restore", "routing/controls/{region}", "failover/primary", "failover/run",
    "failover/lock", "views/{region}", "drills/{id}"};

}  // namespace keys

// Copies what an agent kept in its own store before stores were shared
// (format 1 keys without the regions/{region}/ part: agent/starts,
// replicate/V/role, backup/S/V/last, routing/controls/R) into `to`, for
// `region`, where `to` has nothing yet. Returns how many keys it copied.
Result<int> MigrateUnsharedKeys(Store& from, Store& to, std::string_view region);

// The codecs, one pair per value type (defined in keys.cc).
std::string Encode(int64_t v);
std::string Encode(const std::string& v);
std::string Encode(const VolumeRole& v);
std::string Encode(const RoutingControl& v);
std::string Encode(const LastBackup& v);
std::string Encode(const PrimaryRecord& v);
std::string Encode(const FailoverRun& v);
std::string Encode(const ObserverView& v);
std::string Encode(const RestoreRecord& v);
std::string Encode(const DrillRecord& v);
std::string Encode(const DatabaseRole& v);
// Each returns false when `text` is not a value of its type.
bool Decode(std::string_view text, int64_t& out);
bool Decode(std::string_view text, std::string& out);
bool Decode(std::string_view text, VolumeRole& out);
bool Decode(std::string_view text, RoutingControl& out);
bool Decode(std::string_view text, LastBackup& out);
bool Decode(std::string_view text, PrimaryRecord& out);
bool Decode(std::string_view text, FailoverRun& out);
bool Decode(std::string_view text, ObserverView& out);
bool Decode(std::string_view text, RestoreRecord& out);
bool Decode(std::string_view text, DrillRecord& out);
bool Decode(std::string_view text, DatabaseRole& out);

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
