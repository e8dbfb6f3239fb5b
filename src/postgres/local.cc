#include "postgres/local.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <thread>

#include "core/fs.h"
#include "core/process.h"
#include "postgres/instance.h"

namespace lifeboat::postgres {
namespace fs = std::filesystem;
namespace {

using Steady = std::chrono::steady_clock;

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// A value for postgresql.auto.conf: single-quoted, ' doubled, \ escaped.
std::string GucValue(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out += '\'';
    if (c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string Tail(const std::string& output, size_t lines = 6) {
  std::vector<std::string> all;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    auto cr = line.rfind('\r');  // progress lines rewrite themselves
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (!line.empty()) all.push_back(line);
  }
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += (out.empty() ? "" : " | ") + all[i];
  return out;
}


// Runs PostgreSQL's programs for one data directory, as its owner.
class Runner {
 public:
  static Result<Runner> For(const plan::Database& db, const std::string& region, int major) {
    auto it = db.data_dir.find(region);
    if (it == db.data_dir.end()) {
      return FailedPrecondition("database " + db.name + " has no data_dir for region " + region +
                                ": add 'data_dir: { " + region + ": /var/lib/postgresql/15/" + db.name +
                                " }' to the plan (it is where this host's server keeps its files)");
    }
    Runner r;
    r.data_dir_ = it->second;
    LB_ASSIGN_OR_RETURN(r.bin_, FindBinDir(db.bin_dir, major));
    // The owner of the data directory, or of the directory it will be made in.
    std::string probe = r.data_dir_;
    struct stat st{};
    while (::stat(probe.c_str(), &st) != 0) {
      std::string parent = fs::path(probe).parent_path().string();
      if (parent == probe || parent.empty()) return NotFound("no directory above " + r.data_dir_);
      probe = parent;
    }
    r.uid_ = st.st_uid;
    r.gid_ = st.st_gid;
    if (::geteuid() == 0) {
      if (st.st_uid == 0) {
        return FailedPrecondition(probe + " belongs to root, and PostgreSQL does not run as root: make it belong to "
                                          "the server's user (chown postgres: " + probe + ")");
      }
      r.prefix_ = "setpriv --reuid=" + std::to_string(st.st_uid) + " --regid=" + std::to_string(st.st_gid) +
                  " --clear-groups ";
    } else if (st.st_uid != ::geteuid()) {
      return PermissionDenied(probe + " belongs to uid " + std::to_string(st.st_uid) +
                              ": run this as that user (PostgreSQL's files keep their owner)");
    }
    return r;
  }

  const std::string& data_dir() const { return data_dir_; }
  std::string log_file() const { return data_dir_ + ".log"; }

  // Runs `program args...`; non-zero exit is an error with the output's end.
  Result<CommandResult> Run(const std::string& program, const std::vector<std::string>& args,
                            const std::string& password, Duration timeout,
                            const std::function<void(std::string_view)>& on_output = {}, bool check = true) const {
    std::string cmd = prefix_ + ShellQuote(bin_ + "/" + program);
    for (const auto& a : args) cmd += " " + ShellQuote(a);
    std::vector<std::pair<std::string, std::string>> env = {{"LC_ALL", "C"}};
    if (!password.empty()) env.emplace_back("PGPASSWORD", password);
    LB_ASSIGN_OR_RETURN(auto r, RunCommand(cmd + " 2>&1", env, timeout, 256 * 1024, on_output));
    if (check && r.exit_code != 0) {
      return Internal(program + " failed (exit " + std::to_string(r.exit_code) + "): " + Tail(r.output));
    }
    return r;
  }

  // pg_ctl status: 0 running, 3 not running, 4 no data directory.
  Result<int> RunState() const {
    LB_ASSIGN_OR_RETURN(auto r, Run("pg_ctl", {"status", "-D", data_dir_}, "", std::chrono::seconds(30), {}, false));
    return r.exit_code;
  }

  Status Start(Duration timeout) const {
    auto secs = std::to_string(std::max<int64_t>(5, std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    auto r = Run("pg_ctl", {"start", "-D", data_dir_, "-l", log_file(), "-w", "-t", secs}, "", timeout + std::chrono::seconds(5));
    if (!r.ok()) return r.error().Wrap("start the server in " + data_dir_ + " (its log: " + log_file() + ")");
    return Ok();
  }

  Status Stop(Duration timeout, bool immediate = false) const {
    LB_ASSIGN_OR_RETURN(int st, RunState());
    if (st != 0) return Ok();
    auto secs = std::to_string(std::max<int64_t>(5, std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    return StatusOf(Run("pg_ctl", {"stop", "-D", data_dir_, "-m", immediate ? "immediate" : "fast", "-w", "-t", secs},
                        "", timeout + std::chrono::seconds(5)));
  }

  // Writes a file beside the data directory (which may not exist yet),
  // owned by its owner; for initdb's password file.
  Result<std::string> WriteBeside(const std::string& name, std::string_view data) const {
    std::string path = (fs::path(data_dir_).parent_path() / name).string();
    LB_RETURN_IF_ERROR(WriteFileAtomic(path, data, 0600));
    if (::geteuid() == 0 && ::chown(path.c_str(), uid_, gid_) != 0) return ErrnoError(errno, "chown " + path);
    return path;
  }

  // The cluster's system identifier from pg_control; "" when there is none.
  Result<std::string> SystemId() const {
    if (!fs::exists(fs::path(data_dir_) / "PG_VERSION")) return std::string();
    LB_ASSIGN_OR_RETURN(auto r, Run("pg_controldata", {data_dir_}, "", std::chrono::seconds(30)));
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("Database system identifier:")) {
        std::string v = line.substr(line.find(':') + 1);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      }
    }
    return Internal("pg_controldata " + data_dir_ + " printed no system identifier");
  }

  // Writes a file in the data directory, owned like the rest of it.
  Status WriteOwned(const std::string& name, std::string_view data) const {
    std::string path = (fs::path(data_dir_) / name).string();
    LB_RETURN_IF_ERROR(WriteFileAtomic(path, data, 0600));
    if (::geteuid() == 0 && ::chown(path.c_str(), uid_, gid_) != 0) return ErrnoError(errno, "chown " + path);
    return Ok();
  }

 private:
  std::string data_dir_, bin_, prefix_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

// The value of `keyword` in a connection string, or "".
std::string ConninfoOf(const std::string& conninfo, std::string_view keyword) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    PQfreemem(err);
    return "";
  }
  std::string value;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::string_view(o->keyword) == keyword) value = o->val;
  }
  PQconninfoFree(opts);
  return value;
}

// The port a region's connection string names, or "".
std::string PortOf(const std::string& conninfo) { return ConninfoOf(conninfo, "port"); }

// The TCP host a region's connection string names, or "" (none, or a
// socket directory).
std::string TcpHostOf(const std::string& conninfo) {
  std::string host = ConninfoOf(conninfo, "host");
  return !host.empty() && host.front() == '/' ? "" : host;
}

// Makes the data directory a standby of `source`: standby.signal, and in
// postgresql.auto.conf whom to follow, through which slot, and this
// region's own address and port (the files came from another server).
Status ConfigureStandby(const Runner& run, const plan::Database& db, const std::string& region,
                        const std::string& source, const std::string& password) {
  std::string conninfo = db.instances.at(source) + " application_name=" + StandbyName(region);
  if (!password.empty()) conninfo += " password=" + ConninfoValue(password);
  // wal_retrieve_retry_interval: a standby whose primary died retries it
  // every 5 s by default, and a promotion waited for that retry (5 s of a
  // failover's time, measured by bench/postgres.sh).
  std::map<std::string, std::string> set = {{"primary_conninfo", conninfo},
                                            {"primary_slot_name", StandbyName(region)},
                                            {"wal_retrieve_retry_interval", "500ms"}};
  if (auto port = PortOf(db.instances.at(region)); !port.empty()) set["port"] = port;
  if (auto host = TcpHostOf(db.instances.at(region)); !host.empty()) set["listen_addresses"] = host;
  // A standby's own settings: a fence or a sync list it inherited must not
  // come back when it is promoted (Promote sets them again anyway).
  std::vector<std::string> drop = {"default_transaction_read_only", "synchronous_standby_names"};
  std::string path = (fs::path(run.data_dir()) / "postgresql.auto.conf").string();
  std::string old;
  if (auto r = ReadFile(path); r.ok()) old = *r;
  std::string out;
  std::istringstream in(old);
  for (std::string line; std::getline(in, line);) {
    std::string key = line.substr(0, line.find_first_of(" \t="));
    if (set.count(key) || std::find(drop.begin(), drop.end(), key) != drop.end()) continue;
    out += line + "\n";
  }
  out += "# lifeboat: this region's (" + region + ") own settings, following " + source + "\n";
  for (const auto& [k, v] : set) out += k + " = " + GucValue(v) + "\n";
  LB_RETURN_IF_ERROR(run.WriteOwned("postgresql.auto.conf", out));
  return run.WriteOwned("standby.signal", "");
}

Status EnsureSlot(Conn& primary, const std::string& name) {
  return primary.Exec("SELECT pg_create_physical_replication_slot('" + name +
                      "') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '" + name + "')");
}

// Waits until `region`'s server streams from its primary on the primary's
// timeline. A standby that cannot follow (its WAL went past the point where
// the primary's timeline forked) reconnects every few seconds on its old
// timeline: after a minute of that, the server's log says why.
Status WaitStreaming(const plan::Database& db, const std::string& region, uint32_t timeline,
                     const std::string& log_file, Steady::time_point deadline, const ProgressFn& progress) {
  if (progress) progress({"catching up", -1, "waiting for the standby to stream on timeline " + std::to_string(timeline)});
  LB_ASSIGN_OR_RETURN(auto target, TargetOf(db, region));
  const auto started = Steady::now();
  std::string last;
  for (;;) {
    auto c = Conn::Open(target, std::chrono::seconds(5));
    bool wrong_timeline = false;
    if (c.ok()) {
      auto s = Inspect(*c, std::chrono::seconds(5));
      if (s.ok() && s->in_recovery && s->upstream_status == "streaming" && s->timeline >= timeline) return Ok();
      if (s.ok() && s->in_recovery) {
        wrong_timeline = s->timeline != 0 && s->timeline < timeline;
        last = "WAL receiver: " + (s->upstream_status.empty() ? std::string("none") : s->upstream_status) +
               (wrong_timeline ? " on timeline " + std::to_string(s->timeline) : std::string());
      } else {
        last = s.ok() ? std::string("not a standby") : s.error().message();
      }
    } else {
      last = c.error().message();
    }
    auto now = Steady::now();
    if (now > deadline || (now - started > std::chrono::minutes(1) && (wrong_timeline || last.find("none") != std::string::npos))) {
      return FailedPrecondition("the server in " + region + " does not stream from timeline " + std::to_string(timeline) +
                                " (" + last + "); its log, " + log_file + ", says why");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int MajorOf(const std::string& version) { return std::atoi(version.c_str()); }

// The source region and a connection to it: the one named, or the one
// writable primary.
struct Source {
  std::string region;
  Conn conn;
  ServerState state;
};
Result<Source> OpenSource(const plan::Database& db, const std::string& region, const std::string& named,
                          const std::map<std::string, Observed>& seen) {
  std::string source = named;
  if (source.empty()) {
    auto p = WritablePrimary(seen);
    if (!p.ok()) {
      std::string why;
      for (const auto& [r, o] : seen) {
        why += "; " + r + ": " + (o.state ? o.state->Role() : o.error ? o.error->message() : std::string("?"));
      }
      return p.error().Wrap("find the primary to follow (name it with --from)" + why);
    }
    source = *p;
  }
  if (source == region) return InvalidArgument(region + " is the primary of " + db.name + "; it follows nobody");
  LB_ASSIGN_OR_RETURN(auto target, TargetOf(db, source));
  LB_ASSIGN_OR_RETURN(auto conn, Conn::Open(target, std::chrono::seconds(10)));
  LB_ASSIGN_OR_RETURN(auto state, Inspect(conn));
  if (state.in_recovery) return FailedPrecondition("the server in " + source + " is a standby, not a primary");
  return Source{source, std::move(conn), std::move(state)};
}

// What Bootstrap and Rewind start from: every region's server read, the
// primary to follow opened, this host's data directory and the password.
struct Prepared {
  Steady::time_point deadline;
  std::map<std::string, Observed> seen;
  Source src;
  Runner run;
  std::string password;
};
Result<Prepared> Prepare(const plan::Database& db, const std::string& region, const LocalOptions& opt) {
  auto deadline = Steady::now() + opt.timeout;
  if (opt.progress) opt.progress({"checking", -1, "reading every region's server"});
  auto seen = ObserveAll(db, std::chrono::seconds(5));
  LB_ASSIGN_OR_RETURN(auto src, OpenSource(db, region, opt.source, seen));
  LB_ASSIGN_OR_RETURN(auto run, Runner::For(db, region, MajorOf(src.state.version)));
  LB_ASSIGN_OR_RETURN(auto password, PasswordOf(db));
  return Prepared{deadline, std::move(seen), std::move(src), std::move(run), std::move(password)};
}

}  // namespace

std::string ConninfoValue(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

Result<std::string> FindBinDir(const std::string& configured, int major) {
  if (!configured.empty()) {
    if (::access((configured + "/pg_ctl").c_str(), X_OK) != 0) {
      return NotFound("bin_dir " + configured + " has no pg_ctl");
    }
    return configured;
  }
  const fs::path base = "/usr/lib/postgresql";
  if (major > 0 && ::access((base / std::to_string(major) / "bin/pg_ctl").c_str(), X_OK) == 0) {
    return (base / std::to_string(major) / "bin").string();
  }
  int best = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(base, ec)) {
    int v = std::atoi(e.path().filename().c_str());
    if (v > best && ::access((e.path() / "bin/pg_ctl").c_str(), X_OK) == 0) best = v;
  }
  if (best == 0) {
    return NotFound("no PostgreSQL programs under /usr/lib/postgresql: install postgresql-15 or set the database's "
                    "bin_dir");
  }
  return (base / std::to_string(best) / "bin").string();
}

Result<std::vector<Problem>> CheckPrimaryForStandby(Conn& primary, const std::string& data_dir) {
  LB_ASSIGN_OR_RETURN(auto r, primary.Query(R"sql(
SELECT current_setting('wal_level') AS wal_level,
       current_setting('max_wal_senders')::int AS max_senders,
       (SELECT count(*) FROM pg_stat_replication) AS senders,
       current_setting('max_replication_slots')::int AS max_slots,
       (SELECT count(*) FROM pg_replication_slots) AS slots,
       current_setting('wal_log_hints') AS wal_log_hints,
       current_setting('data_checksums') AS checksums,
       (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
       (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint AS size
)sql"));
  std::vector<Problem> out;
  auto v = [&](const char* k) { return r.At(0, k).value_or(""); };
  if (v("wal_level") == "minimal") {
    out.push_back({"wal_level is minimal: the primary writes too little WAL for a standby",
                   "set wal_level = replica in its postgresql.conf and restart it"});
  }
  if (std::atoi(v("senders").c_str()) >= std::atoi(v("max_senders").c_str())) {
    out.push_back({"max_wal_senders is " + v("max_senders") + " and all are in use",
                   "raise max_wal_senders in the primary's postgresql.conf (10 is the default) and restart it"});
  }
  if (std::atoi(v("slots").c_str()) >= std::atoi(v("max_slots").c_str())) {
    out.push_back({"max_replication_slots is " + v("max_slots") + " and all are taken",
                   "raise max_replication_slots and restart, or drop an unused slot (pg_drop_replication_slot)"});
  }
  if (v("wal_log_hints") != "on" && v("checksums") != "on") {
    out.push_back({"neither wal_log_hints nor data checksums are on, so pg_rewind cannot bring this primary back "
                   "as a standby after a failover",
                   "set wal_log_hints = on in its postgresql.conf and restart it (or enable checksums with "
                   "pg_checksums while it is stopped)"});
  }
  if (v("can_replicate") != "t") {
    out.push_back({"the user has no REPLICATION attribute", "ALTER ROLE <user> REPLICATION (as a superuser)"});
  }
  // Free space where the copy goes: its size and a tenth more.
  std::string probe = data_dir;
  struct statvfs fsst{};
  while (::statvfs(probe.c_str(), &fsst) != 0) {
    std::string parent = fs::path(probe).parent_path().string();
    if (parent == probe || parent.empty()) break;
    probe = parent;
  }
  uint64_t free_bytes = static_cast<uint64_t>(fsst.f_bavail) * fsst.f_frsize;
  uint64_t need = std::strtoull(v("size").c_str(), nullptr, 10);
  need += need / 10;
  if (free_bytes < need) {
    out.push_back({"the copy needs about " + HumanBytes(need) + " and " + probe + " has " +
                       HumanBytes(free_bytes) + " free",
                   "free space there, or put data_dir on a larger file system"});
  }
  return out;
}

Result<LocalOutcome> Bootstrap(const plan::Database& db, const std::string& region, const LocalOptions& opt) {
  LB_ASSIGN_OR_RETURN(auto prep, Prepare(db, region, opt));
  auto& [deadline, seen, src, run, password] = prep;
  auto say = [&](std::string phase, int pct, std::string detail) {
    if (opt.progress) opt.progress({std::move(phase), pct, std::move(detail)});
  };
  const std::string slot = StandbyName(region);
  const Observed& here = seen.at(region);
  if (here.state) {
    const ServerState& s = *here.state;
    if (!s.in_recovery) {
      return FailedPrecondition("the server in " + region + " is a primary" + (s.fenced ? " (fenced)" : "") +
                                "; `lifeboat db rewind " + db.name + " --region " + region +
                                "` makes an old primary follow the new one");
    }
    if (s.system_identifier != src.state.system_identifier) {
      return FailedPrecondition("the server in " + region + " is a standby of another cluster (system identifier " +
                                s.system_identifier + ", " + src.region + "'s is " + src.state.system_identifier +
                                "); move its data directory away first");
    }
    LB_RETURN_IF_ERROR(EnsureSlot(src.conn, slot));
    if (s.upstream_status == "streaming" && s.timeline >= src.state.timeline) {
      return LocalOutcome{"already a standby of " + src.region + ", streaming", src.region};
    }
    LB_RETURN_IF_ERROR(WaitStreaming(db, region, src.state.timeline, run.log_file(), deadline, opt.progress));
    return LocalOutcome{"a standby of " + src.region + " already; now streaming", src.region};
  }
  LB_ASSIGN_OR_RETURN(int running, run.RunState());
  if (running == 0) {
    return Unavailable("the server in " + run.data_dir() + " runs but cannot be reached at " + here.where + ": " +
                       (here.error ? here.error->message() : std::string("?")));
  }
  LB_ASSIGN_OR_RETURN(auto sysid, run.SystemId());
  if (!sysid.empty()) {
    bool standby = fs::exists(fs::path(run.data_dir()) / "standby.signal");
    if (sysid != src.state.system_identifier || !standby) {
      return FailedPrecondition(run.data_dir() + " holds " +
                                (sysid != src.state.system_identifier ? "another cluster (system identifier " + sysid + ")"
                                                                      : std::string("a primary's files")) +
                                ", which bootstrap never overwrites: `lifeboat db rewind` brings back an old "
                                "primary; otherwise move the directory away");
    }
    say("starting", -1, "an existing standby in " + run.data_dir());
    LB_RETURN_IF_ERROR(EnsureSlot(src.conn, slot));
    LB_RETURN_IF_ERROR(ConfigureStandby(run, db, region, src.region, password));
    LB_RETURN_IF_ERROR(run.Start(std::chrono::minutes(5)));
    LB_RETURN_IF_ERROR(WaitStreaming(db, region, src.state.timeline, run.log_file(), deadline, opt.progress));
    return LocalOutcome{"started the existing standby; streaming from " + src.region, src.region};
  }
  std::error_code ec;
  if (fs::exists(run.data_dir(), ec) && !fs::is_empty(run.data_dir(), ec)) {
    return FailedPrecondition(run.data_dir() + " is not empty and holds no cluster; bootstrap builds into an empty or "
                                               "absent directory");
  }
  LB_ASSIGN_OR_RETURN(auto problems, CheckPrimaryForStandby(src.conn, run.data_dir()));
  {
    // pg_hba: the standby's own way in, a replication connection.
    LB_ASSIGN_OR_RETURN(auto t, TargetOf(db, src.region));
    t.replication = true;
    auto rc = Conn::Open(t, std::chrono::seconds(10));
    if (!rc.ok()) {
      problems.push_back({"a replication connection to " + src.region + " fails: " + rc.error().message(),
                          "add a 'host replication <user> <this host>/32 scram-sha-256' line to its pg_hba.conf "
                          "and reload it"});
    }
  }
  if (!problems.empty()) {
    std::string msg = src.region + "'s server cannot feed a new standby yet:";
    for (const auto& p : problems) msg += "\n  - " + p.what + "\n    fix: " + p.fix;
    return FailedPrecondition(msg);
  }
  LB_RETURN_IF_ERROR(EnsureSlot(src.conn, slot));
  say("base backup", 0, "from " + src.region);
  std::string pending;
  auto on_output = [&](std::string_view chunk) {
    pending.append(chunk);
    // "  123456/789012 kB (15%), 0/1 tablespace"
    auto close = pending.rfind("%)");
    if (close == std::string::npos) return;
    auto open = pending.rfind('(', close);
    auto kb = pending.rfind(" kB", open);
    if (open != std::string::npos) {
      int pct = std::atoi(pending.c_str() + open + 1);
      std::string detail;
      if (kb != std::string::npos) {
        auto start = pending.find_last_of(" \r\n", kb - 1);
        detail = pending.substr(start == std::string::npos ? 0 : start + 1, kb + 3 - (start == std::string::npos ? 0 : start + 1));
      }
      say("base backup", pct, detail);
    }
    pending.erase(0, close + 2);
  };
  std::string conninfo = db.instances.at(src.region) + " application_name=" + slot;
  auto bb = run.Run("pg_basebackup", {"-D", run.data_dir(), "-X", "stream", "-S", slot, "-P", "-c", "fast", "-d", conninfo},
                    password, Remaining(deadline, std::chrono::seconds(1)), on_output);
  if (!bb.ok()) return bb.error().Wrap("build " + region + "'s standby from " + src.region);
  say("base backup", 100, "done");
  std::vector<std::string> warnings;
  if (auto keep = src.conn.Query("SELECT current_setting('wal_keep_size') AS k, current_setting('archive_mode') AS a");
      keep.ok() && keep->At(0, "k").value_or("") == "0" && keep->At(0, "a").value_or("") == "off") {
    warnings.push_back("wal_keep_size is 0 and nothing archives WAL: after a failover, pg_rewind needs the old "
                       "primary's WAL back to the last checkpoint the servers shared, which a checkpoint may already "
                       "have removed; set wal_keep_size (say 1GB) on every server");
  }
  LB_RETURN_IF_ERROR(ConfigureStandby(run, db, region, src.region, password));
  say("starting", -1, run.data_dir());
  LB_RETURN_IF_ERROR(run.Start(std::chrono::minutes(5)));
  LB_RETURN_IF_ERROR(WaitStreaming(db, region, src.state.timeline, run.log_file(), deadline, opt.progress));
  return LocalOutcome{"built a standby of " + src.region + " in " + run.data_dir() + "; streaming", src.region,
                      std::move(warnings)};
}

Result<LocalOutcome> Rewind(const plan::Database& db, const std::string& region, const LocalOptions& opt) {
  LB_ASSIGN_OR_RETURN(auto prep, Prepare(db, region, opt));
  auto& [deadline, seen, src, run, password] = prep;
  auto say = [&](std::string phase, int pct, std::string detail) {
    if (opt.progress) opt.progress({std::move(phase), pct, std::move(detail)});
  };
  const Observed& here = seen.at(region);
  if (here.state && here.state->in_recovery && here.state->upstream_status == "streaming" && here.state->timeline >= src.state.timeline &&
      here.state->system_identifier == src.state.system_identifier) {
    return LocalOutcome{"already a standby, streaming; nothing to rewind", src.region};
  }
  if (here.state && !here.state->in_recovery && !here.state->fenced) {
    return FailedPrecondition("the server in " + region + " is a writable primary, and so is " + src.region +
                              "'s: fence one first (lifeboat db fence " + db.name + " --region " + region + ")");
  }
  LB_ASSIGN_OR_RETURN(auto sysid, run.SystemId());
  if (sysid.empty()) {
    return FailedPrecondition(run.data_dir() + " holds no cluster: `lifeboat db bootstrap` builds a standby there");
  }
  if (sysid != src.state.system_identifier) {
    return FailedPrecondition(run.data_dir() + " holds another cluster (system identifier " + sysid + ", " +
                              src.region + "'s is " + src.state.system_identifier + "); rewind cannot join them");
  }
  // pg_rewind reads the source's timeline from its control file, which a
  // promotion updates only when its checkpoint ends: make sure it has.
  LB_RETURN_IF_ERROR(src.conn.Exec("CHECKPOINT", std::chrono::minutes(5)));
  say("stopping", -1, run.data_dir());
  LB_RETURN_IF_ERROR(run.Stop(std::chrono::minutes(2)));
  LB_RETURN_IF_ERROR(EnsureSlot(src.conn, StandbyName(region)));
  say("rewind", -1, "against " + src.region);
  auto rw = run.Run("pg_rewind", {"--target-pgdata=" + run.data_dir(), "--source-server=" + db.instances.at(src.region), "-P"},
                    password, Remaining(deadline, std::chrono::seconds(1)), [&](std::string_view chunk) {
                      auto close = chunk.rfind("%)");
                      if (close == std::string_view::npos) return;
                      auto open = chunk.rfind('(', close);
                      if (open != std::string_view::npos) say("rewind", std::atoi(std::string(chunk.substr(open + 1)).c_str()), "");
                    });
  if (!rw.ok()) {
    std::string hint;
    if (rw.error().message().find("could not find previous WAL record") != std::string::npos ||
        rw.error().message().find("could not open file") != std::string::npos) {
      hint = "; the WAL back to the servers' last common checkpoint is gone from " + run.data_dir() +
             " (set wal_keep_size on every server so that it stays); to rebuild it instead, move the directory "
             "away and run `lifeboat db bootstrap " + db.name + " --region " + region + "`";
    }
    return Error(rw.error().code(), "rewind " + region + " against " + src.region + ": " + rw.error().message() + hint);
  }
  bool nothing = rw->output.find("no rewind required") != std::string::npos;
  LB_RETURN_IF_ERROR(ConfigureStandby(run, db, region, src.region, password));
  say("starting", -1, run.data_dir());
  LB_RETURN_IF_ERROR(run.Start(std::chrono::minutes(5)));
  LB_RETURN_IF_ERROR(WaitStreaming(db, region, src.state.timeline, run.log_file(), deadline, opt.progress));
  return LocalOutcome{std::string(nothing ? "no rewind was needed; " : "rewound; ") + "now a standby of " + src.region +
                          ", streaming",
                      src.region};
}

Status StopServer(const plan::Database& db, const std::string& region, Duration timeout, bool immediate) {
  LB_ASSIGN_OR_RETURN(auto run, Runner::For(db, region, 0));
  return run.Stop(timeout, immediate);
}

Status StartServer(const plan::Database& db, const std::string& region, Duration timeout) {
  LB_ASSIGN_OR_RETURN(auto run, Runner::For(db, region, 0));
  LB_ASSIGN_OR_RETURN(int state, run.RunState());
  if (state == 0) return Ok();
  if (state == 4) return NotFound("no server in " + run.data_dir() + " (lifeboat db bootstrap builds a standby)");
  return run.Start(timeout);
}

Result<std::string> InitServer(const plan::Database& db, const std::string& region) {
  LB_ASSIGN_OR_RETURN(auto run, Runner::For(db, region, 0));
  std::error_code ec;
  if (fs::exists(run.data_dir(), ec) && !fs::is_empty(run.data_dir(), ec)) {
    return FailedPrecondition(run.data_dir() + " is not empty: a new server needs a new data directory");
  }
  auto target = TargetOf(db, region);
  if (!target.ok()) return target.error();
  std::string user = ConninfoOf(target->conninfo, "user");
  if (user.empty()) return InvalidArgument("the connection string of " + region + " names no user to create");
  std::vector<std::string> args = {"-D", run.data_dir(), "-U", user, "-k", "--auth-local=trust"};
  std::string pwfile;
  if (!target->password.empty()) {
    LB_ASSIGN_OR_RETURN(pwfile, run.WriteBeside(".lifeboat-initdb-password", target->password + "\n"));
    args.insert(args.end(), {"--pwfile=" + pwfile, "--auth-host=scram-sha-256"});
  }
  auto made = run.Run("initdb", args, "", std::chrono::minutes(5));
  if (!pwfile.empty()) fs::remove(pwfile, ec);
  if (!made.ok()) return made.error().Wrap("initdb " + run.data_dir());
  // This region's address, the WAL a standby needs to start, and the
  // hosts of the other regions let in for replication.
  std::string host = TcpHostOf(target->conninfo);
  std::string conf = "\n# lifeboat: a server made for region " + region + "\n";
  conf += "listen_addresses = " + GucValue(host.empty() ? "localhost" : host) + "\n";
  if (auto port = PortOf(target->conninfo); !port.empty()) conf += "port = " + port + "\n";
  conf += "unix_socket_directories = ''\nwal_keep_size = '256MB'\nmax_wal_size = '256MB'\nshared_buffers = '32MB'\n";
  std::string hba = "\n# lifeboat: the other regions' servers and agents\n";
  for (const auto& [other, conninfo] : db.instances) {
    std::string h = TcpHostOf(conninfo);
    if (h.empty()) continue;
    std::string auth = target->password.empty() ? "trust" : "scram-sha-256";
    hba += "host all all " + h + "/32 " + auth + "\nhost replication all " + h + "/32 " + auth + "\n";
  }
  for (const auto& [name, text] : {std::pair{"postgresql.conf", conf}, std::pair{"pg_hba.conf", hba}}) {
    std::string path = (fs::path(run.data_dir()) / name).string();
    auto old = ReadFile(path);
    if (!old.ok()) return old.error();
    LB_RETURN_IF_ERROR(run.WriteOwned(name, *old + text));
  }
  return run.data_dir();
}

}  // namespace lifeboat::postgres
