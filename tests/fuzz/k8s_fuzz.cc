// Feeds untrusted bytes to what lifeboat reads from clusters and backups of
// them: a kubeconfig, an exec plugin's ExecCredential, a path in a backup,
// an object as a restore prepares it (its references, whether it is
// skipped, the fields stripped and mapped), and a workload's status as the
// scale step reads it, the restore-wait init container added to it, and a
// backup's link to a PVC's files. Each must refuse or succeed,
// and a parsed backup path must name the same object again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "k8s/kubeconfig.h"
#include "k8s/rules.h"
#include "k8s/volume_data.h"
#include "k8s/workloads.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lifeboat::k8s;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // No base directory: relative file names in the input are not read.
  (void)ParseKubeconfig(text, "fuzz", "/nonexistent", "");
  (void)ParseExecCredential(text, "fuzz");
  if (auto ref = ParseObjectPath(std::string(text))) {
    if (ObjectPath(ref->qualified, ref->ns, ref->name) != text) std::abort();
  }
  Json obj = Json::parse(text, nullptr, false);
  if (obj.is_discarded()) return 0;
  for (int want : {0, 3}) {
    std::string why;
    if (!RolledOut(obj, want, &why) && why.empty()) std::abort();  // a refusal always says why
  }
  for (const char* q : {"pods", "deployments.apps", "statefulsets.apps", "persistentvolumeclaims", "persistentvolumes",
                        "services", "namespaces", "secrets", "replicasets.apps", "cronjobs.batch",
                        "rolebindings.rbac.authorization.k8s.io", "ingresses.networking.k8s.io"}) {
    (void)ReferencedKinds(q, obj);
    auto in = [](const std::string&, const std::string& kind, const std::string&, const std::string&) {
      return kind.size() % 2 == 0;
    };
    (void)SkipReason(q, obj, in);
    RestoreMapping m{{{"a", "b"}}, {{"gp2", "standard"}}};
    Json out = PrepareForRestore(obj, q, m, size % 2 == 0, in);
    if (out.is_object() && out.contains("status")) std::abort();  // always stripped
    Json waits = out;
    if (AddRestoreWait(waits, q, {"data", "data-web-0", "uploads"}, "img", "m1")) {
      // A wait was added, so the object now has a pod spec whose first init container is it.
      if (waits.dump().find("lifeboat-restore-wait") == std::string::npos) std::abort();
    }
    Json again = waits;
    (void)AddRestoreWait(again, q, {}, "img", "m1");  // no claims with files: every wait is removed
    if (again.dump().find("\"lifeboat-restore-wait\"") != std::string::npos &&
        out.dump().find("\"lifeboat-restore-wait\"") == std::string::npos) {
      std::abort();
    }
  }
  VolumeLink link = VolumeLink::FromJson(obj);
  if (VolumeLink::FromJson(link.ToJson()).ToJson() != link.ToJson()) std::abort();
  return 0;
}
