// Who is primary, and the failover epoch (state::keys::Primary): one key,
// changed only by compare-and-swap, so that two regions can never both
// become primary in one epoch, whatever they race on. The plan's
// `role: primary` is only the initial value.
#pragma once

#include <string>

#include "plan/plan.h"
#include "state/keys.h"
#include "state/store.h"

namespace lifeboat::orchestrate {

struct Primary {
  state::PrimaryRecord record;
  int64_t revision = 0;  // of the key, for AdvanceEpoch
};

// The store's record; when it has none, the plan's primary at epoch 1,
// written only if still absent, so every agent starts from the same one.
Result<Primary> CurrentPrimary(state::Store& store, const plan::Plan& plan);

// Makes `to` the primary at the next epoch, if the record is still the one
// read (`current`); Aborted when another change won (read again: that
// region is primary now, or a newer epoch). InvalidArgument when `to` is not
// a primary or standby region of the plan.
Result<Primary> AdvanceEpoch(state::Store& store, const plan::Plan& plan, const Primary& current,
                             const std::string& to, const std::string& by);

}  // namespace lifeboat::orchestrate
