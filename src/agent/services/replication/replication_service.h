// The agent's replication service: for each volume with continuous
// replication and a path in this region, either sends (this region is the
// volume's source: one replicate::Stream per other region) or receives (a
// replicate::Receiver on the volume's port at this region's agent host).
// The role, the source it follows and an epoch live in the state store under
// replicate/VOLUME/role; promote and reverse change them.
// Admin API: GET /v1/replication, GET|POST /v1/replication/VOLUME/verify,
// POST /v1/replication/VOLUME/promote, POST /v1/replication/VOLUME/reverse.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"
#include "net/http.h"
#include "plan/plan.h"
#include "replicate/stream.h"

namespace lifeboat::agent {

class Agent;

class ReplicationService {
 public:
  static Result<std::unique_ptr<ReplicationService>> Create(Agent& agent);
  ~ReplicationService();
  Status Start();
  void Stop();

 private:
  struct Role {
    bool source = false;
    std::string from;  // the source region, for a target
    uint64_t epoch = 1;
  };
  struct Volume {
    const plan::Volume* plan = nullptr;
    std::string path;
    std::optional<replicate::PskKey> key;
    std::string problem;  // why it does not replicate, when it does not
    std::mutex mu;
    Role role;
    std::vector<std::unique_ptr<replicate::Stream>> streams;
    std::unique_ptr<replicate::Listener> listener;
    std::unique_ptr<replicate::Receiver> receiver;
    std::thread accept;
    // The last verification asked through the API.
    std::string verify_state = "never";  // never, running, done, failed
    nlohmann::ordered_json verify_result;
    std::thread verify;
  };

  explicit ReplicationService(Agent& agent);
  Status LoadRole(Volume& v);
  Status SaveRole(const Volume& v);
  Status StartRole(Volume& v);  // v.mu held
  void StopRole(Volume& v);     // v.mu held
  Volume* Find(const std::string& name);
  nlohmann::ordered_json VolumeJson(Volume& v);
  net::HttpResponse Handle(const net::HttpRequest& req);
  net::HttpResponse HandleVerify(Volume& v, bool start);
  net::HttpResponse HandlePromote(Volume& v);
  net::HttpResponse HandleReverse(Volume& v, const net::HttpRequest& req);
  void RegisterMetrics();

  Agent& agent_;
  std::string token_;
  std::vector<std::unique_ptr<Volume>> volumes_;
};

}  // namespace lifeboat::agent
