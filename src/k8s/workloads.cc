#include "k8s/workloads.h"

#include <chrono>
#include <thread>

#include "core/strings.h"

namespace lifeboat::k8s {
namespace {

int64_t Field(const Json& obj, const char* section, const char* key) {
  auto s = obj.find(section);
  if (s == obj.end() || !s->is_object()) return 0;
  auto v = s->find(key);
  return v != s->end() && v->is_number_integer() ? v->get<int64_t>() : 0;
}

std::string LowerKind(const plan::ScaleTarget& t) { return ToLower(t.kind); }

}  // namespace

bool RolledOut(const Json& object, int want, std::string* why) {
  auto say = [&](std::string text) {
    if (why != nullptr) *why = std::move(text);
    return false;
  };
  if (!object.is_object()) return say("the server answered with no object");
  const Json empty = Json::object();
  const Json& status = object.contains("status") && object["status"].is_object() ? object["status"] : empty;
  int64_t generation = Field(object, "metadata", "generation");
  int64_t observed = Field(object, "status", "observedGeneration");
  if (observed < generation) return say("the controller has not seen generation " + std::to_string(generation) + " yet");
  auto count = [&](const char* key) {
    auto v = status.find(key);
    return v != status.end() && v->is_number_integer() ? v->get<int64_t>() : 0;
  };
  int64_t replicas = count("replicas"), ready = count("readyReplicas");
  auto kind = object.find("kind");
  bool deployment = kind != object.end() && *kind == "Deployment";
  if (deployment) {
    int64_t updated = count("updatedReplicas"), available = count("availableReplicas");
    if (updated < want) return say(std::to_string(updated) + " of " + std::to_string(want) + " updated");
    if (replicas > updated) return say(std::to_string(replicas - updated) + " old replicas still terminating");
    if (available < updated) return say(std::to_string(available) + " of " + std::to_string(updated) + " available");
    return true;
  }
  if (ready < want) return say(std::to_string(ready) + " of " + std::to_string(want) + " ready");
  if (replicas > want) return say(std::to_string(replicas - want) + " extra replicas still terminating");
  return true;
}

bool ScaleResult::AllReady() const {
  for (const auto& w : workloads) {
    if (!w.ready) return false;
  }
  return true;
}

std::string ScaleResult::Summary() const {
  std::string out;
  for (const auto& w : workloads) {
    out += (out.empty() ? "" : "; ") + LowerKind(w.target) + " " + w.target.ns + "/" + w.target.name + " " +
           std::to_string(w.from) + "->" + std::to_string(w.target.replicas) +
           (w.ready ? " ready" : " not ready (" + w.why + ")");
  }
  return out;
}

std::string WorkloadPath(const plan::ScaleTarget& t) {
  return "/apis/apps/v1/namespaces/" + QueryEscape(t.ns) + "/" + LowerKind(t) + "s/" + QueryEscape(t.name);
}

Result<ScaleResult> ScaleWorkloads(Client& client, const std::vector<plan::ScaleTarget>& targets, Duration timeout,
                                   const std::function<bool()>& stop, Duration poll) {
  ScaleResult result;
  for (const auto& t : targets) {
    std::string what = LowerKind(t) + " " + t.ns + "/" + t.name;
    LB_ASSIGN_OR_RETURN(Json obj, client.GetJson(WorkloadPath(t)));
    ScaledWorkload w;
    w.target = t;
    // A Deployment or StatefulSet without spec.replicas runs one.
    w.from = obj.is_object() ? static_cast<int>(Field(obj, "spec", "replicas")) : 0;
    if (obj.is_object() && obj.contains("spec") && obj["spec"].is_object() && !obj["spec"].contains("replicas")) {
      w.from = 1;
    }
    if (w.from != t.replicas) {
      Json patch = {{"spec", {{"replicas", t.replicas}}}};
      LB_ASSIGN_OR_RETURN(Response r, client.Call("PATCH", WorkloadPath(t), patch.dump(), "application/merge-patch+json"));
      if (r.status != 200) return ApiError(r, "scale " + what);
    }
    result.workloads.push_back(std::move(w));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (auto& w : result.workloads) {
      if (w.ready) continue;
      LB_ASSIGN_OR_RETURN(Json obj, client.GetJson(WorkloadPath(w.target)));
      w.ready = RolledOut(obj, w.target.replicas, &w.why);
      all = all && w.ready;
    }
    if (all || std::chrono::steady_clock::now() >= deadline || (stop && stop())) return result;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace lifeboat::k8s
