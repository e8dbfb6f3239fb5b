// The standard process_* family (as Prometheus client libraries export it):
// CPU time, resident and virtual memory, open and maximum descriptors, start
// time, threads. Read from /proc/self when scraped.
#pragma once

#include "metrics/registry.h"

namespace lifeboat::metrics {

void AddProcessMetrics(Registry& registry);

}  // namespace lifeboat::metrics
