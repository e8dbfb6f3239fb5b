// lifeboat repo init | check | prune | repair ; backup create | list | describe | delete ; restore
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "backup/backup.h"
#include "cli/backup_common.h"
#include "cli/common.h"
#include "cli/status.h"
#include "core/units.h"
#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::cli {

std::optional<Target> LoadTarget(const BackupCliOptions& o, int& exit_code) {
  auto plan = plan::LoadPlanOrError(o.plan_file);
  if (!plan.ok()) {
    exit_code = Fail(plan.error());
    return std::nullopt;
  }
  Target t{std::move(*plan), nullptr};
  std::string names;
  for (const auto& l : t.plan.backup.locations) names += (names.empty() ? "" : ", ") + l.name;
  if (o.location.empty()) {
    if (t.plan.backup.locations.size() != 1) {
      exit_code = Fail(t.plan.backup.locations.empty()
                           ? "the plan has no backup locations (backup.locations)"
                           : "name a location with --location (the plan has " + names + ")",
                       kExitInvalid);
      return std::nullopt;
    }
    t.location = &t.plan.backup.locations[0];
  } else {
    t.location = t.plan.FindLocation(o.location);
    if (t.location == nullptr) {
      exit_code = Fail("the plan has no backup location '" + o.location + "'" +
                           (names.empty() ? std::string() : " (it has " + names + ")"),
                       kExitInvalid);
      return std::nullopt;
    }
  }
  return t;
}

std::unique_ptr<repo::Repository> OpenRepo(const Target& t, const BackupCliOptions& o, int& exit_code) {
  auto r = backup::OpenLocation(*t.location, o.password_file);
  if (!r.ok()) {
    exit_code = Fail(r.error());
    return nullptr;
  }
  return std::move(*r);
}

std::optional<Opened> OpenTarget(const BackupCliOptions& o, int& exit_code) {
  auto t = LoadTarget(o, exit_code);
  if (!t) return std::nullopt;
  auto repo = OpenRepo(*t, o, exit_code);
  if (!repo) return std::nullopt;
  return Opened{std::move(*t), std::move(repo)};
}

std::optional<Found> FindBackup(const BackupCliOptions& o, int& exit_code) {
  auto opened = OpenTarget(o, exit_code);
  if (!opened) return std::nullopt;
  auto s = opened->repo->FindSnapshot(o.id);
  if (!s.ok()) {
    exit_code = Fail(s.error());
    return std::nullopt;
  }
  return Found{std::move(*opened), std::move(*s)};
}

Json StatsJson(const repo::Snapshot& s) {
  const auto& st = s.stats;
  Json dedup = st.new_bytes > 0 ? Json(static_cast<double>(st.bytes) / static_cast<double>(st.new_bytes)) : Json(nullptr);
  return {{"id", s.id},
          {"time", repo::TimeText(s.time_ns)},
          {"host", s.host},
          {"source", s.source},
          {"path", s.path},
          {"tags", s.tags},
          {"schedule", s.schedule.empty() ? Json(nullptr) : Json(s.schedule)},
          {"parent", s.parent.empty() ? Json(nullptr) : Json(s.parent)},
          {"tree", s.tree},
          {"files", st.files},
          {"dirs", st.dirs},
          {"bytes", st.bytes},
          {"files_new", st.files_new},
          {"files_changed", st.files_changed},
          {"files_unchanged", st.files_unchanged},
          {"new_bytes", st.new_bytes},
          {"stored_bytes", st.stored_bytes},
          {"dedup_ratio", dedup},
          {"duration_seconds", st.duration_seconds},
          {"errors", st.errors}};
}

