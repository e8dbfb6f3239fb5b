// examples/local.yaml, compiled into the binary so `lifeboat demo` runs anywhere.
#pragma once

namespace lifeboat::cli {
extern const char* const kEmbeddedLocalPlan;
}  // namespace lifeboat::cli
