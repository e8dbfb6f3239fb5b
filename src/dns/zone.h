// The answers of the plan's zone, precomputed into an immutable snapshot, and
// Answer(): query bytes in, response bytes out, with no allocation and no
// lock. Policy records (failover, weighted, multivalue) are resolved when the
// snapshot is built from the endpoints' current state; a change of health or
// of a routing control builds and publishes a new snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "dns/wire.h"
#include "plan/plan.h"

namespace lifeboat::dns {

// How a policy record was answered, for metrics.
enum class Outcome : uint8_t { kNone, kPrimary, kSecondary, kHealthy, kFailOpen, kNoData };
const char* OutcomeName(Outcome o);
inline constexpr int kOutcomeCount = 6;

struct RRSet {
  uint16_t type = 0;
  // Each record as written after its owner name: TYPE CLASS TTL RDLENGTH RDATA.
  std::vector<std::vector<uint8_t>> records;
  // Weighted records: one of `records` is answered per query, picked with
  // these cumulative weights; empty otherwise.
  std::vector<uint32_t> cumulative;
  Outcome outcome = Outcome::kNone;
};

struct Node {
  std::string owner;          // lower-case wire form
  std::vector<RRSet> rrsets;  // empty for an empty non-terminal
  std::string cname;          // lower-case wire form of the CNAME target, if any
  const RRSet* Find(uint16_t type) const;
};

struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Snapshot {
 public:
  // `up(endpoint)` says whether an endpoint is healthy and switched on.
  static Result<std::shared_ptr<const Snapshot>> Build(const plan::Dns& dns, const plan::Plan& plan,
                                                       const std::function<bool(const std::string&)>& up,
                                                       uint64_t generation);

  const Node* Find(std::string_view lower_wire_name) const;
  const std::string& apex() const { return apex_; }
  std::span<const uint8_t> negative_soa() const { return negative_soa_; }
  uint64_t generation() const { return generation_; }
  // The zone as an RFC 1035 master file: every RRset as this snapshot answers
  // it (policy records resolved; a weighted set lists every record it picks
  // from, with a comment). For `lifeboat dns zone` and the differential test
  // against NSD.
  std::string MasterFile() const;
  // Outcomes of the policy records, by record name, for status pages.
  const std::vector<std::pair<std::string, Outcome>>& policy_outcomes() const { return policy_outcomes_; }

 private:
  std::string apex_;
  std::vector<uint8_t> negative_soa_;  // the SOA record with TTL min(SOA TTL, minimum)
  std::unordered_map<std::string, Node, NameHash, std::equal_to<>> nodes_;
  uint64_t generation_ = 0;
  std::vector<std::pair<std::string, Outcome>> policy_outcomes_;
};

enum class Transport : uint8_t { kUdp, kTcp };

// What one answer was, for metrics.
struct AnswerInfo {
  uint16_t qtype = 0;
  uint16_t rcode = 0;
  Outcome outcome = Outcome::kNone;
  bool truncated = false;
};

// Answers the query in `packet` into `out` (at least 65535 bytes for TCP,
// 1232 for UDP). Returns the response size; 0 means send nothing.
// `random` picks weighted answers (any value; the caller supplies entropy).
size_t Answer(const Snapshot& snap, std::span<const uint8_t> packet, std::span<uint8_t> out, Transport transport,
              uint32_t random, AnswerInfo& info);

}  // namespace lifeboat::dns
