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
    case Code::kUnauthenticated: return "Unauthenticated";
    case Code::kCancelled: return "Cancelled";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kDataLoss: return "DataLoss";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

int ExitCode(Code code) {
  switch (code) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument:
    case Code::kNotFound: return 2;
    case Code::kCancelled: return 130;
    default: return 1;
  }
}

int HttpStatus(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
    case Code::kAborted: return 409;
    case Code::kResourceExhausted: return 429;
    case Code::kCancelled: return 499;
    case Code::kUnavailable: return 503;
    case Code::kDeadlineExceeded: return 504;
    case Code::kDataLoss:
    case Code::kInternal: return 500;
  }
  return 500;
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
