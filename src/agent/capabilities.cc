#include "agent/capabilities.h"

namespace lifeboat::agent {

std::optional<std::string> SourceOf(const plan::Plan& plan, const plan::Region& here, const VolumeRoles* roles,
                                    std::string_view volume) {
  if (plan.FindVolume(std::string(volume)) == nullptr) return std::nullopt;
  if (roles != nullptr) {
    if (auto role = roles->RoleOf(volume)) {
      if (role->fenced) return std::nullopt;  // superseded: the source is elsewhere, and this copy follows nobody
      return role->source ? here.name : role->source_region;
    }
  }
  const plan::Region* primary = plan.Primary();
  if (primary == nullptr) return std::nullopt;
  return primary->name;
}

}  // namespace lifeboat::agent
