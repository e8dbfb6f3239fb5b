// Runs a shell command with a deadline and captures what it prints: the
// failover's hooks, the self-fence hook.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/units.h"

namespace lifeboat {

struct CommandResult {
  int exit_code = -1;  // -1 when a signal ended it
  std::string output;  // stdout and stderr, interleaved, the first `max_output` bytes
  bool truncated = false;
};

// Runs `/bin/sh -c command` in its own process group, with `env` added to
// this process's environment and stdin from /dev/null. When `timeout`
// passes, the whole group gets SIGTERM, then SIGKILL a second later, and the
// result is DeadlineExceeded with the output so far. A command that exits
// non-zero is not an error here: the caller reads exit_code. `on_output`,
// when set, sees every piece of output as it arrives (progress).
Result<CommandResult> RunCommand(const std::string& command,
                                 const std::vector<std::pair<std::string, std::string>>& env, Duration timeout,
                                 size_t max_output = 16 * 1024,
                                 const std::function<void(std::string_view)>& on_output = {});

}  // namespace lifeboat
