// The drill client: a thread that writes numbered records to the sample
// application through a DNS name, as a user of the application would, and
// keeps every attempt for measure.h. It resolves the name with the drill's
// Resolver (honouring the TTL), sends `PUT /records/N` to the first address
// on the port the plan's endpoint at that address has, waits `interval`,
// and goes on with the next number whatever the outcome.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/address.h"
#include "core/clock.h"
#include "drill/measure.h"
#include "drill/resolver.h"

namespace lifeboat::drill {

struct ClientOptions {
  std::string name;  // "shop.example.com."
  // The application's address for a resolved IP ("127.0.0.2" -> 127.0.0.2:7712);
  // nullopt when the IP is none of the plan's endpoints.
  std::function<std::optional<Address>(const std::string& ip)> endpoint_of;
  Duration interval = std::chrono::milliseconds(10);
  Duration timeout = std::chrono::seconds(1);  // per write
  // The first record's number. A drill starts from a number no earlier run
  // used (see FirstRecordNumber), so that records an earlier run left in the
  // volume are never counted as this run's.
  uint64_t first = 1;
};

// A first record number above any an earlier run took: the time in
// microseconds since the Unix epoch.
uint64_t FirstRecordNumber(Clock& clock = Clock::Real());

class Client {
 public:
  Client(ClientOptions options, Resolver resolver, Clock& clock = Clock::Real());
  ~Client();  // stops
  void Start();
  void Stop();
  // Every attempt so far, in order.
  std::vector<Attempt> Attempts() const;
  // The latest attempt, without copying the others (for polling).
  std::optional<Attempt> LastAttempt() const;
  // Acknowledged and attempted writes so far (for progress lines).
  uint64_t acked() const { return acked_; }
  uint64_t attempted() const { return attempted_; }

 private:
  void Run();
  Attempt WriteOne(uint64_t seq);

  ClientOptions options_;
  Resolver resolver_;
  Clock& clock_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_{0}, attempted_{0};
  mutable std::mutex mu_;
  std::vector<Attempt> attempts_;
  std::thread thread_;
};

// The record numbers an application holds (GET /records at `app`).
Result<std::set<uint64_t>> ReadBack(const Address& app, Duration timeout);
// The body of GET /records: a decimal number a line. InvalidArgument
// naming the first line that is not one.
Result<std::set<uint64_t>> ParseRecordList(std::string_view body);

}  // namespace lifeboat::drill
