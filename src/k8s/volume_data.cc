#include "k8s/volume_data.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "core/json_read.h"
#include "k8s/cluster_backup.h"
#include "k8s/rules.h"
#include "net/http.h"

namespace lifeboat::k8s {

namespace {

constexpr const char* kNodeAgentSelector = "app.kubernetes.io/name=lifeboat,app.kubernetes.io/component=node-agent";
constexpr const char* kWaitName = "lifeboat-restore-wait";

ApiResource Pods() {
  ApiResource r;
  r.resource = "pods";
  r.version = "v1";
  r.kind = "Pod";
  r.namespaced = true;
  return r;
}

// The claim names a pod spec mounts, by the pod's volume name.
std::map<std::string, std::string> ClaimsOf(const Json& pod_spec) {
  std::map<std::string, std::string> out;
  for (const auto& v : json::Arr(pod_spec, "volumes")) {
    std::string claim = json::Str(json::Obj(v, "persistentVolumeClaim"), "claimName");
    std::string name = json::Str(v, "name");
    if (!claim.empty() && !name.empty()) out[name] = claim;
  }
  return out;
}

// A job on a node agent, followed until it ends: the job's final JSON.
Result<Json> RunNodeJob(const NodeAgentRef& agent, const std::string& kind, const Json& body, const NodeAgentAccess& a,
                        const std::function<bool()>& stop = {}) {
  std::vector<std::string> headers = {"Authorization: Bearer " + a.token, "Content-Type: application/json"};
  LB_ASSIGN_OR_RETURN(net::FetchResult res,
                      net::Fetch("POST", agent.url + "/v1/node/" + kind, std::chrono::seconds(10), body.dump(), headers));
  Json answer = Json::parse(res.body, nullptr, false);
  if (res.status != 202) {
    std::string why = answer.is_object() ? json::Str(answer, "error", res.body) : res.body;
    return Unavailable("node agent " + agent.pod + " on " + agent.node + " answered " + std::to_string(res.status) +
                       ": " + why);
  }
  std::string id = answer.is_object() ? json::Str(answer, "job") : "";
  if (id.empty()) return Unavailable("node agent " + agent.pod + " answered 202 without a job");
  auto deadline = std::chrono::steady_clock::now() + a.job_timeout;
  int misses = 0;
  while (true) {
    std::this_thread::sleep_for(a.poll);
    if (stop && stop()) return Cancelled("stopped while node agent " + agent.pod + " ran job " + id);
    auto got = net::Fetch("GET", agent.url + "/v1/node/jobs/" + id, std::chrono::seconds(10), {}, headers);
    if (!got.ok() || got->status != 200) {
      // A few missed polls are a busy node; many, a node agent gone.
      if (++misses >= 20) {
        return Unavailable("node agent " + agent.pod + " on " + agent.node + " stopped answering about job " + id +
                           (got.ok() ? " (HTTP " + std::to_string(got->status) + ")" : ": " + got.error().message()));
      }
      continue;
    }
    misses = 0;
    Json j = Json::parse(got->body, nullptr, false);
    std::string state = j.is_object() ? json::Str(j, "state") : "";
    if (state == "done") return j;
    if (state == "failed") return Unavailable(json::Str(j, "error", "the job failed"));
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceeded("job " + id + " on node agent " + agent.pod + " still " + state + " after " +
                              std::to_string(a.job_timeout.count()) + " s");
    }
  }
}

// The claims that pods of `ns` on a node mount: for each, the first such
// pod's UID and node.
struct Placed {
  std::string uid, node;
};
Result<std::map<std::string, Placed>> ScheduledClaims(Client& client, const std::string& ns) {
  std::map<std::string, Placed> out;
  LB_RETURN_IF_ERROR(ListAll(client, Pods(), ns, "", 500, [&](Json& pod) -> Status {
    const Json& spec = json::Obj(pod, "spec");
    std::string node = json::Str(spec, "nodeName");
    if (node.empty()) return Ok();
    for (const auto& [volume, claim] : ClaimsOf(spec)) out.emplace(claim, Placed{StringAt(pod, {"metadata", "uid"}), node});
    return Ok();
  }));
  return out;
}

}  // namespace

