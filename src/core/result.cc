#include "core/result.h"

#include <cerrno>
#include <cstring>

namespace lifeboat {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kFailedPrecondition: return "FailedPrecondition";
    case Code::kAborted: return "Aborted";
    case Code::kUnavailable: return "Unavailable";
    case Code::kDeadlineExceeded: return "DeadlineExceeded";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kDataLoss: return "DataLoss";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Error::ToString() const {
  std::string s(CodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Error Error::Wrap(std::string_view context) const {
  std::string m(context);
  m += ": ";
  m += message_;
  return Error(code_, std::move(m));
}

Error ErrnoError(int err, std::string_view what) {
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT: case ENOTDIR: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EACCES: case EPERM: case EROFS: code = Code::kPermissionDenied; break;
    case ENOSPC: case EDQUOT: case EMFILE: case ENFILE: case ENOMEM: code = Code::kResourceExhausted; break;
    case EAGAIN: case EINTR: case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH:
    case ENETUNREACH: case EPIPE: code = Code::kUnavailable; break;
    case ETIMEDOUT: code = Code::kDeadlineExceeded; break;
    case EIO: code = Code::kDataLoss; break;
    case EINVAL: case ENAMETOOLONG: case EISDIR: code = Code::kInvalidArgument; break;
    case EADDRINUSE: case EBUSY: code = Code::kFailedPrecondition; break;
    default: break;
  }
  return Error(code, std::move(m));
}

}  // namespace lifeboat
