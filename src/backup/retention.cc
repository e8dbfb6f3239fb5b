// Retention: which backups a schedule's ttl and keep rules delete.
#include "backup/backup.h"

#include <algorithm>
#include <map>
#include <set>

namespace lifeboat::backup {

std::vector<std::string> SelectForDeletion(const std::vector<repo::Snapshot>& snapshots, Duration ttl,
                                           const plan::Keep& keep, std::chrono::system_clock::time_point now) {
  std::vector<const repo::Snapshot*> newest_first;
  for (const auto& s : snapshots) newest_first.push_back(&s);
  std::sort(newest_first.begin(), newest_first.end(),
            [](const repo::Snapshot* a, const repo::Snapshot* b) { return a->time_ns > b->time_ns; });
  std::set<std::string> kept;
  if (!newest_first.empty()) kept.insert(newest_first[0]->id);
  for (const auto* s : newest_first) {
    if (s->stats.errors == 0) {
      kept.insert(s->id);  // the newest good one
      break;
    }
  }
  std::set<std::string> by_rule;
  auto bucket_rule = [&](int n, const char* fmt) {
    std::string last;
    int count = 0;
    for (const auto* s : newest_first) {
      if (count >= n) break;
      std::time_t t = static_cast<std::time_t>(s->time_ns / 1000000000);
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, fmt, &tm);
      if (buf != last) {
        by_rule.insert(s->id);
        last = buf;
        ++count;
      }
    }
  };
  for (int i = 0; i < keep.last && i < static_cast<int>(newest_first.size()); ++i) by_rule.insert(newest_first[static_cast<size_t>(i)]->id);
  bucket_rule(keep.hourly, "%Y-%m-%d %H");
  bucket_rule(keep.daily, "%Y-%m-%d");
  bucket_rule(keep.weekly, "%G-%V");
  bucket_rule(keep.monthly, "%Y-%m");
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  auto ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
  std::vector<std::string> out;
  for (const auto* s : newest_first) {
    if (kept.count(s->id)) continue;
    bool expired = now_ns - s->time_ns > ttl_ns;
    bool unselected = keep.any() && !by_rule.count(s->id);
    if (expired || unselected) out.push_back(s->id);
  }
  return out;
}

}  // namespace lifeboat::backup
