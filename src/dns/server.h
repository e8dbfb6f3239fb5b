// The authoritative DNS server: UDP workers (one thread each, one
// SO_REUSEPORT socket per listen address, batched recvmmsg/sendmmsg) and a
// TCP thread (RFC 7766: length-prefixed, pipelined, idle timeout, bounded
// connections). Answers come from the published Snapshot; readers never lock
// (hazard pointers, see SnapshotHolder).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/address.h"
#include "core/result.h"
#include "dns/zone.h"
#include "metrics/registry.h"

namespace lifeboat::dns {

// Publishes snapshots to reader threads without locks on the read side:
// each reader announces the snapshot it uses in its own slot; an old
// snapshot is freed only when no slot holds it. Thread-safe.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(int readers);
  ~SnapshotHolder();

  // Reader `slot` (0..readers-1, one thread each) takes the current snapshot;
  // it stays valid until Release(slot).
  const Snapshot* Acquire(int slot);
  void Release(int slot);
  // Replaces the snapshot (any thread).
  void Publish(std::shared_ptr<const Snapshot> snap);
  std::shared_ptr<const Snapshot> current() const;
  uint64_t swaps() const { return swaps_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Slot {
    std::atomic<const Snapshot*> p{nullptr};
  };
  void ReclaimLocked();

  std::atomic<const Snapshot*> current_{nullptr};
  std::unique_ptr<Slot[]> slots_;
  int nslots_;
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> owner_;                 // guarded by mu_
  std::vector<std::shared_ptr<const Snapshot>> retired_;  // guarded by mu_
  std::atomic<uint64_t> swaps_{0};
};

struct DnsServerOptions {
  std::vector<Address> listen;
  int workers = 0;  // 0: one per core
  Duration tcp_idle_timeout = std::chrono::seconds(10);
  size_t max_tcp_connections = 512;
};

// Serves the zone. Start, then Publish snapshots from any thread; Stop (or
// destruction) joins the threads.
class DnsServer {
 public:
  DnsServer(DnsServerOptions options, metrics::Registry& metrics);
  ~DnsServer();

  // Binds every address (UDP and TCP) and starts the threads. A port of 0
  // binds a free port, the same for UDP and TCP; bound() tells which.
  Status Start();
  void Stop();
  void Publish(std::shared_ptr<const Snapshot> snap) { holder_.Publish(std::move(snap)); }
  // Builds the answers of `plan`'s zone for the endpoints `up` says are up,
  // and publishes them. On error the old answers stay.
  Status Republish(const plan::Plan& plan, const std::function<bool(const std::string&)>& up);
  std::shared_ptr<const Snapshot> snapshot() const { return holder_.current(); }
  const std::vector<Address>& bound() const { return bound_; }

 private:
  struct Counters;
  class Tcp;
  void UdpWorker(int index, std::vector<int> fds);
  void RegisterMetrics(metrics::Registry& metrics);

  DnsServerOptions options_;
  SnapshotHolder holder_;
  std::vector<Address> bound_;
  std::vector<std::vector<int>> udp_fds_;  // [worker][address]
  std::vector<int> tcp_fds_;
  int stop_fd_ = -1;
  std::vector<std::thread> threads_;
  std::unique_ptr<Tcp> tcp_;
  std::vector<std::unique_ptr<Counters>> counters_;  // one per worker, then one for TCP
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace lifeboat::dns
