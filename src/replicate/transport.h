// The replication transport: TCP with TLS 1.3 authenticated by a pre-shared
// key on both ends (RFC 8446 external PSK with (EC)DHE, so sessions have
// forward secrecy; no certificates). The key comes from the plan's
// replication.key_file and is bound to the volume: each volume's sessions use
// HMAC-SHA256(key, "lifeboat replication v1 " + volume).
//
// A Conn may be used by one sending and one receiving thread at once: OpenSSL
// calls are serialized by a mutex over a non-blocking socket, and waiting
// happens outside the lock in poll().
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/address.h"
#include "core/fd.h"
#include "core/result.h"
#include "core/units.h"
#include "replicate/wire.h"

namespace lifeboat::replicate {

struct PskKey {
  std::string identity;  // "lifeboat/<volume>"
  std::string secret;    // 32 bytes
};

// Reads the key file (at least 16 bytes after trimming whitespace) and
// derives the volume's key. InvalidArgument or NotFound naming the file.
Result<PskKey> LoadKey(const std::string& key_file, const std::string& volume);
PskKey DeriveKey(std::string_view secret, const std::string& volume);

// The numeric host and port of a connected socket's peer ("peer" and "" when
// the socket cannot tell).
struct PeerName {
  std::string host = "peer", port;
};
PeerName PeerOf(int fd);

class Conn {
 public:
  ~Conn();
  // Connects and completes the handshake within `timeout`.
  static Result<std::unique_ptr<Conn>> Connect(const Address& to, const PskKey& key, std::chrono::milliseconds timeout);
  // Completes the server side of the handshake on an accepted socket.
  static Result<std::unique_ptr<Conn>> Accept(UniqueFd fd, const PskKey& key, std::chrono::milliseconds timeout);

  // Sends one complete frame (Writer::Finish). Unavailable when the
  // connection is gone.
  Status Send(std::string_view frame);
  // Receives one frame; Unavailable when the peer closed, InvalidArgument for
  // a bad length. `idle` bounds the wait (zero: forever).
  Result<Frame> Recv(std::chrono::milliseconds idle = std::chrono::milliseconds(0));
  // Makes blocked Send/Recv return Unavailable; safe from any thread.
  void Shutdown();
  // Ends this side's sending and reads (discarding) until the peer closes or
  // `limit` passes. Called after a last frame (an ERROR) so that the peer
  // reads it: closing with unread input would reset the connection, and a
  // reset may discard the frame before the peer reads it.
  void Linger(std::chrono::milliseconds limit);

  // Sending is paced to this rate (token bucket with a 256 KiB burst).
  void SetRateLimit(std::optional<Rate> rate);

  uint64_t bytes_sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t bytes_received() const { return received_.load(std::memory_order_relaxed); }
  const std::string& peer() const { return peer_; }

 private:
  struct Tls;
  Conn(UniqueFd fd, std::unique_ptr<Tls> tls, std::string peer);
  Status Handshake(bool server, std::chrono::milliseconds timeout);
  // Runs one OpenSSL I/O call under the lock, waiting in poll() (unlocked)
  // while it wants the socket. Returns its positive result.
  template <typename Op>
  Result<int> Io(Op op, std::chrono::milliseconds timeout, const char* what);
  // Waits (unlocked) until the socket may be ready for `events`, 200 ms at
  // most; DeadlineExceeded once `deadline` has passed.
  Status Await(short events, std::chrono::steady_clock::time_point deadline, const char* what);
  // Writes out what the write buffer holds (Send's records).
  Status FlushWrites();
  Status ReadExactly(uint8_t* p, size_t n, std::chrono::milliseconds idle);
  void Pace(size_t bytes);

  UniqueFd fd_;
  std::unique_ptr<Tls> tls_;
  std::string peer_;
  std::mutex mu_;  // every SSL_* call on this connection
  std::atomic<bool> shut_{false};
  std::atomic<uint64_t> sent_{0}, received_{0};
  std::optional<Rate> rate_;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point refill_;
};

// A listening TCP socket (SO_REUSEADDR). Accept returns the raw socket; the
// caller runs Conn::Accept on its own thread.
class Listener {
 public:
  static Result<std::unique_ptr<Listener>> Listen(const Address& at);
  // Waits for a connection; Unavailable after Close(); ResourceExhausted when
  // the process or system is out of descriptors or memory (the caller backs
  // off and tries again: the connection stays queued).
  Result<UniqueFd> Accept();
  // Sleeps for `d` or until Close(); false when closed.
  bool Pause(std::chrono::milliseconds d);
  void Close();
  uint16_t port() const { return port_; }

 private:
  UniqueFd fd_;
  UniqueFd wake_[2];
  uint16_t port_ = 0;
};

}  // namespace lifeboat::replicate
