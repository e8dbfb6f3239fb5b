#include "postgres/instance.h"

#include <cstdlib>
#include <fstream>
#include <future>

namespace lifeboat::postgres {

std::string PasswordVariable(const plan::Database& db) {
  std::string v = "LIFEBOAT_DB_";
  for (char c : db.name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    v += (c == '-' || c == '.') ? '_' : c;
  }
  return v + "_PASSWORD";
}

Result<std::string> PasswordOf(const plan::Database& db) {
  if (const char* v = std::getenv(PasswordVariable(db).c_str()); v != nullptr && *v != '\0') return std::string(v);
  if (db.password_file.empty()) return std::string();
  std::ifstream in(db.password_file);
  if (!in) {
    return ErrnoError(errno, "database " + db.name + ": read its password_file " + db.password_file);
  }
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) {
    return FailedPrecondition("database " + db.name + ": the first line of " + db.password_file + " is empty");
  }
  return line;
}

Result<Target> TargetOf(const plan::Database& db, const std::string& region) {
  auto it = db.instances.find(region);
  if (it == db.instances.end()) return NotFound("database " + db.name + " has no instance in region " + region);
  LB_ASSIGN_OR_RETURN(auto password, PasswordOf(db));
  return Target{it->second, std::move(password), "lifeboat"};
}

std::map<std::string, Observed> ObserveAll(const plan::Database& db, Duration timeout) {
  std::map<std::string, std::future<Observed>> pending;
  for (const auto& [region, conninfo] : db.instances) {
    pending[region] = std::async(std::launch::async, [&db, region = region, conninfo = conninfo, timeout] {
      Observed o{region, Describe(conninfo), std::nullopt, std::nullopt};
      auto target = TargetOf(db, region);
      if (!target.ok()) {
        o.error = target.error();
        return o;
      }
      auto c = Conn::Open(*target, timeout);
      if (!c.ok()) {
        o.error = c.error();
        return o;
      }
      auto s = Inspect(*c, timeout);
      if (s.ok()) {
        o.state = std::move(*s);
      } else {
        o.error = s.error();
      }
      return o;
    });
  }
  std::map<std::string, Observed> out;
  for (auto& [region, f] : pending) out[region] = f.get();
  return out;
}

Result<std::string> WritablePrimary(const std::map<std::string, Observed>& seen) {
  std::vector<std::string> primaries;
  for (const auto& [region, o] : seen) {
    if (o.state && !o.state->in_recovery && !o.state->fenced) primaries.push_back(region);
  }
  if (primaries.size() > 1) {
    std::string list;
    for (const auto& r : primaries) list += (list.empty() ? "" : " and ") + r;
    return FailedPrecondition("the servers in " + list + " both accept writes; fence all but one (lifeboat db fence)");
  }
  if (primaries.empty()) return NotFound("no region's server is a writable primary");
  return primaries.front();
}

}  // namespace lifeboat::postgres
