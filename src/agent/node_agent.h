// The node agent (`lifeboat agent --node`): one per Kubernetes node, run by
// a DaemonSet with the kubelet's pod directory mounted. It backs up and
// restores the files of the persistent volumes that pods on its node mount,
// on request of whoever makes a cluster backup or restore
// (k8s/volume_data.h), into and from the plan's backup locations. It keeps
// no state: a job lives in memory until it is read or the agent stops.
//
// Its API (every request but /healthz needs the admin token):
//   POST /v1/node/backups   {location, pod_uid, volume, source, tags, schedule}  -> 202 {job}
//   POST /v1/node/restores  {location, snapshot, pod_uid, volume, marker}       -> 202 {job}
//   GET  /v1/node/jobs/ID   the job's state, progress and result
//   GET  /v1/status, /healthz, /metrics (the last two without the token)
// `volume` names the directory below pods/POD_UID/volumes/PLUGIN/ (a PVC's
// is its PV's name); nothing outside the kubelet's pod volumes is reachable.
#pragma once

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/address.h"
#include "core/result.h"
#include "core/units.h"
#include "metrics/registry.h"
#include "net/http.h"
#include "plan/plan.h"

namespace lifeboat::agent {

struct NodeAgentOptions {
  Address listen{"0.0.0.0", 7790};
  std::string kubelet_root = "/var/lib/kubelet";
  std::string node_name;  // for /v1/status and the logs
  std::string token;      // the admin token; empty: every job request is refused
  int max_jobs = 2;       // jobs running at once; more wait their turn
  // How long a restore waits for the kubelet to mount the new volume.
  Duration mount_wait = std::chrono::minutes(2);
  bool handle_signals = false;
};

// The directory of `volume` of the pod `pod_uid`:
// KUBELET_ROOT/pods/UID/volumes/PLUGIN/VOLUME, and its mount/ below a CSI
// volume's. Each step must be a directory, not a symlink. InvalidArgument
// for names that are not plain (a slash, "..", ...); NotFound when the
// kubelet has no such volume.
Result<std::string> FindVolumeDir(const std::string& kubelet_root, const std::string& pod_uid,
                                  const std::string& volume);

// Writes KUBELET_ROOT/.../VOLUME/.lifeboat-restore/MARKER below `dir`
// without following a symlink the restored files may have put there.
Status WriteRestoreMarker(const std::string& dir, const std::string& marker);

class NodeAgent {
 public:
  NodeAgent(const plan::Plan& plan, NodeAgentOptions options);
  ~NodeAgent();

  // Binds and serves until Stop() or a signal; waits for running jobs.
  Status Run();
  void Stop();
  // One request (the server's handler; tests call it directly).
  net::HttpResponse Handle(const net::HttpRequest& req);

 private:
  struct Job;
  net::HttpResponse StartJob(const net::HttpRequest& req, bool restore);
  void RunJob(Job& job);
  nlohmann::ordered_json JobJson(const Job& job) const;

  const plan::Plan& plan_;
  NodeAgentOptions options_;
  metrics::Registry metrics_;
  metrics::Family<metrics::Counter>* jobs_total_ = nullptr;    // kind, result
  metrics::Family<metrics::Counter>* bytes_total_ = nullptr;   // kind
  metrics::Family<metrics::Counter>* files_total_ = nullptr;   // kind
  metrics::Family<metrics::Histogram>* job_seconds_ = nullptr; // kind
  boost::asio::io_context io_;
  std::unique_ptr<net::HttpServer> server_;
  mutable std::mutex mu_;
  std::condition_variable turn_;
  int running_ = 0;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;
};

}  // namespace lifeboat::agent
