#include "agent/node_agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/agent.h"
#include "agent/auth.h"
#include "backup/backup.h"
#include "backup/location.h"
#include "core/fd.h"
#include "core/json_read.h"
#include "core/strings.h"
#include "metrics/process.h"

namespace lifeboat::agent {

namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

// Names that stay one path component: letters, digits, '.', '_', '-', not
// "." or "..". Kubernetes' UIDs, PV names and volume names all are.
bool PlainName(const std::string& s, size_t max = 253) {
  if (s.empty() || s.size() > max || s == "." || s == "..") return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '~';
    if (!ok) return false;
  }
  return true;
}

bool RealDir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Result<std::string> FindVolumeDir(const std::string& kubelet_root, const std::string& pod_uid,
                                  const std::string& volume) {
  if (!PlainName(pod_uid, 64)) return InvalidArgument("pod_uid '" + pod_uid + "' is not a pod's UID");
  if (!PlainName(volume)) return InvalidArgument("volume '" + volume + "' is not a volume's name");
  std::string volumes = kubelet_root + "/pods/" + pod_uid + "/volumes";
  if (!RealDir(kubelet_root + "/pods/" + pod_uid)) return NotFound("no pod " + pod_uid + " on this node");
  if (!RealDir(volumes)) return NotFound("pod " + pod_uid + " has no volumes on this node");
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& plugin : fs::directory_iterator(volumes, ec)) {
    std::string p = plugin.path().string();
    if (!RealDir(p)) continue;
    std::string dir = p + "/" + volume;
    if (!RealDir(dir)) continue;
    // A CSI volume's files are in mount/ (its vol_data.json is beside it).
    if (plugin.path().filename() == "kubernetes.io~csi") {
      if (!RealDir(dir + "/mount")) return NotFound("CSI volume " + volume + " of pod " + pod_uid + " is not mounted");
      dir += "/mount";
    }
    found.push_back(dir);
  }
  if (ec) return ErrnoError(ec.value(), "reading " + volumes);
  if (found.empty()) return NotFound("pod " + pod_uid + " has no volume " + volume + " on this node");
  if (found.size() > 1) return FailedPrecondition("volume " + volume + " of pod " + pod_uid + " is under two plugins");
  return found.front();
}

