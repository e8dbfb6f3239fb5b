// Positioned messages about a plan file: "file:line:column: error: ...", each
// with a hint that says what would be right.
#pragma once

#include <string>
#include <vector>

namespace lifeboat::plan {

enum class Severity { kError, kWarning };

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the message is about the whole file
  int column = 0;  // 1-based
  Severity severity = Severity::kError;
  std::string message;
  std::string hint;  // may be empty

  // "plan.yaml:12:5: error: checks.web: unknown key 'intervl'\n    hint: did you mean 'interval'?"
  std::string ToString() const;
};

// Formats every diagnostic, one after another, in file order.
std::string FormatDiagnostics(const std::vector<Diagnostic>& diagnostics);
bool HasErrors(const std::vector<Diagnostic>& diagnostics);

}  // namespace lifeboat::plan
