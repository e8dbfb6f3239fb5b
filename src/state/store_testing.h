// For tests only: opening each kind of state store the same way, so that one
// contract suite (store_contract_test.cc) runs against all of them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/units.h"
#include "state/store.h"

namespace lifeboat::state {

// "embedded", "etcd".
std::vector<std::string> TestStoreKinds();

// A fresh store of `kind` for the test `name`: the embedded one in `dir`;
// for etcd, the cluster named by LIFEBOAT_TEST_ETCD (comma-separated
// endpoints) under a key prefix of its own; nullptr (the test skips) when
// LIFEBOAT_TEST_ETCD is not set.
Result<std::unique_ptr<Store>> OpenTestStore(const std::string& kind, const std::string& dir, const std::string& name);

// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
bool WaitUntil(const std::function<bool()>& cond, Duration timeout);

}  // namespace lifeboat::state
