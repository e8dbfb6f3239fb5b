// The demo's plans, compiled into the binary so `lifeboat demo` runs anywhere:
// examples/local.yaml (the records in a replicated volume) and
// examples/local-postgres.yaml (the records in PostgreSQL).
#pragma once

namespace lifeboat::cli {
extern const char* const kEmbeddedLocalPlan;
extern const char* const kEmbeddedPostgresPlan;
}  // namespace lifeboat::cli
