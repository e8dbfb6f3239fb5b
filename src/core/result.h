// The project's one error type: Error (a code and a message a user can act on),
// Result<T> (a T or an Error) and Status (Result<void>). Errors are returned,
// never thrown across module boundaries.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lifeboat {

// Codes are chosen by what the caller should do next (as abseil's are).
enum class Code {
  kOk = 0,
  kInvalidArgument,     // the input is wrong: fix it, do not retry
  kNotFound,            // the thing named does not exist
  kAlreadyExists,       // create collided with an existing thing
  kFailedPrecondition,  // fix the state of the system first, then retry
  kAborted,             // a conflict (compare-and-swap lost): retry the whole operation
  kUnavailable,         // transient: retry this call, with backoff
  kDeadlineExceeded,    // took too long; may or may not have happened
  kPermissionDenied,    // not allowed (file modes, read-only location)
  kUnauthenticated,     // no valid credentials (a missing or wrong token): supply them, then retry
  kCancelled,           // stopped on request (Ctrl-C, Stop()): nothing to fix
  kResourceExhausted,   // out of space, descriptors, quota
  kDataLoss,            // stored bytes are damaged
  kInternal,            // a bug in lifeboat
};

std::string_view CodeName(Code code);

// The edges, written once: what a command exits with and what the admin API
// answers for an error of each code (docs/operations.md, "Exit codes").
//   exit 2 (bad input: fix the command): InvalidArgument, NotFound
//   exit 1 (the operation failed):       every other code
//   exit 130:                             Cancelled (as a shell reports Ctrl-C)
int ExitCode(Code code);
int HttpStatus(Code code);

class Error {
 public:
  Error(Code code, std::string message) : code_(code), message_(std::move(message)) {
    assert(code != Code::kOk);
  }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: chunk 1f2e... is not in the index".
  std::string ToString() const;
  // Returns a copy whose message is "context: message".
  Error Wrap(std::string_view context) const;

 private:
  Code code_;
  std::string message_;
};

// A value or an error. Mirrors the subset of std::expected the project uses.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

  const Error& error() const& { assert(!ok()); return std::get<1>(v_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { assert(!ok_); return error_; }
  Error&& error() && { assert(!ok_); return std::move(error_); }

 private:
  Error error_{Code::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() { return {}; }

// The outcome of a call whose value the caller does not need.
template <class T>
Status StatusOf(const Result<T>& r) {
  if (r.ok()) return Ok();
  return r.error();
}

// Shorthands for the common codes.
inline Error InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Error NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Error AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Error FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Error Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Error Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Error DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Error PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Error Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Error Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Error ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Error DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
inline Error Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

// An Error from errno, with the code chosen by what the caller can do about it.
Error ErrnoError(int err, std::string_view what);

}  // namespace lifeboat

// Returns the error of `expr` (a Status or Result) from the enclosing function.
#define LB_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    auto lb_status_ = (expr);                           \
    if (!lb_status_.ok()) return std::move(lb_status_).error(); \
  } while (0)

#define LB_CONCAT_INNER_(a, b) a##b
#define LB_CONCAT_(a, b) LB_CONCAT_INNER_(a, b)
// `LB_ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value, or returns its error.
#define LB_ASSIGN_OR_RETURN(lhs, expr) \
  LB_ASSIGN_OR_RETURN_IMPL_(LB_CONCAT_(lb_result_, __LINE__), lhs, expr)
#define LB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).error();   \
  lhs = std::move(tmp).value()
