// Feeds untrusted bytes to what lifeboat reads from a PostgreSQL server's
// answers and from a plan's connection strings: a WAL position (it must
// format back to text that parses to the same position), the name of a
// server for messages, and a password quoted into a connection string (libpq
// must read back exactly that password).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "postgres/conn.h"
#include "postgres/local.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto lsn = lifeboat::postgres::ParseLsn(text)) {
    if (lifeboat::postgres::ParseLsn(lifeboat::postgres::FormatLsn(*lsn)) != lsn) std::abort();
  }
  std::string info(text.substr(0, text.find('\0')));
  (void)lifeboat::postgres::Describe(info);
  // A value quoted for a connection string is read back as itself.
  std::string quoted = "host=x password=" + lifeboat::postgres::ConninfoValue(info);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(quoted.c_str(), &err);
  if (opts == nullptr) std::abort();
  for (auto* o = opts; o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && (o->val == nullptr || info != o->val)) std::abort();
  }
  PQconninfoFree(opts);
  return 0;
}
