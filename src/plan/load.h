// Loads a plan from YAML: parses, fills defaults, validates every section and
// every cross-reference, and reports all problems at once with positions.
// Never throws and never crashes, whatever the bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "plan/diagnostics.h"
#include "plan/plan.h"

namespace lifeboat::plan {

// Plans are small; anything larger is refused before parsing.
inline constexpr size_t kMaxPlanBytes = 1 << 20;
// After this many errors the loader stops looking for more.
inline constexpr size_t kMaxDiagnostics = 100;

struct LoadResult {
  std::optional<Plan> plan;  // set when there are no errors (warnings allowed)
  std::vector<Diagnostic> diagnostics;
};

// `source` names the text in messages (usually its path). Relative paths in
// the plan resolve against `base_dir` (LoadPlanFile passes the file's
// directory); without one, every path must be absolute.
LoadResult LoadPlanText(std::string_view text, const std::string& source, const std::string& base_dir = "");
LoadResult LoadPlanFile(const std::string& path);

// For commands that need a valid plan and nothing else: InvalidArgument with
// every error formatted in the message, or NotFound for a missing file.
Result<Plan> LoadPlanOrError(const std::string& path);

}  // namespace lifeboat::plan
