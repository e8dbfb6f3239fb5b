#include "backup/location.h"

#include <cstdlib>

#include "core/fs.h"

namespace lifeboat::backup {

Result<std::unique_ptr<storage::Backend>> OpenBackend(const plan::Location& l) {
  std::unique_ptr<storage::Backend> b;
  if (l.type == plan::LocationType::kFilesystem) {
    b = storage::NewFilesystem(l.path);
  } else {
    storage::S3Options o;
    o.endpoint = l.endpoint;
    o.bucket = l.bucket;
    o.prefix = l.prefix;
    o.region = l.s3_region;
    o.virtual_hosted = l.addressing == plan::S3Addressing::kVirtual ||
                       (l.addressing == plan::S3Addressing::kAuto && l.endpoint.find(".amazonaws.com") != std::string::npos);
    const char* ak = std::getenv("AWS_ACCESS_KEY_ID");
    const char* sk = std::getenv("AWS_SECRET_ACCESS_KEY");
    const char* st = std::getenv("AWS_SESSION_TOKEN");
    if (ak == nullptr || sk == nullptr || *ak == '\0' || *sk == '\0') {
      return FailedPrecondition("location '" + l.name +
                                "' is on S3 and needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    }
    o.access_key = ak;
    o.secret_key = sk;
    if (st != nullptr) o.session_token = st;
    b = storage::NewS3(std::move(o));
  }
  if (l.access == plan::Access::kReadOnly) b = storage::NewReadOnly(std::move(b), l.name);
  return b;
}

Result<std::string> RepoPassword(const plan::Location& l, const std::string& password_file) {
  if (const char* env = std::getenv("LIFEBOAT_REPO_PASSWORD"); env != nullptr && *env != '\0') return std::string(env);
  std::string file = !password_file.empty() ? password_file : l.password_file;
  if (file.empty()) return std::string();
  auto text = ReadFile(file, 4096);
  if (!text.ok()) return text.error().Wrap("password file of location '" + l.name + "'");
  std::string pw = text->substr(0, text->find('\n'));
  if (pw.empty()) return InvalidArgument("password file " + file + " is empty");
  return pw;
}

Result<std::unique_ptr<repo::Repository>> OpenLocation(const plan::Location& l, const std::string& password_file) {
  LB_ASSIGN_OR_RETURN(auto backend, OpenBackend(l));
  LB_ASSIGN_OR_RETURN(std::string pw, RepoPassword(l, password_file));
  auto r = repo::Repository::Open(std::move(backend), pw);
  if (!r.ok()) return r.error().Wrap("location '" + l.name + "'");
  return r;
}

}  // namespace lifeboat::backup
