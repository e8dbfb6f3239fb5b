// Opening the state store a plan's `state` section names.
#pragma once

#include <memory>
#include <string>

#include "plan/plan.h"
#include "state/store.h"

namespace lifeboat::state {

// Where the embedded store of `plan` lives for an agent with `data_dir`:
// state.path, else next to the data dir, DATA_DIR/../PLAN-state.db, so that
// the agents of one plan started with sibling data dirs (the default
// /var/lib/lifeboat/PLAN/REGION, the demo, the tests) share one file, and
// two plans never do.
std::string EmbeddedStorePath(const plan::Plan& plan, const std::string& data_dir);

// The embedded store or an etcd client, with the plan's deadline.
Result<std::unique_ptr<Store>> OpenPlanStore(const plan::Plan& plan, const std::string& data_dir);

}  // namespace lifeboat::state
