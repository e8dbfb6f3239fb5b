#include "orchestrate/primary.h"

#include "core/clock.h"

namespace lifeboat::orchestrate {

Result<Primary> CurrentPrimary(state::Store& store, const plan::Plan& plan) {
  auto key = state::keys::Primary();
  for (int attempt = 0; attempt < 3; ++attempt) {
    LB_ASSIGN_OR_RETURN(auto kv, store.Get(key.name()));
    if (kv) {
      Primary p;
      if (!state::Decode(kv->value, p.record)) {
        return DataLoss("state key " + key.name() + " holds '" + kv->value + "', which is not a primary record");
      }
      p.revision = kv->mod_revision;
      return p;
    }
    const plan::Region* initial = plan.Primary();
    if (initial == nullptr) return FailedPrecondition("plan " + plan.name + " names no primary region");
    state::PrimaryRecord r;
    r.region = initial->name;
    r.epoch = 1;
    r.by = "plan";
    auto put = key.Put(store, r, state::Expect::Absent());
    if (put.ok()) return Primary{r, *put};
    if (put.error().code() != Code::kAborted) return put.error();
    // Another agent wrote it first: read theirs.
  }
  return Aborted("state key " + key.name() + " keeps changing; try again");
}

Result<Primary> AdvanceEpoch(state::Store& store, const plan::Plan& plan, const Primary& current,
                             const std::string& to, const std::string& by) {
  LB_ASSIGN_OR_RETURN(const plan::Region* region, plan.RequireRegion(to));
  if (!region->serves()) return InvalidArgument("region '" + to + "' is a witness; it cannot become primary");
  state::PrimaryRecord next;
  next.region = to;
  next.epoch = current.record.epoch + 1;
  next.since = FormatUtc(Clock::Real().Now());
  next.by = by;
  auto put = state::keys::Primary().Put(store, next, state::Expect::Revision(current.revision));
  if (!put.ok()) {
    if (put.error().code() == Code::kAborted) {
      return Aborted("the primary changed since it was read (epoch " + std::to_string(current.record.epoch) +
                     "): another failover won; read it again");
    }
    return put.error();
  }
  return Primary{next, *put};
}

}  // namespace lifeboat::orchestrate