std::string Describe(const repo::Snapshot& s) {
  const auto& st = s.stats;
  char ratio[32] = "-";
  if (st.new_bytes > 0) std::snprintf(ratio, sizeof ratio, "%.1fx", static_cast<double>(st.bytes) / static_cast<double>(st.new_bytes));
  char dur[32];
  std::snprintf(dur, sizeof dur, "%.2fs", st.duration_seconds);
  std::string out;
  out += "backup     " + s.id + "\n";
  out += "time       " + repo::TimeText(s.time_ns) + "\n";
  out += "source     " + s.source + " (" + s.path + ") on " + s.host + "\n";
  if (!s.schedule.empty()) out += "schedule   " + s.schedule + "\n";
  if (!s.tags.empty()) {
    std::string tags;
    for (const auto& t : s.tags) tags += (tags.empty() ? "" : ", ") + t;
    out += "tags       " + tags + "\n";
  }
  out += "parent     " + (s.parent.empty() ? std::string("none (a full backup)") : s.parent.substr(0, 12)) + "\n";
  out += "files      " + std::to_string(st.files) + " in " + std::to_string(st.dirs) + " directories (" +
         std::to_string(st.files_new) + " new, " + std::to_string(st.files_changed) + " changed, " +
         std::to_string(st.files_unchanged) + " unchanged)\n";
  out += "bytes      " + HumanBytes(st.bytes) + "\n";
  out += "new bytes  " + HumanBytes(st.new_bytes) + " (stored as " + HumanBytes(st.stored_bytes) + ")\n";
  out += "dedup      " + std::string(ratio) + "\n";
  out += "duration   " + std::string(dur) + "\n";
  if (st.errors > 0) out += "errors     " + std::to_string(st.errors) + " files could not be read\n";
  return out;
}