Status WriteRestoreMarker(const std::string& dir, const std::string& marker) {
  if (!PlainName(marker, 64)) return InvalidArgument("marker '" + marker + "' is not a plain name");
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return ErrnoError(errno, "open " + dir);
  constexpr const char* kDir = ".lifeboat-restore";
  if (::mkdirat(root.get(), kDir, 0755) != 0 && errno != EEXIST) return ErrnoError(errno, "mkdir " + dir + "/" + kDir);
  // O_NOFOLLOW: a symlink of that name among the restored files is refused,
  // never followed out of the volume.
  UniqueFd sub(::openat(root.get(), kDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return ErrnoError(errno, "open " + dir + "/" + kDir);
  UniqueFd f(::openat(sub.get(), marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!f.valid()) return ErrnoError(errno, "create " + dir + "/" + kDir + "/" + marker);
  if (::fsync(f.get()) != 0 || ::fsync(sub.get()) != 0) return ErrnoError(errno, "fsync " + dir + "/" + kDir);
  return Ok();
}

struct NodeAgent::Job {
  uint64_t id = 0;
  bool restore = false;
  std::string location, pod_uid, volume, source, snapshot, marker, schedule;
  std::vector<std::string> tags;
  std::string state = "queued";  // queued, running, done, failed
  std::string error, dir;
  backup::Progress progress;
  uint64_t files = 0, bytes = 0, file_errors = 0;
  std::vector<std::string> error_samples;
  std::atomic<bool> cancel{false};
  std::thread thread;  // joined when the job is dropped or the agent stops
};

// What a job's work yields; copied into the job under the lock.
struct JobOutcome {
  std::string dir, snapshot;
  uint64_t files = 0, bytes = 0, file_errors = 0;
  std::vector<std::string> error_samples;
};

NodeAgent::NodeAgent(const plan::Plan& plan, NodeAgentOptions options) : plan_(plan), options_(std::move(options)) {
  metrics::AddProcessMetrics(metrics_);
  jobs_total_ = &metrics_.AddCounter("lifeboat_node_jobs_total", "Volume file jobs ended, by kind and result",
                                     {"kind", "result"});
  bytes_total_ = &metrics_.AddCounter("lifeboat_node_bytes_total",
                                      "Bytes of the files of finished jobs (backed up: read; restored: written)",
                                      {"kind"});
  files_total_ = &metrics_.AddCounter("lifeboat_node_files_total", "Files of finished jobs", {"kind"});
  job_seconds_ = &metrics_.AddHistogram("lifeboat_node_job_duration_seconds", "How long jobs ran, by kind", {"kind"},
                                        metrics::DurationBuckets());
  metrics_.AddGaugeCallback("lifeboat_node_jobs_running", "Jobs running now", {}, [this] {
    std::lock_guard lock(mu_);
    return std::vector<std::pair<metrics::Labels, double>>{{{}, static_cast<double>(running_)}};
  });
}

NodeAgent::~NodeAgent() { Stop(); }

Json NodeAgent::JobJson(const Job& j) const {
  Json out = {{"job", std::to_string(j.id)},
              {"kind", j.restore ? "restore" : "backup"},
              {"state", j.state},
              {"pod_uid", j.pod_uid},
              {"volume", j.volume},
              {"location", j.location},
              {"files_done", j.progress.files_done.load()},
              {"files_total", j.progress.files_total.load()},
              {"bytes_done", j.progress.bytes_done.load()},
              {"bytes_total", j.progress.bytes_total.load()}};
  if (!j.snapshot.empty()) out["snapshot"] = j.snapshot;
  if (j.state == "done") {
    out["files"] = j.files;
    out["bytes"] = j.bytes;
    out["file_errors"] = j.file_errors;
    out["file_error_samples"] = j.error_samples;
  }
  if (!j.error.empty()) out["error"] = j.error;
  return out;
}

net::HttpResponse NodeAgent::Handle(const net::HttpRequest& req) {
  if (req.path == "/healthz") return net::HttpResponse::Text(200, "ok\n");
  if (req.path == "/metrics" && req.method == "GET") {
    auto res = net::HttpResponse::Text(200, metrics_.Render());
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
  }
  if (auto denied = CheckToken(req, options_.token, "the node agent's API")) return *denied;
  if (req.path == "/v1/status" && req.method == "GET") {
    std::lock_guard lock(mu_);
    Json jobs = Json::array();
    for (const auto& [id, j] : jobs_) jobs.push_back(JobJson(*j));
    return net::HttpResponse::Json(200, Json{{"node", options_.node_name},
                                             {"kubelet_root", options_.kubelet_root},
                                             {"running", running_},
                                             {"max_jobs", options_.max_jobs},
                                             {"jobs", jobs}}
                                                .dump() +
                                            "\n");
  }
  if (req.path == "/v1/node/backups" || req.path == "/v1/node/restores") {
    if (req.method != "POST") return JsonError(405, "POST a job");
    return StartJob(req, req.path == "/v1/node/restores");
  }
  constexpr std::string_view kJobs = "/v1/node/jobs/";
  if (req.path.starts_with(kJobs) && req.method == "GET") {
    std::string id = req.path.substr(kJobs.size());
    uint64_t n = 0;
    for (char c : id) n = (c >= '0' && c <= '9' && n < (1ULL << 50)) ? n * 10 + static_cast<uint64_t>(c - '0') : 0;
    std::lock_guard lock(mu_);
    auto it = jobs_.find(n);
    if (it == jobs_.end()) return JsonError(404, "no job " + id + " on this node agent (it may have restarted)");
    return net::HttpResponse::Json(200, JobJson(*it->second).dump() + "\n");
  }
  return JsonError(404, "no such route on the node agent: " + req.path);
}

net::HttpResponse NodeAgent::StartJob(const net::HttpRequest& req, bool restore) {
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return JsonError(400, "the body must be a JSON object");
  auto job = std::make_unique<Job>();
  job->restore = restore;
  job->location = json::Str(body, "location");
  job->pod_uid = json::Str(body, "pod_uid");
  job->volume = json::Str(body, "volume");
  job->source = json::Str(body, "source");
  job->snapshot = json::Str(body, "snapshot");
  job->marker = json::Str(body, "marker");
  job->schedule = json::Str(body, "schedule");
  for (const auto& t : json::Arr(body, "tags")) {
    if (t.is_string()) job->tags.push_back(t.get<std::string>());
  }
  const plan::Location* loc = plan_.FindLocation(job->location);
  if (loc == nullptr) return JsonError(400, "the plan has no location '" + job->location + "'");
  if (!PlainName(job->pod_uid, 64)) return JsonError(400, "pod_uid must be a pod's UID");
  if (!PlainName(job->volume)) return JsonError(400, "volume must be a volume's directory name");
  if (restore) {
    if (job->snapshot.empty()) return JsonError(400, "a restore needs the snapshot");
    if (!PlainName(job->marker, 64)) return JsonError(400, "a restore needs a marker: letters, digits, '-'");
  } else {
    if (loc->access == plan::Access::kReadOnly) {
      return JsonError(400, "location '" + loc->name + "' is ReadOnly: backups go to a ReadWrite location");
    }
    if (!job->source.starts_with("pvc:")) return JsonError(400, "a backup's source must be pvc:CLUSTER/NS/NAME");
  }
  std::lock_guard lock(mu_);
  if (stopping_) return JsonError(503, "the node agent is stopping");
  // Finished jobs are kept for their callers to read; the oldest go first.
  while (jobs_.size() >= 256) {
    auto it = std::find_if(jobs_.begin(), jobs_.end(),
                           [](const auto& p) { return p.second->state == "done" || p.second->state == "failed"; });
    if (it == jobs_.end()) return JsonError(429, "256 jobs are queued or running on this node agent");
    // Finished: its thread has left the lock for good and only returns.
    if (it->second->thread.joinable()) it->second->thread.join();
    jobs_.erase(it);
  }
  job->id = next_id_++;
  Job& j = *job;
  jobs_[j.id] = std::move(job);
  j.thread = std::thread([this, &j] { RunJob(j); });
  spdlog::info("node agent: job {}: {} of volume {} of pod {} ({})", j.id, restore ? "restore" : "backup", j.volume,
               j.pod_uid, restore ? "snapshot " + j.snapshot : j.source);
  return net::HttpResponse::Json(202, Json{{"job", std::to_string(j.id)}}.dump() + "\n");
}

void NodeAgent::RunJob(Job& j) {
  {
    std::unique_lock lock(mu_);
    turn_.wait(lock, [&] { return running_ < options_.max_jobs || stopping_; });
    if (stopping_) {
      j.state = "failed";
      j.error = "the node agent stopped before the job began";
      return;
    }
    ++running_;
    j.state = "running";
  }
  auto started = std::chrono::steady_clock::now();
  JobOutcome out;
  Status result = [&]() -> Status {
    const plan::Location* loc = plan_.FindLocation(j.location);
    LB_ASSIGN_OR_RETURN(std::string dir, [&]() -> Result<std::string> {
      // A restore may come before the kubelet has mounted the new volume.
      auto deadline = std::chrono::steady_clock::now() + (j.restore ? options_.mount_wait : Duration::zero());
      while (true) {
        auto d = FindVolumeDir(options_.kubelet_root, j.pod_uid, j.volume);
        if (d.ok() || d.error().code() != Code::kNotFound || std::chrono::steady_clock::now() >= deadline ||
            j.cancel) {
          return d;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }());
    out.dir = dir;
    LB_ASSIGN_OR_RETURN(auto repo, backup::OpenLocation(*loc));
    if (j.restore) {
      LB_ASSIGN_OR_RETURN(repo::Snapshot snap, repo->FindSnapshot(j.snapshot));
      if (!snap.source.starts_with("pvc:")) return InvalidArgument("snapshot " + j.snapshot + " is not of a volume");
      backup::RestoreOptions ro;
      ro.to = dir;
      ro.cancel = &j.cancel;
      LB_ASSIGN_OR_RETURN(backup::RestoreResult r, backup::Restore(*repo, snap, ro, &j.progress));
      out.files = r.files;
      out.bytes = r.bytes;
      out.file_errors = r.failed.size();
      for (size_t i = 0; i < r.failed.size() && i < 5; ++i) {
        out.error_samples.push_back(r.failed[i].path + ": " + r.failed[i].reason);
      }
      out.snapshot = snap.id;
      // The marker says "done" to the pod's restore-wait init container,
      // also when some files failed: the caller reports them.
      return WriteRestoreMarker(dir, j.marker);
    }
    backup::BackupOptions bo;
    bo.path = dir;
    bo.source = j.source;
    bo.tags = j.tags;
    bo.schedule = j.schedule;
    LB_ASSIGN_OR_RETURN(backup::BackupResult r, backup::CreateBackup(*repo, bo, &j.progress));
    out.snapshot = r.snapshot.id;
    out.files = r.snapshot.stats.files;
    out.bytes = r.snapshot.stats.bytes;
    out.file_errors = r.errors.size();
    for (size_t i = 0; i < r.errors.size() && i < 5; ++i) {
      out.error_samples.push_back(r.errors[i].path + ": " + r.errors[i].reason);
    }
    return Ok();
  }();
  std::lock_guard lock(mu_);
  --running_;
  turn_.notify_all();
  j.dir = std::move(out.dir);
  if (!out.snapshot.empty()) j.snapshot = std::move(out.snapshot);
  j.files = out.files;
  j.bytes = out.bytes;
  j.file_errors = out.file_errors;
  j.error_samples = std::move(out.error_samples);
  const char* kind = j.restore ? "restore" : "backup";
  jobs_total_->With({kind, result.ok() ? "done" : "failed"}).Inc();
  job_seconds_->With({kind}).Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (result.ok()) {
    bytes_total_->With({kind}).Inc(static_cast<double>(j.bytes));
    files_total_->With({kind}).Inc(static_cast<double>(j.files));
    j.state = "done";
    spdlog::info("node agent: job {} done: {} files, {} bytes{}", j.id, j.files, j.bytes,
                 j.file_errors ? ", " + std::to_string(j.file_errors) + " files failed" : "");
  } else {
    j.state = "failed";
    j.error = result.error().message();
    spdlog::warn("node agent: job {} failed: {}", j.id, j.error);
  }
}

Status NodeAgent::Run() {
  auto signals = options_.handle_signals ? StopOnSignals(io_, [this] { Stop(); }) : nullptr;
  server_ = std::make_unique<net::HttpServer>(io_, [this](const net::HttpRequest& r) { return Handle(r); });
  LB_RETURN_IF_ERROR(server_->Listen(options_.listen));
  Address bound = options_.listen;
  bound.port = server_->port();
  spdlog::info("node agent for node {} of plan {} serving on {}; kubelet root {}",
               options_.node_name.empty() ? "(unnamed)" : options_.node_name, plan_.name, bound.ToString(),
               options_.kubelet_root);
  auto work = boost::asio::make_work_guard(io_);
  io_.run();
  spdlog::info("node agent stopped");
  return Ok();
}

void NodeAgent::Stop() {
  std::vector<Job*> jobs;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;  // no job is added or dropped from here on
    for (auto& [id, j] : jobs_) {
      j->cancel = true;  // restores stop at the next file; backups run to their end
      jobs.push_back(j.get());
    }
    turn_.notify_all();
  }
  if (server_) server_->Stop();
  io_.stop();
  for (Job* j : jobs) {
    if (j->thread.joinable()) j->thread.join();
  }
}

}  // namespace lifeboat::agent
