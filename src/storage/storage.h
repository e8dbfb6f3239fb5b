// Object stores for backup repositories. A Backend holds named objects
// ("config", "data/ab/abcd...", ...) and nothing else: no renames, no
// appends, so the same repository code runs on a directory and on S3.
//
//   Put     writes a whole object atomically: readers see all of it or none.
//   Get     reads an object, or a byte range of it.
//   List    names (and sizes) of every object below a directory prefix.
//   Delete  removes an object; Ok when it is already gone.
//
// Errors: NotFound for a missing object; PermissionDenied for refusals
// (ReadOnly locations, S3 403); Unavailable when the store cannot be reached
// after the retries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace lifeboat::storage {

struct ObjectInfo {
  std::string name;
  uint64_t size = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "filesystem /var/backups/x", "s3 https://host/bucket/prefix".
  virtual std::string Describe() const = 0;
  // Makes the store ready for a new repository (creates the directory; for
  // S3, checks that the bucket answers). FailedPrecondition when it cannot.
  virtual Status Prepare() = 0;
  virtual Status Put(const std::string& name, std::string_view data) = 0;
  // `length` 0 reads to the end.
  virtual Result<std::string> Get(const std::string& name, uint64_t offset = 0, uint64_t length = 0) = 0;
  virtual Result<std::vector<ObjectInfo>> List(const std::string& dir) = 0;
  virtual Status Delete(const std::string& name) = 0;
  virtual bool read_only() const { return false; }
  // Removes what killed writers left behind that is no object (a filesystem
  // backend's temporary files). Only safe while no writer runs (the
  // repository's exclusive lock). Returns how many were removed.
  virtual Result<uint64_t> RemoveLeftovers() { return uint64_t{0}; }
};

// Objects as files below `root`; every change goes through `env`.
std::unique_ptr<Backend> NewFilesystem(std::string root, Env& env = Env::Default());

struct S3Options {
  std::string endpoint;  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:4568"
  std::string bucket, prefix, region = "us-east-1";
  bool virtual_hosted = false;
  std::string access_key, secret_key, session_token;
  uint64_t part_size = 8 << 20;  // multipart upload above this size, in parts of it
  int max_attempts = 5;          // per request, on 5xx, throttling and timeouts
};
std::unique_ptr<Backend> NewS3(S3Options options);

// Refuses Put and Delete with PermissionDenied naming the location.
std::unique_ptr<Backend> NewReadOnly(std::unique_ptr<Backend> inner, std::string location);


// SigV4 pieces, exposed for tests against AWS's published examples.
namespace sigv4 {
struct Request {
  std::string method, path, query;  // path URI-encoded; query canonical (sorted, encoded)
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names, sorted; host, x-amz-* included
  std::string payload_hash;         // hex SHA-256 of the body
  std::string access_key, secret_key, region, stamp;  // stamp: 20130524T000000Z
};
// The value of the Authorization header.
std::string Authorization(const Request& r);
std::string UriEncode(std::string_view s, bool keep_slash);
std::string SigningKeyHex(const std::string& secret, const std::string& date, const std::string& region,
                          const std::string& service);
}  // namespace sigv4

}  // namespace lifeboat::storage
