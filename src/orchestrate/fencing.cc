#include "orchestrate/fencing.h"

namespace lifeboat::orchestrate {

Status AdmitSender(const state::VolumeRole& role, std::string_view sender, uint64_t epoch) {
  if (role.fenced) {
    return FailedPrecondition("this region's copy is fenced (a failover superseded it); it receives nothing until "
                              "a failback reverses it");
  }
  if (role.source) return FailedPrecondition("this region is a source of the volume; it receives nothing");
  if (sender != role.source_region) {
    return PermissionDenied("this target follows region '" + role.source_region + "', not '" + std::string(sender) +
                            "'");
  }
  if (epoch < role.epoch) {
    return FailedPrecondition("epoch " + std::to_string(epoch) + " is older than this target's " +
                              std::to_string(role.epoch));
  }
  return Ok();
}

const char* Name(VolumeAction a) {
  switch (a) {
    case VolumeAction::kNone: return "none";
    case VolumeAction::kPromote: return "promote";
    case VolumeAction::kFence: return "fence";
    case VolumeAction::kFollow: return "follow";
  }
  return "?";
}

VolumeAction Reconcile(const state::VolumeRole& role, const state::PrimaryRecord& primary,
                       const std::optional<state::FailoverRun>& last_run, const std::string& here,
                       bool primary_has_copy) {
  if (role.epoch >= primary.epoch) return VolumeAction::kNone;
  if (primary.region == here) {
    return !role.source || role.fenced ? VolumeAction::kPromote : VolumeAction::kNone;
  }
  if (role.source && !role.fenced) {
    bool planned_away = last_run && last_run->planned && last_run->epoch == primary.epoch &&
                        last_run->from == here && last_run->to == primary.region;
    return planned_away ? VolumeAction::kFollow : VolumeAction::kFence;
  }
  if (!role.source && !role.fenced && role.source_region != primary.region && primary_has_copy) {
    return VolumeAction::kFollow;
  }
  return VolumeAction::kNone;
}

}  // namespace lifeboat::orchestrate
