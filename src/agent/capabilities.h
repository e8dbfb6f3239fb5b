// The typed interfaces services publish for each other and for the failover
// engine (through Capabilities, agent/service.h). Callers use these, never a
// service's class, its admin API or its keys in the state store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "plan/plan.h"
#include "state/keys.h"
#include "traffic/routing.h"

namespace lifeboat::agent {

// A change of a volume's role that runs on a worker (promote, reverse).
struct RoleChange {
  std::string action;      // "promote" or "reverse"
  std::string state;       // "running", "done" or "failed"
  std::string step;        // what it is doing now, or did last
  std::string error;       // when failed
  std::string started_at;  // RFC 3339 UTC
  std::optional<std::string> finished_at;
};

// How far one target of a volume this region sends is behind.
struct TargetSync {
  std::string target;  // the region
  bool in_sync = false;  // connected, nothing pending, a full pass done
  double rpo_seconds = 0;
  uint64_t pending_bytes = 0;
  // Connected with a full pass done (streaming or verifying): rpo_seconds is
  // then how far the target is behind. Not known otherwise.
  bool lag_known = false;
};

// Published by the replication service: the roles of this region's copies of
// replicated volumes, and the two changes of a failover and a failback.
class VolumeRoles {
 public:
  virtual ~VolumeRoles() = default;
  // The volumes this region holds a continuously replicated copy of.
  virtual std::vector<std::string> Volumes() const = 0;
  // This region's role for `volume`; nullopt when it does not replicate it.
  virtual std::optional<state::VolumeRole> RoleOf(std::string_view volume) const = 0;
  // The last role change asked for `volume`, if any.
  virtual std::optional<RoleChange> LastChange(std::string_view volume) const = 0;
  // Each target's lag, while this region sends `volume`; empty otherwise.
  virtual std::vector<TargetSync> Sending(std::string_view volume) const = 0;

  using Done = std::function<void(const Status&)>;
  // Makes this region the volume's source in failover epoch `epoch` (0: the
  // volume's own epoch plus one, for a promote by hand). Returns at once:
  // NotFound (not replicated here), FailedPrecondition (already the source
  // and not fenced; cannot replicate: no key), Aborted (another change is
  // running). The work (stopping the receiver, watching the whole volume,
  // connecting to the targets) runs on the service's worker, which calls
  // `done`.
  virtual Status Promote(std::string_view volume, uint64_t epoch, Done done = {}) = 0;
  // Stops this region sending the volume because failover epoch `epoch` has
  // made another region primary: the role is kept as a fenced source, which
  // sends and receives nothing until a Reverse or a Promote. Runs like
  // Promote; FailedPrecondition when this region is not an unfenced source.
  virtual Status Fence(std::string_view volume, uint64_t epoch, Done done = {}) = 0;
  // While held, this region sends no volume (a primary that lost the state
  // store fences itself): its streams stop, its role stays. Released, the
  // sources start again; a role change (promote, fence, reverse) ends the
  // hold too. Runs on the service's worker.
  virtual void HoldSending(bool held) = 0;
  // Makes this region a target following `source` from `epoch` on (a
  // failback's first step); FailedPrecondition for an epoch older than this
  // region's. Runs like Promote.
  virtual Status Reverse(std::string_view volume, const std::string& source, uint64_t epoch, Done done = {}) = 0;
};

// The one answer to "which region is the source of volume V", as seen from
// this region: a replicated volume's role (this region is the source, or the
// region it follows is), else the plan's primary. nullopt when the plan has
// no such volume or nobody can tell (no primary; this region's copy is
// fenced).
std::optional<std::string> SourceOf(const plan::Plan& plan, const plan::Region& here, const VolumeRoles* roles,
                                    std::string_view volume);

// Published by the traffic service: the routing switches and what health
// checks see.
class TrafficSwitch {
 public:
  virtual ~TrafficSwitch() = default;
  // Switches a serving region's routing control (who: for the record).
  // NotFound for an unknown region, InvalidArgument for a witness,
  // FailedPrecondition when the plan's safety rule refuses and !force.
  virtual Result<state::RoutingControl> Switch(const std::string& region, bool on, bool force,
                                               const std::string& who) = 0;
  virtual bool IsOn(const std::string& region) const = 0;
  // Whether the endpoint passed its last health checks.
  virtual bool Healthy(const std::string& endpoint) const = 0;
};

// Published by the backup service: a volume's newest backup, in any of the
// plan's locations, restored into this region's copy (the backup-restore
// pattern's failover step).
class VolumeRestorer {
 public:
  virtual ~VolumeRestorer() = default;
  using Done = std::function<void(const state::RestoreRecord::Volume&)>;
  // Returns at once; the restore runs on the service's worker, one at a
  // time, and `done` gets what it did: the backup restored (empty when the
  // volume has none anywhere), the files and bytes, the entries that could
  // not be restored, or the error. Files in the copy that the backup lacks
  // are kept. An agent that stops ends a running restore at the next file.
  virtual void RestoreLatest(const std::string& volume, Done done) = 0;
};

// Published by the failover service: endpoint health as the regions' agents
// see it together (their views in the store), so that one region's network
// trouble does not make the regions' DNS servers disagree.
class EndpointViews {
 public:
  virtual ~EndpointViews() = default;
  // Whether `endpoint` is healthy by the regions' views: at least its
  // check's vantage_quorum of the views see it healthy (default: a majority
  // of the regions that have a view). nullopt when this agent cannot tell
  // (the store does not answer, no view reports the endpoint, or fewer
  // regions have a view than the quorum needs): the caller uses its own probe.
  virtual std::optional<bool> Healthy(const std::string& endpoint) const = 0;
  // `fn` runs on the failover service's thread after any endpoint's combined
  // health changed. Set before the agent starts the services.
  virtual void OnChange(std::function<void()> fn) = 0;
};

// Published by the database service: this region's servers of the plan's
// databases, as the failover engine needs them. The service itself brings
// each server to the epoch (promotes it when the epoch names this region,
// fences it when the epoch moves away) and records what it did in
// regions/R/db/NAME/role.
class DatabaseRoles {
 public:
  virtual ~DatabaseRoles() = default;
  // What this region's view reports of each database with a server here:
  // its role and how far it was behind the primary's when last measured.
  virtual std::vector<state::ObserverView::Database> Views() const = 0;
  // While held, this region's primary servers are fenced (a primary that
  // lost the state store fences itself); released, the fence is lifted when
  // this region is still the primary. Returns at once.
  virtual void HoldWrites(bool held) = 0;
};

// Published by the agent itself: the failover epoch's primary as the state
// store says, kept by a watch (no call waits on the store).
class PrimaryView {
 public:
  virtual ~PrimaryView() = default;
  // nullopt until the record is read, or when it cannot be decoded.
  virtual std::optional<state::PrimaryRecord> Primary() const = 0;
  // `fn` runs on the store's watch thread after the primary record changed.
  // Set before the agent starts the services.
  virtual void OnChange(std::function<void()> fn) = 0;
};

// Published by the traffic service: the one routing state (endpoint health,
// routing controls, the epoch's primary) that its DNS answers and the L4
// proxy both go by.
class RoutingView {
 public:
  virtual ~RoutingView() = default;
  virtual std::shared_ptr<const traffic::RoutingState> Current() const = 0;
  // `fn` runs on the event loop after each new routing state. Set before
  // the agent starts the services.
  virtual void OnChange(std::function<void()> fn) = 0;
};

}  // namespace lifeboat::agent