namespace {

using namespace std::chrono_literals;

// A progress line on stderr while `work` runs, when stderr is a terminal.
class ProgressLine {
 public:
  ProgressLine(const backup::Progress& p, std::string verb) : p_(p), verb_(std::move(verb)) {
    if (!::isatty(2)) return;
    thread_ = std::thread([this] {
      auto start = std::chrono::steady_clock::now();
      while (!stop_) {
        std::this_thread::sleep_for(200ms);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (p_.scanning) {
          std::fprintf(stderr, "\r%s: scanning, %llu files so far\033[K", verb_.c_str(),
                       static_cast<unsigned long long>(p_.files_total.load()));
          continue;
        }
        uint64_t bd = p_.bytes_done, bt = p_.bytes_total;
        double rate = secs > 0 ? static_cast<double>(bd) / secs : 0;
        std::string eta = rate > 0 && bt > bd ? "  ETA " + ShortDuration(static_cast<double>(bt - bd) / rate) : "";
        std::fprintf(stderr, "\r%s: files %llu/%llu  %s/%s  %s/s%s\033[K", verb_.c_str(),
                     static_cast<unsigned long long>(p_.files_done.load()),
                     static_cast<unsigned long long>(p_.files_total.load()), HumanBytes(bd).c_str(),
                     HumanBytes(bt).c_str(), HumanBytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str());
      }
      std::fprintf(stderr, "\r\033[K");
    });
  }
  ~ProgressLine() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  const backup::Progress& p_;
  std::string verb_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------- repo

int RepoInit(const BackupCliOptions& o) {
  int code = kExitOk;
  auto t = LoadTarget(o, code);
  if (!t) return code;
  auto backend = backup::OpenBackend(*t->location);
  if (!backend.ok()) return Fail(backend.error());
  auto pw = backup::RepoPassword(*t->location, o.password_file);
  if (!pw.ok()) return Fail(pw.error());
  if (!o.no_encryption && pw->empty()) {
    return Fail("an encrypted repository needs a password: set LIFEBOAT_REPO_PASSWORD, --password-file, or the "
                "location's password_file (or choose --no-encryption)",
                kExitInvalid);
  }
  Status s = repo::Repository::Init(**backend, !o.no_encryption, *pw, backup::DefaultChunker());
  if (!s.ok()) return Fail(s.error().Wrap("location '" + t->location->name + "'"));
  std::cout << "initialized " << (o.no_encryption ? "an unencrypted" : "an encrypted (AES-256-GCM, scrypt)")
            << " repository at " << (*backend)->Describe() << "\n";
  if (!o.no_encryption) std::cout << "keep the password safe: without it the backups cannot be read\n";
  return kExitOk;
}

int RepoCheck(const BackupCliOptions& o) {
  int code = kExitOk;
  auto opened = OpenTarget(o, code);
  if (!opened) return code;
  auto& repo = opened->repo;
  auto lock = repo->AcquireLock(false, "check");
  if (!lock.ok()) return Fail(lock.error());
  bool tty = ::isatty(2) && o.output == "table";
  auto rep = repo->Check(o.read_data, [&](const std::string& what) {
    if (tty) std::fprintf(stderr, "\rcheck: %s\033[K", what.c_str());
  });
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!rep.ok()) return Fail(rep.error());
  if (Structured(o.output)) {
    PrintDocument(Json{{"ok", rep->errors.empty()},
                      {"errors", rep->errors},
                      {"warnings", rep->warnings},
                      {"backups", rep->snapshots},
                      {"packs", rep->packs},
                      {"blobs", rep->blobs},
                      {"trees", rep->trees},
                      {"bytes_read", rep->bytes_read}}
                     , o.output);
  } else {
    for (const auto& w : rep->warnings) std::cout << "warning: " << w << "\n";
    for (const auto& e : rep->errors) std::cout << "error: " << e << "\n";
    std::cout << rep->snapshots << " backups, " << rep->packs << " packs, " << rep->blobs << " blobs, " << rep->trees
              << " directories checked" << (o.read_data ? ", " + HumanBytes(rep->bytes_read) + " read" : "") << ": "
              << (rep->errors.empty() ? "no errors" : std::to_string(rep->errors.size()) + " errors") << "\n";
  }
  return rep->errors.empty() ? kExitOk : kExitFailure;
}

int RepoRepair(const BackupCliOptions& o) {
  int code = kExitOk;
  auto opened = OpenTarget(o, code);
  if (!opened) return code;
  auto& repo = opened->repo;
  if (repo->read_only()) {
    return Fail("location '" + opened->target.location->name + "' is ReadOnly: repair rewrites the index, so it is refused");
  }
  auto lock = repo->AcquireLock(true, "repair");
  if (!lock.ok()) return Fail(lock.error());
  bool tty = ::isatty(2) && o.output == "table";
  auto rep = repo->Repair([&](const std::string& what) {
    if (tty) std::fprintf(stderr, "\rrepair: %s\033[K", what.c_str());
  });
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!rep.ok()) return Fail(rep.error());
  if (Structured(o.output)) {
    PrintDocument(Json{{"packs_indexed", rep->packs_indexed},
                      {"blobs_indexed", rep->blobs_indexed},
                      {"index_files_replaced", rep->index_files_replaced},
                      {"unreadable_packs", rep->unreadable_packs},
                      {"still_missing", rep->still_missing}}
                     , o.output);
  } else {
    for (const auto& u : rep->unreadable_packs) std::cout << "unreadable, left out of the index: " << u << "\n";
    for (const auto& m : rep->still_missing) std::cout << "still missing: " << m << "\n";
    std::cout << "indexed " << rep->blobs_indexed << " blobs in " << rep->packs_indexed << " packs; replaced "
              << rep->index_files_replaced << " index file(s)"
              << (rep->still_missing.empty() ? "; every backup's chunks are indexed\n"
                                             : "; backups still miss chunks (their packs are gone)\n");
  }
  return rep->still_missing.empty() ? kExitOk : kExitFailure;
}