Result<std::map<std::string, NodeAgentRef>> FindNodeAgents(Client& client, const std::string& ns) {
  std::map<std::string, NodeAgentRef> out;
  Status st = ListAll(client, Pods(), ns, kNodeAgentSelector, 500, [&](Json& pod) -> Status {
    const Json& spec = json::Obj(pod, "spec");
    const Json& status = json::Obj(pod, "status");
    NodeAgentRef r;
    r.node = json::Str(spec, "nodeName");
    r.pod = json::Str(json::Obj(pod, "metadata"), "name");
    std::string ip = json::Str(status, "podIP");
    if (r.node.empty() || ip.empty() || json::Str(status, "phase") != "Running") return Ok();
    for (const auto& c : json::Arr(spec, "containers")) {
      for (const auto& p : json::Arr(c, "ports")) {
        auto port = json::Num(p, "containerPort");
        if (json::Str(p, "name") == "node-api" && port && *port >= 1 && *port <= 65535) {
          std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
          r.url = "http://" + host + ":" + std::to_string(static_cast<int>(*port));
          r.image = json::Str(c, "image");
        }
      }
    }
    if (!r.url.empty()) out.emplace(r.node, std::move(r));
    return Ok();
  });
  if (!st.ok()) return st.error().Wrap("listing the node agents in namespace " + ns);
  return out;
}

Json VolumeLink::ToJson() const {
  Json j = {{"namespace", ns}, {"pvc", pvc}, {"pod", pod}, {"node", node}, {"pv", pv}, {"storage_class", storage_class}};
  if (!snapshot.empty()) {
    j["snapshot"] = snapshot;
    j["files"] = files;
    j["bytes"] = bytes;
    j["file_errors"] = file_errors;
  }
  if (!error.empty()) j["error"] = error;
  return j;
}

VolumeLink VolumeLink::FromJson(const Json& j) {
  VolumeLink l;
  l.ns = json::Str(j, "namespace");
  l.pvc = json::Str(j, "pvc");
  l.pod = json::Str(j, "pod");
  l.node = json::Str(j, "node");
  l.pv = json::Str(j, "pv");
  l.storage_class = json::Str(j, "storage_class");
  l.snapshot = json::Str(j, "snapshot");
  l.files = json::U64(j, "files");
  l.bytes = json::U64(j, "bytes");
  l.file_errors = json::U64(j, "file_errors");
  l.error = json::Str(j, "error");
  return l;
}

Result<std::vector<VolumeLink>> BackupVolumes(Client& client, const Selection& select, const std::string& selector,
                                              const VolumeBackupOptions& o,
                                              const std::function<void(const VolumeLink&)>& on_link) {
  // Each PVC once, from the first running pod that mounts it.
  std::map<std::pair<std::string, std::string>, VolumeLink> links;
  std::map<std::pair<std::string, std::string>, std::string> pod_uid;
  Status st = ListAll(client, Pods(), "", selector, 500, [&](Json& pod) -> Status {
    const Json& meta = json::Obj(pod, "metadata");
    std::string ns = json::Str(meta, "namespace");
    if (!select.NamespaceIncluded(ns)) return Ok();
    const Json& spec = json::Obj(pod, "spec");
    if (json::Str(json::Obj(pod, "status"), "phase") != "Running") return Ok();
    for (const auto& [volume, claim] : ClaimsOf(spec)) {
      auto key = std::make_pair(ns, claim);
      if (links.count(key)) continue;
      VolumeLink l;
      l.ns = ns;
      l.pvc = claim;
      l.pod = json::Str(meta, "name");
      l.node = json::Str(spec, "nodeName");
      links[key] = l;
      pod_uid[key] = json::Str(meta, "uid");
    }
    return Ok();
  });
  if (!st.ok()) return st.error().Wrap("listing the pods whose volumes to back up");
  std::vector<VolumeLink> out;
  if (links.empty()) return out;
  LB_ASSIGN_OR_RETURN(auto agents, FindNodeAgents(client, o.agents.ns));
  for (auto& entry : links) {
    // Named, not bound: Debian 12's clang (14) cannot capture a structured binding in a lambda.
    const auto& key = entry.first;
    VolumeLink& l = entry.second;
    Status one = [&]() -> Status {
      LB_ASSIGN_OR_RETURN(Json pvc, client.GetJson("/api/v1/namespaces/" + l.ns + "/persistentvolumeclaims/" + l.pvc));
      l.pv = StringAt(pvc, {"spec", "volumeName"});
      l.storage_class = StringAt(pvc, {"spec", "storageClassName"});
      if (l.pv.empty()) return FailedPrecondition("the PVC is not bound to a volume");
      auto agent = agents.find(l.node);
      if (agent == agents.end()) {
        return FailedPrecondition("no node agent runs on node " + l.node + " (namespace " + o.agents.ns +
                                  "; deploy/kubernetes has the DaemonSet)");
      }
      Json body = {{"location", o.location},
                   {"pod_uid", pod_uid[key]},
                   {"volume", l.pv},
                   {"source", "pvc:" + o.cluster + "/" + l.ns + "/" + l.pvc},
                   {"tags", o.tags},
                   {"schedule", o.schedule}};
      LB_ASSIGN_OR_RETURN(Json done, RunNodeJob(agent->second, "backups", body, o.agents));
      l.snapshot = json::Str(done, "snapshot");
      l.files = json::U64(done, "files");
      l.bytes = json::U64(done, "bytes");
      l.file_errors = json::U64(done, "file_errors");
      if (l.snapshot.empty()) return Unavailable("the node agent's job ended without a snapshot");
      return Ok();
    }();
    if (!one.ok()) l.error = one.error().message();
    if (on_link) on_link(l);
    out.push_back(std::move(l));
  }
  return out;
}

