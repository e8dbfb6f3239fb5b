// The drills' link fault: a TCP proxy on loopback that one region's agent
// replicates through (its --connect-to), and that the drill turns into a
// partition or a slow link. It forwards bytes both ways, half-closes as its
// ends do, and can
//   - cut the link: nothing moves either way, already open connections
//     stall as behind a dropped route, new ones are accepted and held; when
//     healed, what was held moves on (a TCP stream that outlived the cut);
//   - delay every byte by a fixed one-way latency and throttle each
//     direction to a rate, as a long and narrow link would.
// Two threads a direction a connection: a reader that timestamps what it
// reads, a writer that sends it when due and within the rate.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/address.h"
#include "core/fd.h"
#include "core/result.h"
#include "core/units.h"

namespace lifeboat::drill {

class FaultProxy {
 public:
  // Listens on 127.0.0.1 (any free port) and forwards to `upstream`.
  static Result<std::unique_ptr<FaultProxy>> Start(const Address& upstream);
  ~FaultProxy();  // stops everything and closes every connection
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  Address address() const { return {"127.0.0.1", port_}; }
  const Address& upstream() const { return upstream_; }

  void Cut(bool cut);
  // One-way latency, and each direction's rate in bytes a second (0: no limit).
  void Shape(Duration delay, uint64_t bytes_per_second);

  struct Stats {
    uint64_t connections = 0;   // accepted
    uint64_t bytes_up = 0;      // client to upstream, delivered
    uint64_t bytes_down = 0;    // upstream to client, delivered
  };
  Stats stats() const;

 private:
  struct Pipe;
  struct Conn;
  FaultProxy(Address upstream, UniqueFd listener, uint16_t port);
  void AcceptLoop();
  void ReadLoop(Pipe& p);
  void WriteLoop(Conn& c, Pipe& p);
  // Waits while the link is cut; false when stopping.
  bool WaitLinked();

  Address upstream_;
  UniqueFd listener_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable linked_cv_;
  bool cut_ = false;
  Duration delay_{0};
  uint64_t rate_ = 0;
  Stats stats_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread acceptor_;
};

}  // namespace lifeboat::drill
