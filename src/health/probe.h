// One probe of one address: TCP connect, or an HTTP(S) request whose status
// and body are checked. Asynchronous on an io_context; every probe ends by
// its deadline, so a black-holed endpoint delays nothing else.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "core/address.h"
#include "core/units.h"
#include "plan/plan.h"

namespace lifeboat::health {

// Why a probe failed; kOk when it passed.
enum class Reason {
  kOk,
  kRefused,
  kTimeout,
  kConnectError,
  kTlsError,
  kBadStatus,
  kBodyMismatch,
  kProtocolError,
  kWrongRole,  // postgres: answered, but not in the role the check expects
};
const char* ReasonName(Reason r);

struct ProbeResult {
  Reason reason = Reason::kOk;
  std::string detail;  // human-readable, e.g. "status 503, expected 200-299"
  Duration latency{};
  bool ok() const { return reason == Reason::kOk; }
};

// The TLS client context of https probes, verifying with the system's CA
// certificates. Loading those takes tens of milliseconds, so they load on the
// first Get() (Probe calls it for an https check before the probe's deadline
// runs), not when an agent whose plan has no https check starts.
class ClientTls {
 public:
  boost::asio::ssl::context& Get();  // any thread

 private:
  std::once_flag once_;
  std::optional<boost::asio::ssl::context> ctx_;
};

// Probes `address` as `check` says (http, https, tcp or postgres; never
// calculated) and calls `done` on the io_context's thread exactly once, by
// check.timeout. `tls` is used for https and must outlive the probe. A
// postgres check needs `database` (the plan's, check.database): its
// connection string's user and dbname and its password log in at
// `address`, and one query tells primary from standby.
void Probe(boost::asio::io_context& io, ClientTls& tls, const plan::Check& check,
           const Address& address, std::function<void(ProbeResult)> done,
           const plan::Database* database = nullptr);

}  // namespace lifeboat::health
