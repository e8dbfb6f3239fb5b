// The agent's backup service: runs the plan's backup schedules (cron, UTC)
// for the volumes whose source is this region, then applies the schedule's
// retention (ttl, keep) to that schedule's backups of each volume and prunes
// the location when it deleted any.
//
// "The source" is the region the volume's replication role names (state key
// replicate/VOLUME/role), or the plan's primary for a volume that is not
// replicated; so after a failover the new primary takes the backups over.
// Admin API: GET /v1/backups; POST /v1/backups/SCHEDULE/run (bearer token)
// runs a schedule now.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/cron.h"
#include "core/result.h"
#include "net/http.h"
#include "plan/plan.h"

namespace lifeboat::agent {

class Agent;

class BackupService {
 public:
  // Nothing (nullptr) when the plan has no schedules.
  static Result<std::unique_ptr<BackupService>> Create(Agent& agent);
  ~BackupService();
  Status Start();
  void Stop();

 private:
  struct Run {  // one volume of one schedule
    std::string schedule, volume;
    int64_t last_success_ns = 0;
    double last_duration = 0;
    uint64_t last_bytes = 0, last_stored = 0, runs = 0, failures = 0, deleted = 0;
    std::string last_id, last_error, state = "idle";  // idle, running, skipped (not the source here)
  };
  struct Schedule {
    const plan::Schedule* plan = nullptr;
    CronSchedule cron;
    std::chrono::system_clock::time_point next;
  };

  explicit BackupService(Agent& agent);
  void Loop();
  void RunSchedule(const Schedule& s);
  bool IsSourceHere(const std::string& volume);
  Run& RunOf(const std::string& schedule, const std::string& volume);  // mu_ held
  nlohmann::ordered_json Json();
  net::HttpResponse Handle(const net::HttpRequest& req);
  void RegisterMetrics();

  Agent& agent_;
  std::string token_;
  std::vector<Schedule> schedules_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::string> requested_;  // schedules asked to run now
  std::map<std::pair<std::string, std::string>, Run> runs_;
  std::thread thread_;
};

}  // namespace lifeboat::agent
