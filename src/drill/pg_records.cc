#include "drill/pg_records.h"

#include <charconv>
#include <mutex>
#include <optional>
#include <span>

#include "core/strings.h"

namespace lifeboat::drill {
namespace {

constexpr char kUndefinedTable[] = "42P01";

class PgRecords final : public Records {
 public:
  PgRecords(postgres::Target target, Duration timeout) : target_(std::move(target)), timeout_(timeout) {}

  Status Put(uint64_t n, const std::string& body) override {
    std::lock_guard lock(mu_);
    LB_ASSIGN_OR_RETURN(postgres::Conn * c, Connection());
    if (!table_) {
      LB_RETURN_IF_ERROR(Checked(c->Exec("CREATE TABLE IF NOT EXISTS lifeboat_drill_records "
                                         "(n bigint PRIMARY KEY, body bytea NOT NULL)",
                                         timeout_)));
      table_ = true;
    }
    return Checked(StatusOf(c->Query("INSERT INTO lifeboat_drill_records (n, body) VALUES ($1, decode($2, 'hex')) "
                                     "ON CONFLICT (n) DO UPDATE SET body = EXCLUDED.body",
                                     {std::to_string(n), HexOf(body)}, timeout_)));
  }

  Result<std::string> Get(uint64_t n) override {
    std::lock_guard lock(mu_);
    LB_ASSIGN_OR_RETURN(postgres::Conn * c, Connection());
    auto rows = c->Query("SELECT encode(body, 'hex') AS body FROM lifeboat_drill_records WHERE n = $1",
                         {std::to_string(n)}, timeout_);
    if (!rows.ok()) {
      if (c->last_error().sqlstate == kUndefinedTable) return NotFound("no record " + std::to_string(n));
      return Checked(rows.error());
    }
    if (rows->empty()) return NotFound("no record " + std::to_string(n));
    std::string hex = rows->At(0, "body").value_or("");
    std::string bytes(hex.size() / 2, '\0');
    if (!ParseHex(hex, std::span(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size()))) {
      return Internal("record " + std::to_string(n) + ": the server returned a body that is not hex");
    }
    return bytes;
  }

  Result<std::set<uint64_t>> List() override {
    std::lock_guard lock(mu_);
    LB_ASSIGN_OR_RETURN(postgres::Conn * c, Connection());
    auto rows = c->Query("SELECT n FROM lifeboat_drill_records ORDER BY n", {}, timeout_);
    std::set<uint64_t> out;
    if (!rows.ok()) {
      if (c->last_error().sqlstate == kUndefinedTable) return out;  // nothing written yet
      return Checked(rows.error());
    }
    for (size_t i = 0; i < rows->size(); ++i) {
      std::string text = rows->At(i, "n").value_or("");
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return Internal("the server returned a record number that is not one: '" + text.substr(0, 20) + "'");
      }
      out.insert(n);
    }
    return out;
  }

 private:
  Result<postgres::Conn*> Connection() {
    if (!conn_ || !conn_->ok()) {
      conn_.reset();
      table_ = false;
      auto c = postgres::Conn::Open(target_, timeout_);
      if (!c.ok()) return c.error();
      conn_.emplace(std::move(*c));
    }
    return &*conn_;
  }

  // An error, after which a broken connection is opened again next time.
  Error Checked(Error e) {
    if (conn_ && !conn_->ok()) conn_.reset();
    return e;
  }
  Status Checked(Status s) {
    if (s.ok()) return s;
    return Checked(s.error());
  }

  postgres::Target target_;
  Duration timeout_;
  std::mutex mu_;
  std::optional<postgres::Conn> conn_;
  bool table_ = false;
};

}  // namespace

std::shared_ptr<Records> PostgresRecords(postgres::Target target, Duration timeout) {
  return std::make_shared<PgRecords>(std::move(target), timeout);
}

}  // namespace lifeboat::drill