int RepoPrune(const BackupCliOptions& o) {
  int code = kExitOk;
  auto opened = OpenTarget(o, code);
  if (!opened) return code;
  const Target* t = &opened->target;
  auto& repo = opened->repo;
  if (repo->read_only()) return Fail("location '" + t->location->name + "' is ReadOnly: prune deletes, so it is refused");
  auto lock = repo->AcquireLock(true, "prune");
  if (!lock.ok()) return Fail(lock.error());
  auto rep = repo->Prune();
  if (!rep.ok()) return Fail(rep.error());
  if (Structured(o.output)) {
    PrintDocument(Json{{"packs_deleted", rep->packs_deleted}, {"packs_repacked", rep->packs_repacked},
                      {"packs_kept", rep->packs_kept},       {"bytes_freed", rep->bytes_freed},
                      {"blobs_removed", rep->blobs_removed}, {"index_files_replaced", rep->index_files_replaced},
                      {"leftovers_removed", rep->leftovers_removed}}
                     , o.output);
  } else {
    std::cout << "removed " << rep->blobs_removed << " unused blobs: " << rep->packs_deleted << " packs deleted ("
              << rep->packs_repacked << " of them repacked), " << rep->packs_kept << " kept, "
              << HumanBytes(rep->bytes_freed) << " freed\n";
    if (rep->leftovers_removed > 0) {
      std::cout << "removed " << rep->leftovers_removed << " temporary file(s) that interrupted writers left\n";
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------- backup

// Asks the region's agent to list its locations again, so that its status
// shows this backup now rather than at the next refresh (at most 5 minutes).
// Best effort: without a token or an agent it stays silent.
void AskForCatalogRefresh(const plan::Plan& plan, const std::string& region) {
  const char* token = std::getenv("LIFEBOAT_TOKEN");
  const plan::Region* r = plan.FindRegion(region);
  if (token == nullptr || *token == 0 || r == nullptr) return;
  auto res = net::Fetch("POST", net::BaseUrl(r->agent) + "/v1/backups/refresh", std::chrono::seconds(2), "",
                        {std::string("Authorization: Bearer ") + token});
  if (!res.ok() || res->status != 202) {
    spdlog::debug("could not ask agent {} to refresh its backup catalog: {}", region,
                  res.ok() ? "HTTP " + std::to_string(res->status) : res.error().message());
  }
}

// The region whose copy of `v` a backup reads when --region is not given: its
// source. A replicated volume's source is what the agents report (after a
// promote it is no longer the plan's primary); otherwise the plan's primary.
std::string SourceForBackup(const plan::Plan& plan, const plan::Volume& v) {
  const plan::Region* p = plan.Primary();
  std::string primary = p != nullptr && v.path.count(p->name) ? p->name : v.path.begin()->first;
  if (v.replication.mode != plan::ReplicationMode::kContinuous) return primary;
  if (auto reported = ReportedSource(CollectStatus(plan, std::chrono::seconds(3)), v.name)) {
    if (v.path.count(*reported)) return *reported;
  }
  std::cerr << "lifeboat: warning: no agent reports the source of " << v.name << "; reading the plan's primary's copy ("
            << primary << "). Give --region to choose\n";
  return primary;
}

int Create(const BackupCliOptions& o) {
  int code = kExitOk;
  if (!o.cluster.empty()) {
    if (!o.volume.empty() || !o.path.empty()) return Fail("give one of --cluster, --volume and --path", kExitInvalid);
    return ClusterBackupCreate(o);
  }
  bool cluster_flags = !o.namespaces.empty() || !o.exclude_namespaces.empty() || !o.resources.empty() ||
                       !o.exclude_resources.empty() || !o.selector.empty();
  if (cluster_flags) return Fail("--namespace, --resource and --selector go with --cluster", kExitInvalid);
  if (o.volume.empty() == o.path.empty()) return Fail("give exactly one of --volume, --path and --cluster", kExitInvalid);
  auto t = LoadTarget(o, code);
  if (!t) return code;
  backup::BackupOptions bo;
  std::string region_read;  // with --volume: whose copy was read
  if (!o.volume.empty()) {
    const plan::Volume* v = t->plan.FindVolume(o.volume);
    if (v == nullptr) return Fail("the plan has no volume '" + o.volume + "'", kExitInvalid);
    std::string region = o.region;
    if (region.empty()) region = SourceForBackup(t->plan, *v);
    auto it = v->path.find(region);
    if (it == v->path.end()) return Fail("volume '" + o.volume + "' has no path in region '" + region + "'", kExitInvalid);
    bo.path = it->second;
    bo.source = "volume:" + o.volume;
    region_read = region;
  } else {
    if (o.path.empty() || o.path[0] != '/') return Fail("--path must be absolute", kExitInvalid);
    bo.path = o.path;
    bo.source = "path:" + o.path;
  }
  bo.tags = o.tags;
  if (t->location->access == plan::Access::kReadOnly) {
    return Fail("location '" + t->location->name + "' is ReadOnly: backups go to a ReadWrite location", kExitInvalid);
  }
  auto repo = OpenRepo(*t, o, code);
  if (!repo) return code;
  backup::Progress progress;
  Result<backup::BackupResult> res = [&] {
    ProgressLine line(progress, "backup");
    return backup::CreateBackup(*repo, bo, &progress);
  }();
  if (!res.ok()) return Fail(res.error().Wrap("backup of " + bo.path));
  for (const auto& e : res->errors) std::cerr << "lifeboat: warning: not backed up: " << e.path << ": " << e.reason << "\n";
  if (Structured(o.output)) {
    Json j = StatsJson(res->snapshot);
    j["not_backed_up"] = Json::array();
    for (const auto& e : res->errors) j["not_backed_up"].push_back({{"path", e.path}, {"reason", e.reason}});
    PrintDocument(j, o.output);
  } else {
    std::cout << Describe(res->snapshot);
  }
  if (!region_read.empty()) AskForCatalogRefresh(t->plan, region_read);
  return res->errors.empty() ? kExitOk : kExitFailure;
}

int List(const BackupCliOptions& o) {
  int code = kExitOk;
  auto opened = OpenTarget(o, code);
  if (!opened) return code;
  const Target* t = &opened->target;
  auto& repo = opened->repo;
  std::vector<std::string> errors;
  auto snaps = repo->ListSnapshots(&errors);
  if (!snaps.ok()) return Fail(snaps.error());
  for (const auto& e : errors) std::cerr << "lifeboat: warning: unreadable backup: " << e << "\n";
  if (Structured(o.output)) {
    Json a = Json::array();
    for (const auto& s : *snaps) a.push_back(StatsJson(s));
    PrintDocument(a, o.output);
    return kExitOk;
  }
  Table table({"ID", "TIME", "SOURCE", "FILES", "SIZE", "NEW", "DURATION", "TAGS"});
  for (const auto& s : *snaps) {
    std::string tags;
    for (const auto& tg : s.tags) tags += (tags.empty() ? "" : ",") + tg;
    if (!s.schedule.empty()) tags += (tags.empty() ? "schedule=" : ",schedule=") + s.schedule;
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.1fs", s.stats.duration_seconds);
    table.Add({s.id.substr(0, 8), repo::TimeText(s.time_ns), s.source, std::to_string(s.stats.files),
               HumanBytes(s.stats.bytes), HumanBytes(s.stats.stored_bytes), dur, tags});
  }
  std::cout << table.Render();
  if (snaps->empty()) std::cout << "no backups at location '" << t->location->name << "' yet\n";
  return kExitOk;
}

int DescribeCmd(const BackupCliOptions& o) {
  int code = kExitOk;
  auto found = FindBackup(o, code);
  if (!found) return code;
  auto s = &found->snapshot;
  if (Structured(o.output)) {
    PrintDocument(StatsJson(*s), o.output);
  } else {
    std::cout << Describe(*s);
  }
  return kExitOk;
}

int Delete(const BackupCliOptions& o) {
  int code = kExitOk;
  auto found = FindBackup(o, code);
  if (!found) return code;
  auto& repo = found->opened.repo;
  auto s = &found->snapshot;
  if (repo->read_only()) {
    return Fail("location '" + found->opened.target.location->name + "' is ReadOnly: deleting a backup is refused");
  }
  auto lock = repo->AcquireLock(false, "delete " + s->id.substr(0, 8));
  if (!lock.ok()) return Fail(lock.error());
  Status d = repo->DeleteSnapshot(s->id);
  if (!d.ok()) return Fail(d.error());
  std::cout << "deleted backup " << s->id.substr(0, 8) << " (" << repo::TimeText(s->time_ns) << ", " << s->source
            << "); `lifeboat repo prune` frees the space its data used\n";
  return kExitOk;
}

int RestoreCmd(const BackupCliOptions& o) {
  int code = kExitOk;
  bool to_cluster = !o.cluster.empty() || !o.to_dir.empty();
  if (to_cluster && !o.to.empty()) return Fail("give --to (files) or --cluster / --to-dir (objects), not both", kExitInvalid);
  if (!to_cluster && o.to.empty()) return Fail("give --to DIR, or --cluster REGION (or --to-dir DIR) for a cluster backup", kExitInvalid);
  auto found = FindBackup(o, code);
  if (!found) return code;
  if (to_cluster) return ClusterRestore(o, *found);
  auto& repo = found->opened.repo;
  auto s = &found->snapshot;
  backup::RestoreOptions ro;
  ro.to = o.to;
  ro.include = o.include;
  backup::Progress progress;
  auto start = std::chrono::steady_clock::now();
  Result<backup::RestoreResult> res = [&] {
    ProgressLine line(progress, "restore");
    return backup::Restore(*repo, *s, ro, &progress);
  }();
  if (!res.ok()) return Fail(res.error().Wrap("restore of " + s->id.substr(0, 8)));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (Structured(o.output)) {
    Json f = Json::array();
    for (const auto& e : res->failed) f.push_back({{"path", e.path}, {"reason", e.reason}});
    PrintDocument(Json{{"backup", s->id},   {"to", o.to},           {"files", res->files},     {"dirs", res->dirs},
                      {"symlinks", res->symlinks}, {"hardlinks", res->hardlinks}, {"bytes", res->bytes},
                      {"duration_seconds", secs},   {"leftovers_removed", res->leftovers_removed}, {"not_restored", f}}
                     , o.output);
  } else {
    for (const auto& e : res->failed) std::cout << "not restored: " << e.path << ": " << e.reason << "\n";
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.2fs", secs);
    std::cout << "restored " << res->files << " files (" << HumanBytes(res->bytes) << "), " << res->dirs
              << " directories, " << res->symlinks << " symlinks, " << res->hardlinks << " hard links to " << o.to
              << " in " << dur;
    if (!res->failed.empty()) std::cout << "; " << res->failed.size() << " entries could not be restored";
    std::cout << "\n";
  }
  return res->failed.empty() ? kExitOk : kExitFailure;
}

void CommonFlags(CLI::App& cmd, BackupCliOptions& o, bool location_positional) {
  AddPlanFlag(cmd, o.plan_file);
  cmd.add_option("--location,-l", o.location, "Backup location of the plan (default: the only one)");
  if (location_positional) {
    // Earlier releases took the repo commands' location positionally; still accepted, no longer shown.
    cmd.add_option("LOCATION", o.location)->group("");
  }
  cmd.add_option("--password-file", o.password_file,
                 "File holding the repository password (default: LIFEBOAT_REPO_PASSWORD, then the location's "
                 "password_file)");
}

}  // namespace

void AddBackupCommands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<BackupCliOptions>();

  auto* repo = app.add_subcommand("repo", "Backup repositories: init, check, prune, repair");
  repo->require_subcommand(1);
  auto* init = repo->add_subcommand("init", "Create a repository at a backup location");
  CommonFlags(*init, *o, true);
  init->add_flag("--no-encryption", o->no_encryption, "Store data unencrypted (still compressed and checked)");
  init->footer("Examples:\n  LIFEBOAT_REPO_PASSWORD=... lifeboat repo init -l local --plan shop.yaml\n"
               "  lifeboat repo init -l dr-s3 --plan shop.yaml --password-file /etc/lifeboat/repo.pw\n");
  init->callback([&exit_code, o] { exit_code = RepoInit(*o); });

  auto* check = repo->add_subcommand("check", "Verify a repository: index, packs, every backup's directories");
  CommonFlags(*check, *o, true);
  check->add_flag("--read-data", o->read_data, "Also read every pack and verify every blob (reads everything)");
  AddOutputFlag(*check, o->output);
  check->footer("Exit 1 when anything is damaged; each error names the pack, index file or backup and file.\n\n"
                "Examples:\n  lifeboat repo check -l local --plan shop.yaml\n"
                "  lifeboat repo check -l dr-s3 --plan shop.yaml --read-data -o json\n");
  check->callback([&exit_code, o] { exit_code = RepoCheck(*o); });

  auto* prune = repo->add_subcommand("prune", "Delete data no backup uses any more (exclusive lock)");
  CommonFlags(*prune, *o, true);
  AddOutputFlag(*prune, o->output);
  prune->footer("Example:\n  lifeboat backup delete 1a2b3c4d --plan shop.yaml && lifeboat repo prune -l local --plan shop.yaml\n");
  prune->callback([&exit_code, o] { exit_code = RepoPrune(*o); });

  auto* repair = repo->add_subcommand("repair", "Rebuild a lost or damaged index from the packs' own headers");
  CommonFlags(*repair, *o, true);
  AddOutputFlag(*repair, o->output);
  repair->footer("Run it when `repo check` says backups use chunks no index lists. It reads every pack's header\n"
                 "(not the data), writes a new index, then removes the old index files; it deletes no pack.\n"
                 "Exit 1 when backups still miss chunks afterwards (the packs holding them are gone).\n\n"
                 "Example:\n  lifeboat repo repair -l local --plan shop.yaml && lifeboat repo check -l local --plan shop.yaml\n");
  repair->callback([&exit_code, o] { exit_code = RepoRepair(*o); });

  auto* bk = app.add_subcommand("backup", "Deduplicated, encrypted backups: create, list, describe, delete");
  bk->require_subcommand(1);
  auto* create = bk->add_subcommand("create", "Back up a volume, a directory or a cluster's objects now");
  CommonFlags(*create, *o, false);
  create->add_option("--volume", o->volume, "A volume of the plan");
  create->add_option("--region", o->region, "With --volume: the region whose copy to read (default: the volume's source, as its agents report it)");
  create->add_option("--path", o->path, "Any directory (absolute)");
  create->add_option("--tag", o->tags, "A tag for the backup (repeatable)");
  create->add_option("--cluster", o->cluster, "The Kubernetes cluster of this region (plan: clusters) : its objects");
  create->add_option("--namespace", o->namespaces, "With --cluster: only namespaces matching this glob (repeatable)");
  create->add_option("--exclude-namespace", o->exclude_namespaces, "With --cluster: not these namespaces (glob, repeatable)");
  create->add_option("--resource", o->resources, "With --cluster: only this kind (deployments, deploy, deployments.apps; repeatable)");
  create->add_option("--exclude-resource", o->exclude_resources, "With --cluster: not this kind (repeatable)");
  create->add_option("--selector,-L", o->selector, "With --cluster: only objects with these labels (app=web,tier!=db)");
  create->add_option("--include-cluster-resources", o->cluster_resources,
                     "With --cluster: auto (all when no namespace is chosen, else only what the chosen objects "
                     "need), true, false")
      ->check(CLI::IsMember({"auto", "true", "false"}));
  create->add_flag("--volume-data", o->volume_data,
                   "With --cluster: the files of the PVCs running pods mount too, read by the node agents "
                   "(lifeboat agent --node)");
  AddOutputFlag(*create, o->output);
  create->footer("Files unchanged since the last backup of the same volume or path are not read again.\n"
                 "A cluster backup stores one JSON file per object (docs/kubernetes.md has the layout and what is\n"
                 "never backed up: nodes, events, leases and other runtime objects).\n"
                 "Exit 1 when some files could not be read or some kinds not listed (they are listed; the backup\n"
                 "is still written).\n\n"
                 "Examples:\n  lifeboat backup create --plan shop.yaml --location local --volume uploads\n"
                 "  lifeboat backup create --plan shop.yaml -l dr-s3 --path /srv/config --tag before-upgrade -o json\n"
                 "  lifeboat backup create --plan shop.yaml -l dr-s3 --cluster us-east --namespace 'shop*'\n"
                 "  lifeboat backup create --plan shop.yaml -l dr-s3 --cluster us-east --volume-data\n");
  create->callback([&exit_code, o] { exit_code = Create(*o); });

  auto* list = bk->add_subcommand("list", "The backups at a location, oldest first");
  CommonFlags(*list, *o, false);
  AddOutputFlag(*list, o->output);
  list->footer("Example:\n  lifeboat backup list --plan shop.yaml --location dr-s3\n");
  list->callback([&exit_code, o] { exit_code = List(*o); });

  auto* describe = bk->add_subcommand("describe", "One backup: files, bytes, new bytes, dedup ratio, duration");
  describe->add_option("ID", o->id, "Backup id (or a unique prefix of at least 4 digits)")->required();
  CommonFlags(*describe, *o, false);
  AddOutputFlag(*describe, o->output);
  describe->footer("Example:\n  lifeboat backup describe 1a2b3c4d --plan shop.yaml -l local\n");
  describe->callback([&exit_code, o] { exit_code = DescribeCmd(*o); });

  auto* del = bk->add_subcommand("delete", "Delete one backup (its data goes at the next prune)");
  del->add_option("ID", o->id, "Backup id (or a unique prefix)")->required();
  CommonFlags(*del, *o, false);
  del->footer("Example:\n  lifeboat backup delete 1a2b3c4d --plan shop.yaml -l local\n");
  del->callback([&exit_code, o] { exit_code = Delete(*o); });

  auto* restore = app.add_subcommand("restore", "Restore a backup into a directory, or a cluster backup into a cluster");
  restore->add_option("ID", o->id, "Backup id (or a unique prefix)")->required();
  restore->add_option("--to", o->to, "Target directory (created if missing)");
  restore->add_option("--include", o->include, "With --to: only paths matching this glob, or below a match (repeatable)");
  restore->add_option("--cluster", o->cluster, "A cluster backup: into the Kubernetes cluster of this region");
  restore->add_option("--to-dir", o->to_dir, "A cluster backup: write the mapped manifests here (for kubectl apply -R -f)");
  restore->add_option("--namespace-map", o->namespace_map, "OLD:NEW, restore namespace OLD as NEW (repeatable)");
  restore->add_option("--storage-class-map", o->storage_class_map, "OLD:NEW, for PVCs, PVs and volume claim templates (repeatable)");
  restore->add_option("--namespace", o->namespaces, "Only namespaces matching this glob, as backed up (repeatable)");
  restore->add_option("--exclude-namespace", o->exclude_namespaces, "Not these namespaces (glob, repeatable)");
  restore->add_option("--resource", o->resources, "Only this kind (repeatable)");
  restore->add_option("--exclude-resource", o->exclude_resources, "Not this kind (repeatable)");
  restore->add_option("--existing", o->existing, "An object that exists: skip (default) or update")
      ->check(CLI::IsMember({"skip", "update"}));
  restore->add_flag("--dry-run", o->dry_run, "Say what would be done, change nothing");
  CommonFlags(*restore, *o, false);
  AddOutputFlag(*restore, o->output);
  restore->footer("Files are written under a temporary name and renamed when complete. Entries that cannot be\n"
                  "restored (a damaged or missing pack, a conflicting path) are listed with the reason; the rest\n"
                  "is restored, and the exit code is 1.\n\n"
                  "A cluster backup restores object by object in dependency order; each gets a result (created,\n"
                  "updated, skipped and why, failed and the API server's reason), printed as a table or with -o json.\n"
                  "Exit 1 when an item failed.\n\n"
                  "Examples:\n  lifeboat restore 1a2b3c4d --to /srv/restore --plan shop.yaml -l dr-s3\n"
                  "  lifeboat restore 1a2b --to /tmp/x --include 'img/*.png' --plan shop.yaml\n"
                  "  lifeboat restore 5e6f --cluster us-west --namespace-map shop:shop-dr --storage-class-map gp2:standard --plan shop.yaml\n"
                  "  lifeboat restore 5e6f --to-dir /tmp/manifests --plan shop.yaml && kubectl apply -R -f /tmp/manifests\n");
  restore->callback([&exit_code, o] { exit_code = RestoreCmd(*o); });
}

}  // namespace lifeboat::cli