bool AddRestoreWait(Json& obj, const std::string& qualified, const std::set<std::string>& pvcs,
                    const std::string& image, const std::string& marker) {
  std::vector<const char*> path;
  if (qualified == "pods") {
    path = {"spec"};
  } else if (qualified == "deployments.apps" || qualified == "statefulsets.apps" || qualified == "daemonsets.apps" ||
             qualified == "replicasets.apps" || qualified == "jobs.batch") {
    path = {"spec", "template", "spec"};
  } else if (qualified == "cronjobs.batch") {
    path = {"spec", "jobTemplate", "spec", "template", "spec"};
  } else {
    return false;
  }
  // The pod spec, if the object has one where it should (a backup's object
  // may have any shape: nothing is added on the way).
  Json* spec = &obj;
  for (const char* key : path) {
    if (!spec->is_object()) return false;
    auto it = spec->find(key);
    if (it == spec->end()) return false;
    spec = &*it;
  }
  if (!spec->is_object()) return false;
  // A wait a former restore left in the template waits for that restore's
  // marker: never carried over.
  if (spec->contains("initContainers") && (*spec)["initContainers"].is_array()) {
    auto& inits = (*spec)["initContainers"];
    for (auto it = inits.begin(); it != inits.end();) {
      it = json::Str(*it, "name") == kWaitName ? inits.erase(it) : it + 1;
    }
    if (inits.empty()) spec->erase("initContainers");
  }
  if (pvcs.empty() || image.empty()) return false;
  std::vector<std::string> volumes;  // pod volume names whose files are restored
  for (const auto& [volume, claim] : ClaimsOf(*spec)) {
    if (pvcs.count(claim)) volumes.push_back(volume);
  }
  if (qualified == "statefulsets.apps") {
    // Each replica N mounts TEMPLATE-NAME-N: every replica's claim must
    // have files, or the replicas without would wait for ever.
    std::string name = StringAt(obj, {"metadata", "name"});
    auto replicas = json::Num(json::Obj(obj, "spec"), "replicas").value_or(1);
    for (const auto& t : json::Arr(json::Obj(obj, "spec"), "volumeClaimTemplates")) {
      std::string tmpl = StringAt(t, {"metadata", "name"});
      bool all = replicas >= 1 && replicas <= 10000;
      for (int i = 0; all && i < static_cast<int>(replicas); ++i) {
        all = pvcs.count(tmpl + "-" + name + "-" + std::to_string(i)) > 0;
      }
      if (all && !tmpl.empty()) volumes.push_back(tmpl);
    }
  }
  if (volumes.empty()) return false;
  Json wait = {{"name", kWaitName},
               {"image", image},
               {"command", {"sh", "-c",
                            "for f in \"$@\"; do until [ -e \"$f\" ]; do sleep 1; done; done; "
                            "echo lifeboat: volume files restored",
                            kWaitName}},
               {"volumeMounts", Json::array()},
               {"resources", {{"requests", {{"cpu", "10m"}, {"memory", "16Mi"}}}, {"limits", {{"memory", "64Mi"}}}}}};
  for (const auto& v : volumes) {
    std::string dir = "/lifeboat-restore/" + v;
    wait["command"].push_back(dir + "/.lifeboat-restore/" + marker);
    wait["volumeMounts"].push_back({{"name", v}, {"mountPath", dir}, {"readOnly", true}});
  }
  Json inits = Json::array({wait});
  if (spec->contains("initContainers") && (*spec)["initContainers"].is_array()) {
    for (auto& c : (*spec)["initContainers"]) inits.push_back(std::move(c));
  }
  (*spec)["initContainers"] = std::move(inits);
  return true;
}

