#include "agent/replication_service.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>

#include "agent/agent.h"
#include "agent/auth.h"

namespace lifeboat::agent {

using Json = nlohmann::ordered_json;

namespace {

std::string RoleKey(const std::string& volume) { return "replicate/" + volume + "/role"; }

}  // namespace

ReplicationService::ReplicationService(Agent& agent) : agent_(agent) {}

ReplicationService::~ReplicationService() { Stop(); }

Result<std::unique_ptr<ReplicationService>> ReplicationService::Create(Agent& agent) {
  std::unique_ptr<ReplicationService> s(new ReplicationService(agent));
  LB_ASSIGN_OR_RETURN(s->token_, LoadToken(agent.plan()));
  const auto& region = agent.region().name;
  for (const auto& pv : agent.plan().volumes) {
    auto it = pv.path.find(region);
    if (it == pv.path.end() || pv.replication.mode != plan::ReplicationMode::kContinuous) continue;
    auto v = std::make_unique<Volume>();
    v->plan = &pv;
    v->path = it->second;
    std::string key_file = pv.replication.key_file;
    if (const char* env = std::getenv("LIFEBOAT_REPLICATION_KEY_FILE"); env && *env) key_file = env;
    if (key_file.empty()) {
      v->problem = "no replication key: set volumes." + pv.name + ".replication.key_file (create it with: openssl rand "
                   "-hex 32 > FILE, the same file in every region)";
    } else if (auto key = replicate::LoadKey(key_file, pv.name); key) {
      v->key = *key;
    } else {
      v->problem = key.error().message();
    }
    LB_RETURN_IF_ERROR(s->LoadRole(*v));
    s->volumes_.push_back(std::move(v));
  }
  if (s->volumes_.empty()) return s;
  agent.AddRoute("/v1/replication", [p = s.get()](const net::HttpRequest& r) { return p->Handle(r); });
  agent.AddStatusSection("replication", [p = s.get()] {
    Json out = Json::array();
    for (auto& v : p->volumes_) out.push_back(p->VolumeJson(*v));
    return out;
  });
  s->RegisterMetrics();
  return s;
}

Status ReplicationService::LoadRole(Volume& v) {
  LB_ASSIGN_OR_RETURN(auto kv, agent_.store().Get(RoleKey(v.plan->name)));
  const plan::Region* primary = agent_.plan().Primary();
  if (!kv) {  // first start: the plan's primary sends
    v.role.source = primary != nullptr && primary->name == agent_.region().name;
    v.role.from = v.role.source || primary == nullptr ? "" : primary->name;
    v.role.epoch = 1;
    return SaveRole(v);
  }
  auto j = nlohmann::json::parse(kv->value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("state key " + RoleKey(v.plan->name) + " is not JSON");
  v.role.source = j.value("role", "") == "source";
  v.role.from = j.value("source", "");
  v.role.epoch = j.value("epoch", uint64_t{1});
  return Ok();
}

Status ReplicationService::SaveRole(const Volume& v) {
  Json j = {{"role", v.role.source ? "source" : "target"}, {"source", v.role.from}, {"epoch", v.role.epoch}};
  auto r = agent_.store().Put(RoleKey(v.plan->name), j.dump());
  if (!r) return r.error();
  return Ok();
}

Status ReplicationService::Start() {
  for (auto& v : volumes_) {
    if (!v->problem.empty()) {
      spdlog::error("replication {}: not replicating: {}", v->plan->name, v->problem);
      continue;
    }
    std::lock_guard lock(v->mu);
    LB_RETURN_IF_ERROR(StartRole(*v));
  }
  return Ok();
}

Status ReplicationService::StartRole(Volume& v) {
  const auto& plan = agent_.plan();
  const auto& here = agent_.region();
  const auto& rep = v.plan->replication;
  if (v.role.source) {
    for (const auto& [region, path] : v.plan->path) {
      if (region == here.name) continue;
      const plan::Region* r = plan.FindRegion(region);
      replicate::StreamConfig c;
      c.link.volume = v.plan->name;
      c.link.root = v.path;
      c.link.region = here.name;
      c.link.epoch = v.role.epoch;
      c.link.target = Address{r->agent.host, rep.port};
      c.link.key = *v.key;
      c.link.bandwidth = rep.bandwidth;
      c.target_region = region;
      c.coalesce = std::chrono::duration_cast<std::chrono::milliseconds>(rep.coalesce);
      c.verify_every = std::chrono::duration_cast<std::chrono::milliseconds>(rep.verify_every);
      auto s = replicate::Stream::Create(std::move(c));
      if (!s) return s.error().Wrap("replication " + v.plan->name + ": watching " + v.path);
      (*s)->Start();
      v.streams.push_back(std::move(*s));
    }
    spdlog::info("replication {}: source (epoch {}), sending {} to {} region(s)", v.plan->name, v.role.epoch, v.path,
                 v.streams.size());
    return Ok();
  }
  std::error_code ec;
  std::filesystem::create_directories(v.path, ec);
  if (ec) return InvalidArgument("replication " + v.plan->name + ": cannot create " + v.path + ": " + ec.message());
  LB_ASSIGN_OR_RETURN(v.listener, replicate::Listener::Listen(Address{here.agent.host, rep.port}));
  Volume* vp = &v;
  v.receiver = std::make_unique<replicate::Receiver>(replicate::Receiver::Config{
      v.plan->name, v.path, *v.key, [vp](const replicate::Hello& h) -> Status {
        std::lock_guard lock(vp->mu);
        if (vp->role.source) return FailedPrecondition("this region is a source of the volume; it receives nothing");
        if (h.region != vp->role.from) {
          return PermissionDenied("this target follows region '" + vp->role.from + "', not '" + h.region + "'");
        }
        if (h.epoch < vp->role.epoch) {
          return FailedPrecondition("epoch " + std::to_string(h.epoch) + " is older than this target's " +
                                    std::to_string(vp->role.epoch));
        }
        return Ok();
      }});
  v.accept = std::thread([r = v.receiver.get(), l = v.listener.get()] { r->Run(*l); });
  spdlog::info("replication {}: target of {} (epoch {}), receiving into {} on port {}", v.plan->name, v.role.from,
               v.role.epoch, v.path, rep.port);
  return Ok();
}

void ReplicationService::StopRole(Volume& v) {
  for (auto& s : v.streams) s->Stop();
  v.streams.clear();
  if (v.listener) v.listener->Close();
  if (v.receiver) v.receiver->Stop();
  if (v.accept.joinable()) v.accept.join();
  v.receiver.reset();
  v.listener.reset();
}

void ReplicationService::Stop() {
  for (auto& v : volumes_) {
    {
      std::lock_guard lock(v->mu);
      StopRole(*v);
    }
    if (v->verify.joinable()) v->verify.join();
  }
}

ReplicationService::Volume* ReplicationService::Find(const std::string& name) {
  for (auto& v : volumes_) {
    if (v->plan->name == name) return v.get();
  }
  return nullptr;
}

Json ReplicationService::VolumeJson(Volume& v) {
  std::lock_guard lock(v.mu);
  Json j = {{"volume", v.plan->name},
            {"path", v.path},
            {"role", v.role.source ? "source" : "target"},
            {"epoch", v.role.epoch}};
  if (!v.role.source) j["source"] = v.role.from;
  if (!v.problem.empty()) j["problem"] = v.problem;
  if (v.role.source) {
    Json targets = Json::array();
    for (auto& s : v.streams) targets.push_back(s->GetStatus().ToJson());
    j["targets"] = targets;
  } else if (v.receiver) {
    auto& st = v.receiver->stats();
    std::string from = v.receiver->connected_source();
    j["receiver"] = {{"port", v.listener ? v.listener->port() : 0},
                     {"connected", !from.empty()},
                     {"files", st.files.load()},
                     {"bytes_written", st.bytes_written.load()},
                     {"bytes_reused", st.bytes_copied.load()},
                     {"commits", st.commits.load()},
                     {"last_commit_unix_ms", st.last_commit_unix_ms.load()}};
  }
  j["verify"] = {{"state", v.verify_state}};
  if (!v.verify_result.is_null()) j["verify"]["result"] = v.verify_result;
  return j;
}

net::HttpResponse ReplicationService::Handle(const net::HttpRequest& req) {
  const std::string prefix = "/v1/replication";
  if (req.path == prefix || req.path == prefix + "/") {
    if (req.method != "GET") return JsonError(405, "use GET " + prefix);
    Json out = {{"region", agent_.region().name}, {"volumes", Json::array()}};
    for (auto& v : volumes_) out["volumes"].push_back(VolumeJson(*v));
    return net::HttpResponse::Json(200, out.dump(2) + "\n");
  }
  std::string rest = req.path.substr(prefix.size() + 1);
  auto slash = rest.find('/');
  std::string name = rest.substr(0, slash);
  std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  Volume* v = Find(name);
  if (v == nullptr) return JsonError(404, "this agent replicates no volume '" + name + "'");
  if (action.empty() && req.method == "GET") return net::HttpResponse::Json(200, VolumeJson(*v).dump(2) + "\n");
  if (action == "verify" && req.method == "GET") return HandleVerify(*v, false);
  if (action == "verify" && req.method == "POST") {
    // Starting one hashes the whole volume in two regions: a change like any other.
    if (auto denied = CheckToken(req, token_, "starting a verification")) return *denied;
    return HandleVerify(*v, true);
  }
  if (req.method != "POST" || (action != "promote" && action != "reverse")) {
    return JsonError(405, "use GET " + prefix + "/VOLUME, GET|POST .../verify, POST .../promote or .../reverse");
  }
  if (auto denied = CheckToken(req, token_, "replication changes")) return *denied;
  if (!v->problem.empty()) return JsonError(409, v->problem);
  return action == "promote" ? HandlePromote(*v) : HandleReverse(*v, req);
}

net::HttpResponse ReplicationService::HandleVerify(Volume& v, bool start) {
  std::unique_lock lock(v.mu);
  if (start) {
    if (!v.role.source) return JsonError(409, "verify runs at the volume's source; this region is a target");
    if (v.streams.empty()) return JsonError(409, "the volume has no target to verify");
    if (v.verify_state != "running") {
      if (v.verify.joinable()) {
        lock.unlock();
        v.verify.join();
        lock.lock();
      }
      v.verify_state = "running";
      v.verify_result = nullptr;
      std::vector<replicate::StreamConfig> targets;
      for (auto& s : v.streams) targets.push_back(s->config());
      v.verify = std::thread([&v, targets] {
        Json result = Json::array();
        bool failed = false;
        for (const auto& c : targets) {
          auto started = std::chrono::steady_clock::now();
          auto link = replicate::Link::Open(c.link, replicate::kModeReadOnly);
          Json t = {{"target", c.target_region}};
          if (!link) {
            failed = true;
            t["error"] = link.error().message();
          } else {
            auto d = (*link)->Sync({}, {{"", true}}, {false, true, nullptr, nullptr});
            if (!d) {
              failed = true;
              t["error"] = d.error().message();
            } else {
              Json list = Json::array();
              for (const auto& x : *d) {
                list.push_back({{"path", replicate::Printable(x.path)}, {"kind", x.kind}, {"detail", x.detail}});
              }
              t["differences"] = list;
            }
          }
          t["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          result.push_back(t);
        }
        std::lock_guard lock(v.mu);
        v.verify_state = failed ? "failed" : "done";
        v.verify_result = result;
      });
    }
    return net::HttpResponse::Json(202, Json{{"state", v.verify_state}}.dump() + "\n");
  }
  Json j = {{"state", v.verify_state}};
  if (!v.verify_result.is_null()) j["result"] = v.verify_result;
  return net::HttpResponse::Json(200, j.dump(2) + "\n");
}

net::HttpResponse ReplicationService::HandlePromote(Volume& v) {
  std::lock_guard lock(v.mu);
  if (v.role.source) return JsonError(409, "region " + agent_.region().name + " is already the source of " + v.plan->name);
  StopRole(v);
  Role old = v.role;
  v.role = {true, "", old.epoch + 1};
  if (auto s = SaveRole(v); !s.ok()) {
    v.role = old;
    (void)StartRole(v);
    return JsonError(s.error());
  }
  if (auto s = StartRole(v); !s.ok()) return JsonError(s.error());
  spdlog::warn("replication {}: promoted: this region is now the source (epoch {}); it no longer follows {}",
               v.plan->name, v.role.epoch, old.from);
  return net::HttpResponse::Json(200, Json{{"role", "source"}, {"epoch", v.role.epoch}}.dump() + "\n");
}

net::HttpResponse ReplicationService::HandleReverse(Volume& v, const net::HttpRequest& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("source") || !body["source"].is_string() ||
      !body.contains("epoch") || !body["epoch"].is_number_unsigned()) {
    return JsonError(400, "send a JSON body such as {\"source\": \"us-west\", \"epoch\": 2}");
  }
  std::string source = body["source"];
  uint64_t epoch = body["epoch"];
  if (source == agent_.region().name) return JsonError(409, "a region cannot follow itself");
  if (!v.plan->path.count(source)) return JsonError(404, "region '" + source + "' holds no copy of " + v.plan->name);
  std::lock_guard lock(v.mu);
  if (epoch < v.role.epoch) {
    return JsonError(409, "epoch " + std::to_string(epoch) + " is older than this region's " +
                              std::to_string(v.role.epoch) + "; promote the new source first");
  }
  StopRole(v);
  Role old = v.role;
  v.role = {false, source, epoch};
  if (auto s = SaveRole(v); !s.ok()) {
    v.role = old;
    (void)StartRole(v);
    return JsonError(s.error());
  }
  if (auto s = StartRole(v); !s.ok()) return JsonError(s.error());
  spdlog::warn("replication {}: reversed: this region now follows {} (epoch {})", v.plan->name, source, epoch);
  return net::HttpResponse::Json(200, Json{{"role", "target"}, {"source", source}, {"epoch", epoch}}.dump() + "\n");
}

void ReplicationService::RegisterMetrics() {
  auto& m = agent_.metrics();
  using Samples = std::vector<std::pair<metrics::Labels, double>>;
  auto per_stream = [this](auto field) {
    return [this, field] {
      Samples out;
      for (auto& v : volumes_) {
        std::lock_guard lock(v->mu);
        for (auto& s : v->streams) {
          auto st = s->GetStatus();
          out.push_back({{v->plan->name, st.target_region}, field(st)});
        }
      }
      return out;
    };
  };
  using S = replicate::StreamStatus;
  m.AddGaugeCallback("lifeboat_replication_rpo_seconds",
                     "Age of the oldest change at the source not yet durable at the target (0: in sync)",
                     {"volume", "target"}, per_stream([](const S& s) { return s.rpo_seconds; }));
  m.AddGaugeCallback("lifeboat_replication_pending_files", "Changed entries not yet sent", {"volume", "target"},
                     per_stream([](const S& s) { return static_cast<double>(s.pending_files); }));
  m.AddGaugeCallback("lifeboat_replication_pending_bytes", "File bytes of the current pass not yet sent",
                     {"volume", "target"}, per_stream([](const S& s) { return static_cast<double>(s.pending_bytes); }));
  m.AddGaugeCallback("lifeboat_replication_in_sync", "1 when connected with nothing pending", {"volume", "target"},
                     per_stream([](const S& s) { return s.in_sync ? 1.0 : 0.0; }));
  m.AddGaugeCallback("lifeboat_replication_throughput_bytes_per_second", "File bytes per second of the current or last pass",
                     {"volume", "target"}, per_stream([](const S& s) { return s.rate_bytes_per_second; }));
  m.AddGaugeCallback("lifeboat_replication_last_verify_differences",
                     "Differences the last periodic verification found and repaired (-1: none yet)",
                     {"volume", "target"},
                     per_stream([](const S& s) { return static_cast<double>(s.last_verify_differences); }));
  m.AddCounterCallback("lifeboat_replication_sent_bytes_total", "Bytes sent on replication sessions",
                       {"volume", "target"}, per_stream([](const S& s) { return static_cast<double>(s.bytes_sent); }));
  m.AddCounterCallback("lifeboat_replication_peer_bytes_total",
                       "Bytes received from the target on replication sessions (listings, chunk lists, acks)",
                       {"volume", "target"}, per_stream([](const S& s) { return static_cast<double>(s.bytes_received); }));
  m.AddCounterCallback("lifeboat_replication_sent_files_total", "Files sent (whole or as a delta)", {"volume", "target"},
                       per_stream([](const S& s) { return static_cast<double>(s.files_sent); }));
  auto per_receiver = [this](auto field) {
    return [this, field] {
      Samples out;
      for (auto& v : volumes_) {
        std::lock_guard lock(v->mu);
        if (v->receiver) out.push_back({{v->plan->name}, static_cast<double>(field(v->receiver->stats()))});
      }
      return out;
    };
  };
  using R = replicate::ReceiverStats;
  m.AddCounterCallback("lifeboat_replication_received_bytes_total", "File bytes received as data", {"volume"},
                       per_receiver([](R& r) { return r.bytes_written.load(); }));
  m.AddCounterCallback("lifeboat_replication_reused_bytes_total",
                       "File bytes rebuilt from chunks already at the target", {"volume"},
                       per_receiver([](R& r) { return r.bytes_copied.load(); }));
  m.AddCounterCallback("lifeboat_replication_commits_total", "Group commits made durable at the target", {"volume"},
                       per_receiver([](R& r) { return r.commits.load(); }));
  m.AddCounterCallback("lifeboat_replication_connections_refused_total",
                       "Connections to the replication port closed at once (over the connection limits)", {"volume"},
                       per_receiver([](R& r) { return r.connections_refused.load(); }));
  m.AddCounterCallback("lifeboat_replication_handshakes_failed_total",
                       "Connections to the replication port that did not prove the key in time", {"volume"},
                       per_receiver([](R& r) { return r.handshakes_failed.load(); }));
  m.AddCounterCallback("lifeboat_replication_leftovers_removed_total",
                       "Temporary files an interrupted session had left, removed when the receiver started",
                       {"volume"}, per_receiver([](R& r) { return r.leftovers_removed.load(); }));
  m.AddCounterCallback("lifeboat_replication_accept_errors_total",
                       "accept() failures on the replication port (out of descriptors or memory), retried with backoff",
                       {"volume"}, per_receiver([](R& r) { return r.accept_errors.load(); }));
}

}  // namespace lifeboat::agent
