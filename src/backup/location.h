// Opening a plan's backup locations: the storage backend a location names
// (filesystem or S3, with its access mode), the S3 credentials from the
// environment, and the repository password. The one place that turns plan
// locations into storage, so that storage/ knows nothing of plans.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "plan/plan.h"
#include "repo/repository.h"
#include "storage/storage.h"

namespace lifeboat::backup {

// The backend a plan location names, with its access mode applied. S3
// credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; FailedPrecondition when they are missing.
Result<std::unique_ptr<storage::Backend>> OpenBackend(const plan::Location& location);

// The repository password of a location: LIFEBOAT_REPO_PASSWORD if set,
// else the first line of `password_file` (a flag's) or of the location's
// password_file. Empty when none is configured.
Result<std::string> RepoPassword(const plan::Location& location, const std::string& password_file = "");

// Opens the repository at a plan location (its access mode applied).
Result<std::unique_ptr<repo::Repository>> OpenLocation(const plan::Location& location,
                                                       const std::string& password_file = "");

}  // namespace lifeboat::backup