std::vector<VolumeRestoreResult> RestoreVolumes(Client& client, const std::vector<VolumeLink>& links,
                                                const std::map<std::string, std::string>& namespace_map,
                                                const std::string& marker, const VolumeRestoreOptions& o,
                                                const std::function<bool()>& stop) {
  std::vector<VolumeRestoreResult> out;
  std::vector<const VolumeLink*> pending;
  for (const auto& l : links) {
    if (l.snapshot.empty()) continue;  // its backup failed: the backup said so
    pending.push_back(&l);
  }
  auto mapped = [&](const std::string& ns) {
    auto it = namespace_map.find(ns);
    return it == namespace_map.end() ? ns : it->second;
  };
  auto deadline = std::chrono::steady_clock::now() + o.wait;
  std::string last_wait;  // why the first pending link still waits
  while (!pending.empty()) {
    if (stop && stop()) break;
    auto agents = FindNodeAgents(client, o.agents.ns);
    std::map<std::string, Result<std::map<std::string, Placed>>> placed;  // by namespace, listed once a round
    std::vector<const VolumeLink*> still;
    for (const VolumeLink* l : pending) {
      VolumeRestoreResult r{mapped(l->ns), l->pvc, "", "", ""};
      // A pod on a node that mounts the PVC, and the PVC bound.
      std::string uid, why;
      auto in_ns = placed.find(r.ns);
      if (in_ns == placed.end()) in_ns = placed.emplace(r.ns, ScheduledClaims(client, r.ns)).first;
      const auto& listed = in_ns->second;
      if (listed.ok()) {
        if (auto p = listed->find(r.pvc); p != listed->end()) {
          uid = p->second.uid;
          r.node = p->second.node;
        }
      }
      auto pvc = client.GetJson("/api/v1/namespaces/" + r.ns + "/persistentvolumeclaims/" + r.pvc);
      std::string pv = pvc.ok() ? StringAt(*pvc, {"spec", "volumeName"}) : "";
      if (!listed.ok()) {
        why = "pods of " + r.ns + " cannot be listed: " + listed.error().message();
      } else if (uid.empty()) {
        why = "no pod that mounts it is on a node yet";
      } else if (pv.empty()) {
        why = pvc.ok() ? "the PVC is not bound yet" : "the PVC cannot be read: " + pvc.error().message();
      } else if (!agents.ok()) {
        why = agents.error().message();
      } else if (!agents->count(r.node)) {
        why = "no node agent runs on node " + r.node + " (namespace " + o.agents.ns + ")";
      }
      if (!why.empty()) {
        if (std::chrono::steady_clock::now() < deadline) {
          if (last_wait.empty()) last_wait = r.ns + "/" + r.pvc + ": " + why;
          still.push_back(l);
          continue;
        }
        r.result = "failed";
        r.reason = why + " after " + std::to_string(o.wait.count()) + " s";
        out.push_back(std::move(r));
        continue;
      }
      Json body = {{"location", o.location}, {"snapshot", l->snapshot}, {"pod_uid", uid},
                   {"volume", pv},           {"marker", marker}};
      auto done = RunNodeJob(agents->at(r.node), "restores", body, o.agents, stop);
      if (done.ok()) {
        r.files = json::U64(*done, "files");
        r.bytes = json::U64(*done, "bytes");
        uint64_t failed = json::U64(*done, "file_errors");
        r.result = failed ? "failed" : "restored";
        r.reason = std::to_string(r.files) + " files, " + std::to_string(r.bytes) + " bytes on node " + r.node;
        if (failed) r.reason += "; " + std::to_string(failed) + " files could not be written";
      } else {
        r.result = "failed";
        r.reason = done.error().message();
      }
      out.push_back(std::move(r));
    }
    pending.swap(still);
    if (!pending.empty()) {
      spdlog::info("volume data: waiting for {}", last_wait);
      last_wait.clear();
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  for (const VolumeLink* l : pending) {  // stopped
    out.push_back({mapped(l->ns), l->pvc, "", "failed", "the restore was stopped before its files were restored"});
  }
  return out;
}

}  // namespace lifeboat::k8s
