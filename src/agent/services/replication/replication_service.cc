#include "agent/services/replication/replication_service.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/auth.h"
#include "agent/capabilities.h"
#include "core/log.h"
#include "core/worker.h"
#include "orchestrate/fencing.h"
#include "orchestrate/primary.h"
#include "replicate/stream.h"
#include "state/keys.h"

namespace lifeboat::agent {
namespace {

using Json = nlohmann::ordered_json;

// What runs for one role: the streams of a source, or the receiver of a
// target. Built and halted without the volume's lock held (both can take
// seconds, and the receiver's admission check takes that lock).
struct Running {
  std::vector<std::unique_ptr<replicate::Stream>> streams;
  std::unique_ptr<replicate::Listener> listener;
  std::unique_ptr<replicate::Receiver> receiver;
  std::thread accept;

  void Halt() {
    for (auto& s : streams) s->Stop();
    streams.clear();
    if (listener) listener->Close();
    if (receiver) receiver->Stop();
    if (accept.joinable()) accept.join();
    receiver.reset();
    listener.reset();
  }
};

struct Volume {
  const plan::Volume* plan = nullptr;
  std::string path;
  std::optional<replicate::PskKey> key;
  std::string problem;  // why it does not replicate, when it does not

  mutable std::mutex mu;
  state::VolumeRole role;          // guarded by mu
  Running run;                     // guarded by mu; swapped whole
  bool held = false;               // guarded by mu: a source's streams stopped by HoldSending
  std::optional<RoleChange> change;  // guarded by mu: the last promote or reverse
  // The last verification asked through the API, guarded by mu.
  std::string verify_state = "never";  // never, running, done, failed
  Json verify_result;
  std::thread verify;
};

// A promote or reverse is queued or running; v.mu held.
bool Changing(const Volume& v) { return v.change && v.change->state == "running"; }

}  // namespace

namespace {

class ReplicationService final : public Service, public VolumeRoles {
 public:
  explicit ReplicationService(ServiceContext& ctx) : ctx_(ctx) {}
  ~ReplicationService() override { Stop(); }

  // nullptr-free: the caller drops a service with no volume.
  Status Init();
  bool empty() const { return volumes_.empty(); }

  std::string_view name() const override { return "replication"; }
  Status Start() override;
  void Stop() override;
  Json StatusJson() override {
    Json out = Json::array();
    for (auto& v : volumes_) out.push_back(VolumeJson(*v));
    return out;
  }

  // VolumeRoles
  std::vector<std::string> Volumes() const override {
    std::vector<std::string> out;
    for (const auto& v : volumes_) out.push_back(v->plan->name);
    return out;
  }
  std::optional<state::VolumeRole> RoleOf(std::string_view volume) const override {
    const Volume* v = Find(volume);
    if (v == nullptr) return std::nullopt;
    std::lock_guard lock(v->mu);
    return v->role;
  }
  std::optional<RoleChange> LastChange(std::string_view volume) const override {
    const Volume* v = Find(volume);
    if (v == nullptr) return std::nullopt;
    std::lock_guard lock(v->mu);
    return v->change;
  }
  std::vector<TargetSync> Sending(std::string_view volume) const override {
    const Volume* v = Find(volume);
    if (v == nullptr) return {};
    std::lock_guard lock(v->mu);
    std::vector<TargetSync> out;
    for (const auto& s : v->run.streams) {
      auto st = s->GetStatus();
      bool known = st.in_sync || st.state == "streaming" || st.state == "verifying";
      out.push_back({st.target_region, st.in_sync, st.rpo_seconds, st.pending_bytes, known});
    }
    return out;
  }
  Status Promote(std::string_view volume, uint64_t epoch, Done done) override;
  Status Fence(std::string_view volume, uint64_t epoch, Done done) override;
  void HoldSending(bool held) override;
  Status Reverse(std::string_view volume, const std::string& source, uint64_t epoch, Done done) override;

 private:
  Volume* Find(std::string_view name) const {
    for (const auto& v : volumes_) {
      if (v->plan->name == name) return v.get();
    }
    return nullptr;
  }
  Result<Running> Launch(Volume& v, const state::VolumeRole& role);
  // Checks and records a change of `v` to run on the worker; v.mu held.
  Status Admit(Volume& v, const std::string& action);
  // On the worker: halts what runs, saves the role `next` computes from the
  // current one, and launches the new role.
  Status Change(Volume& v, const std::function<state::VolumeRole(const state::VolumeRole&)>& next);
  void Finish(Volume& v, const Status& s, const Done& done);
  void Step(Volume& v, std::string step);  // v.mu held
  Json VolumeJson(Volume& v);
  net::HttpResponse Handle(const net::HttpRequest& req);
  net::HttpResponse HandleVerify(Volume& v, bool start);
  net::HttpResponse HandleReverse(Volume& v, const net::HttpRequest& req);
  void RegisterMetrics();

  ServiceContext& ctx_;
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::unique_ptr<Worker> worker_;  // promote, reverse and the sources' start
  metrics::Family<metrics::Histogram>* pass_seconds_ = nullptr;
};

Status ReplicationService::Init() {
  const auto& region = ctx_.region.name;
  // A source that a failover superseded while this agent was down must not
  // send even once: it starts fenced (the failover service reconciles the
  // rest: promote, follow).
  LB_ASSIGN_OR_RETURN(auto primary, orchestrate::CurrentPrimary(ctx_.store, ctx_.plan));
  LB_ASSIGN_OR_RETURN(auto last_run, state::keys::CurrentFailover().Get(ctx_.store));
  for (const auto& pv : ctx_.plan.volumes) {
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
    auto role_key = state::keys::VolumeRoleOf(ctx_.region.name, pv.name);
    LB_ASSIGN_OR_RETURN(auto saved, role_key.Get(ctx_.store));
    if (saved) {
      v->role = *saved;
      if (orchestrate::Reconcile(v->role, primary.record, last_run, region, true) == orchestrate::VolumeAction::kFence) {
        v->role.fenced = true;
        LB_RETURN_IF_ERROR(StatusOf(role_key.Put(ctx_.store, v->role)));
        LogWarn({{"volume", pv.name}, {"primary", primary.record.region}},
                "replication {}: fenced at start: epoch {} made {} primary while this agent was down", pv.name,
                primary.record.epoch, primary.record.region);
      }
    } else {  // first start: the plan's primary sends
      const plan::Region* primary = ctx_.plan.Primary();
      v->role.source = primary != nullptr && primary->name == region;
      v->role.source_region = v->role.source || primary == nullptr ? "" : primary->name;
      v->role.epoch = 1;
      LB_RETURN_IF_ERROR(role_key.Put(ctx_.store, v->role));
    }
    volumes_.push_back(std::move(v));
  }
  if (volumes_.empty()) return Ok();
  worker_ = std::make_unique<Worker>();
  ctx_.router.Add("/v1/replication", [this](const net::HttpRequest& r) { return Handle(r); });
  ctx_.caps.Provide<VolumeRoles>(this);
  RegisterMetrics();
  return Ok();
}

Status ReplicationService::Start() {
  for (auto& vp : volumes_) {
    Volume& v = *vp;
    if (!v.problem.empty()) {
      LogError({{"volume", v.plan->name}, {"error", v.problem}}, "replication {}: not replicating: {}", v.plan->name,
               v.problem);
      continue;
    }
    state::VolumeRole role = RoleOf(v.plan->name).value();
    if (role.fenced) {
      LogWarn({{"volume", v.plan->name}, {"epoch", std::to_string(role.epoch)}},
              "replication {}: fenced: a failover made another region primary after epoch {}; this region sends "
              "and receives nothing until a failback reverses it",
              v.plan->name, role.epoch);
      continue;
    }
    if (!role.source) {  // binds the port now, so a taken port stops the start
      LB_ASSIGN_OR_RETURN(Running run, Launch(v, role));
      std::lock_guard lock(v.mu);
      v.run = std::move(run);
      continue;
    }
    // A source watches its whole volume first: seconds for a large one.
    worker_->Post([this, &v, role] {
      auto run = Launch(v, role);
      if (!run) {
        LogError({{"volume", v.plan->name}, {"error", run.error().message()}}, "replication {}: cannot start sending: {}",
                 v.plan->name, run.error().message());
        std::lock_guard lock(v.mu);
        v.change = RoleChange{"start", "failed", "watching the volume", run.error().message(),
                              FormatUtc(ctx_.clock.Now()), FormatUtc(ctx_.clock.Now())};
        return;
      }
      std::lock_guard lock(v.mu);
      v.run = std::move(*run);
    });
  }
  return Ok();
}

void ReplicationService::Stop() {
  worker_.reset();  // finishes what was posted
  for (auto& v : volumes_) {
    Running run;
    {
      std::lock_guard lock(v->mu);
      run = std::move(v->run);
      v->run = Running{};
    }
    run.Halt();
    if (v->verify.joinable()) v->verify.join();
  }
}

Result<Running> ReplicationService::Launch(Volume& v, const state::VolumeRole& role) {
  const auto& here = ctx_.region;
  const auto& rep = v.plan->replication;
  Running run;
  if (role.fenced) return run;  // sends and receives nothing
  if (role.source) {
    for (const auto& [region, path] : v.plan->path) {
      if (region == here.name) continue;
      const plan::Region* r = ctx_.plan.FindRegion(region);
      replicate::StreamConfig c;
      c.link.volume = v.plan->name;
      c.link.root = v.path;
      c.link.region = here.name;
      c.link.epoch = role.epoch;
      c.link.target = ctx_.Dial(Address{r->agent.host, rep.port});
      c.link.key = *v.key;
      c.link.bandwidth = rep.bandwidth;
      c.target_region = region;
      c.coalesce = std::chrono::duration_cast<std::chrono::milliseconds>(rep.coalesce);
      c.verify_every = std::chrono::duration_cast<std::chrono::milliseconds>(rep.verify_every);
      if (!ctx_.data_dir.empty()) c.blocks_dir = ctx_.data_dir + "/replicate/" + v.plan->name + "/blocks-" + region;
      c.on_pass = [h = pass_seconds_, volume = v.plan->name, to = region](std::string_view kind, double seconds) {
        h->With({volume, to, std::string(kind)}).Observe(seconds);
      };
      auto s = replicate::Stream::Create(std::move(c));
      if (!s) {
        run.Halt();
        return s.error().Wrap("replication " + v.plan->name + ": watching " + v.path);
      }
      (*s)->Start();
      run.streams.push_back(std::move(*s));
    }
    spdlog::info("replication {}: source (epoch {}), sending {} to {} region(s)", v.plan->name, role.epoch, v.path,
                 run.streams.size());
    return run;
  }
  std::error_code ec;
  std::filesystem::create_directories(v.path, ec);
  if (ec) return InvalidArgument("replication " + v.plan->name + ": cannot create " + v.path + ": " + ec.message());
  LB_ASSIGN_OR_RETURN(run.listener, replicate::Listener::Listen(Address{here.agent.host, rep.port}));
  Volume* vp = &v;
  run.receiver = std::make_unique<replicate::Receiver>(replicate::Receiver::Config{
      v.plan->name, v.path, *v.key, [vp](const replicate::Hello& h) -> Status {
        std::lock_guard lock(vp->mu);
        return orchestrate::AdmitSender(vp->role, h.region, h.epoch);
      }});
  run.accept = std::thread([r = run.receiver.get(), l = run.listener.get()] { r->Run(*l); });
  spdlog::info("replication {}: target of {} (epoch {}), receiving into {} on port {}", v.plan->name,
               role.source_region, role.epoch, v.path, rep.port);
  return run;
}

Status ReplicationService::Admit(Volume& v, const std::string& action) {
  if (!v.problem.empty()) return FailedPrecondition(v.problem);
  if (Changing(v)) {
    return Aborted("a " + v.change->action + " of " + v.plan->name + " is running since " + v.change->started_at +
                   " (" + v.change->step + "); wait for it");
  }
  v.change = RoleChange{action, "running", "queued", "", FormatUtc(ctx_.clock.Now()), std::nullopt};
  return Ok();
}

void ReplicationService::Step(Volume& v, std::string step) {
  if (v.change) v.change->step = std::move(step);
}

Status ReplicationService::Promote(std::string_view volume, uint64_t epoch, Done done) {
  Volume* v = Find(volume);
  if (v == nullptr) return NotFound("this agent replicates no volume '" + std::string(volume) + "'");
  {
    std::lock_guard lock(v->mu);
    if (v->role.source && !v->role.fenced && !Changing(*v)) {  // a running change answers Aborted below
      return FailedPrecondition("region " + ctx_.region.name + " is already the source of " + v->plan->name);
    }
    if (epoch != 0 && epoch < v->role.epoch) {
      return FailedPrecondition("epoch " + std::to_string(epoch) + " is older than this region's " +
                                std::to_string(v->role.epoch) + " for " + v->plan->name);
    }
    LB_RETURN_IF_ERROR(Admit(*v, "promote"));
  }
  worker_->Post([this, v, epoch, done] {
    Status s = Change(*v, [epoch](const state::VolumeRole& old) {
      return state::VolumeRole{true, "", epoch != 0 ? epoch : old.epoch + 1, false};
    });
    if (s.ok()) {
      LogWarn({{"volume", v->plan->name}, {"region", ctx_.region.name}},
              "replication {}: promoted: this region is now the source (epoch {})", v->plan->name,
              RoleOf(v->plan->name)->epoch);
    }
    Finish(*v, s, done);
  });
  return Ok();
}

Status ReplicationService::Fence(std::string_view volume, uint64_t epoch, Done done) {
  Volume* v = Find(volume);
  if (v == nullptr) return NotFound("this agent replicates no volume '" + std::string(volume) + "'");
  {
    std::lock_guard lock(v->mu);
    if (!v->role.source || v->role.fenced) {
      return FailedPrecondition("region " + ctx_.region.name + " is not an active source of " + v->plan->name);
    }
    LB_RETURN_IF_ERROR(Admit(*v, "fence"));
  }
  worker_->Post([this, v, epoch, done] {
    Status s = Change(*v, [](const state::VolumeRole& old) { return state::VolumeRole{true, "", old.epoch, true}; });
    if (s.ok()) {
      LogWarn({{"volume", v->plan->name}, {"region", ctx_.region.name}, {"epoch", std::to_string(epoch)}},
              "replication {}: fenced: epoch {} made another region primary; this region stopped sending",
              v->plan->name, epoch);
    }
    Finish(*v, s, done);
  });
  return Ok();
}

void ReplicationService::HoldSending(bool held) {
  worker_->Post([this, held] {
    for (auto& vp : volumes_) {
      Volume& v = *vp;
      Running old;
      state::VolumeRole role;
      {
        std::lock_guard lock(v.mu);
        if (v.held == held) continue;
        v.held = held;
        if (!v.role.source || v.role.fenced) continue;  // sends nothing either way
        role = v.role;
        if (held) old = std::exchange(v.run, Running{});
      }
      if (held) {
        old.Halt();
        LogWarn({{"volume", v.plan->name}}, "replication {}: holding: this region sends nothing while it is fenced",
                v.plan->name);
        continue;
      }
      auto run = Launch(v, role);
      if (!run) {
        LogError({{"volume", v.plan->name}, {"error", run.error().message()}},
                 "replication {}: cannot start sending again: {}", v.plan->name, run.error().message());
        continue;
      }
      std::lock_guard lock(v.mu);
      v.run = std::move(*run);
    }
  });
}

Status ReplicationService::Reverse(std::string_view volume, const std::string& source, uint64_t epoch, Done done) {
  Volume* v = Find(volume);
  if (v == nullptr) return NotFound("this agent replicates no volume '" + std::string(volume) + "'");
  if (source == ctx_.region.name) return InvalidArgument("a region cannot follow itself");
  if (!v->plan->path.count(source)) {
    return NotFound("region '" + source + "' holds no copy of " + v->plan->name);
  }
  {
    std::lock_guard lock(v->mu);
    if (epoch < v->role.epoch) {
      return FailedPrecondition("epoch " + std::to_string(epoch) + " is older than this region's " +
                                std::to_string(v->role.epoch) + "; promote the new source first");
    }
    LB_RETURN_IF_ERROR(Admit(*v, "reverse"));
  }
  worker_->Post([this, v, source, epoch, done] {
    Status s = Change(*v, [&](const state::VolumeRole&) { return state::VolumeRole{false, source, epoch, false}; });
    if (s.ok()) {
      LogWarn({{"volume", v->plan->name}, {"region", ctx_.region.name}, {"source", source}},
              "replication {}: reversed: this region now follows {} (epoch {})", v->plan->name, source, epoch);
    }
    Finish(*v, s, done);
  });
  return Ok();
}

Status ReplicationService::Change(Volume& v, const std::function<state::VolumeRole(const state::VolumeRole&)>& next) {
  Running old_run;
  state::VolumeRole old_role, new_role;
  {
    std::lock_guard lock(v.mu);
    old_role = v.role;
    new_role = next(old_role);
    Step(v, old_role.source ? "stopping the streams to the targets" : "stopping the receiver");
    old_run = std::move(v.run);
    v.run = Running{};
  }
  old_run.Halt();
  auto role_key = state::keys::VolumeRoleOf(ctx_.region.name, v.plan->name);
  if (auto saved = role_key.Put(ctx_.store, new_role); !saved) {
    auto back = Launch(v, old_role);  // the old role goes on, as if nothing was asked
    std::lock_guard lock(v.mu);
    if (back) v.run = std::move(*back);
    return saved.error().Wrap("saving the new role of " + v.plan->name);
  }
  {
    std::lock_guard lock(v.mu);
    v.role = new_role;
    v.held = false;  // a hold (self-fence) applies to the role it stopped; the new one starts as asked
    Step(v, new_role.fenced   ? "fenced"
            : new_role.source ? "watching the volume and connecting to the targets"
                              : "listening for the new source");
  }
  LB_ASSIGN_OR_RETURN(Running run, Launch(v, new_role));
  std::lock_guard lock(v.mu);
  v.run = std::move(run);
  return Ok();
}

void ReplicationService::Finish(Volume& v, const Status& s, const Done& done) {
  {
    std::lock_guard lock(v.mu);
    v.change->state = s.ok() ? "done" : "failed";
    if (!s.ok()) {
      v.change->error = s.error().message();
      LogError({{"volume", v.plan->name}, {"error", s.error().message()}}, "replication {}: {} failed while {}: {}",
               v.plan->name, v.change->action, v.change->step,
                    s.error().message());
    }
    v.change->finished_at = FormatUtc(ctx_.clock.Now());
  }
  if (done) done(s);
}

Json ChangeJson(const RoleChange& c) {
  Json j = {{"action", c.action}, {"state", c.state}, {"step", c.step}, {"started_at", c.started_at}};
  j["finished_at"] = c.finished_at ? Json(*c.finished_at) : Json(nullptr);
  j["error"] = c.error.empty() ? Json(nullptr) : Json(c.error);
  return j;
}

Json ReplicationService::VolumeJson(Volume& v) {
  std::lock_guard lock(v.mu);
  Json j = {{"volume", v.plan->name},
            {"path", v.path},
            {"role", v.role.fenced ? "fenced" : v.role.source ? "source" : "target"},
            {"epoch", v.role.epoch}};
  if (!v.role.source) j["source"] = v.role.source_region;
  if (v.held) j["held"] = "this region lost the state store and fenced itself: it sends nothing until the store answers";
  if (!v.problem.empty()) j["problem"] = v.problem;
  if (v.role.fenced) {
    j["fenced"] = "a failover made another region primary after epoch " + std::to_string(v.role.epoch) +
                  "; this region sends and receives nothing until a failback reverses it";
  } else if (v.role.source) {
    Json targets = Json::array();
    for (auto& s : v.run.streams) targets.push_back(s->GetStatus().ToJson());
    j["targets"] = targets;
  } else if (v.run.receiver) {
    auto& st = v.run.receiver->stats();
    std::string from = v.run.receiver->connected_source();
    j["receiver"] = {{"port", v.run.listener ? v.run.listener->port() : 0},
                     {"ready", st.ready.load()},
                     {"connected", !from.empty()},
                     {"files", st.files.load()},
                     {"bytes_written", st.bytes_written.load()},
                     {"bytes_reused", st.bytes_copied.load()},
                     {"bytes_direct", st.bytes_direct.load()},
                     {"commits", st.commits.load()},
                     {"patches", st.patches.load()},
                     {"moves", st.moves.load()},
                     {"journals_recovered", st.journals_recovered.load()},
                     {"last_commit", st.last_commit_unix_ms.load() > 0
                                         ? Json(FormatUtc(Clock::TimePoint(std::chrono::milliseconds(st.last_commit_unix_ms.load()))))
                                         : Json()}};
  }
  j["change"] = v.change ? ChangeJson(*v.change) : Json(nullptr);
  j["verify"] = {{"state", v.verify_state}};
  if (!v.verify_result.is_null()) j["verify"]["result"] = v.verify_result;
  return j;
}

net::HttpResponse ReplicationService::Handle(const net::HttpRequest& req) {
  const std::string prefix = "/v1/replication";
  if (req.path == prefix || req.path == prefix + "/") {
    if (req.method != "GET") return JsonError(405, "use GET " + prefix);
    Json out = {{"region", ctx_.region.name}, {"volumes", StatusJson()}};
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
    if (auto denied = CheckToken(req, ctx_.token, "starting a verification")) return *denied;
    return HandleVerify(*v, true);
  }
  if (req.method != "POST" || (action != "promote" && action != "reverse")) {
    return JsonError(405, "use GET " + prefix + "/VOLUME, GET|POST .../verify, POST .../promote or .../reverse");
  }
  if (auto denied = CheckToken(req, ctx_.token, "replication changes")) return *denied;
  if (action == "reverse") return HandleReverse(*v, req);
  if (auto s = Promote(name, 0, {}); !s.ok()) return JsonError(s.error());
  return net::HttpResponse::Json(202, Json{{"volume", name}, {"action", "promote"}, {"state", "running"}}.dump() + "\n");
}

net::HttpResponse ReplicationService::HandleReverse(Volume& v, const net::HttpRequest& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("source") || !body["source"].is_string() ||
      !body.contains("epoch") || !body["epoch"].is_number_unsigned()) {
    return JsonError(400, "send a JSON body such as {\"source\": \"us-west\", \"epoch\": 2}");
  }
  if (auto s = Reverse(v.plan->name, body["source"].get<std::string>(), body["epoch"].get<uint64_t>(), {}); !s.ok()) {
    return JsonError(s.error());
  }
  return net::HttpResponse::Json(
      202, Json{{"volume", v.plan->name}, {"action", "reverse"}, {"state", "running"}}.dump() + "\n");
}

net::HttpResponse ReplicationService::HandleVerify(Volume& v, bool start) {
  std::unique_lock lock(v.mu);
  if (start) {
    if (!v.role.source) return JsonError(409, "verify runs at the volume's source; this region is a target");
    if (v.run.streams.empty()) return JsonError(409, "the volume has no target to verify");
    if (v.verify_state != "running") {
      if (v.verify.joinable()) {
        lock.unlock();
        v.verify.join();
        lock.lock();
      }
      v.verify_state = "running";
      v.verify_result = nullptr;
      std::vector<replicate::StreamConfig> targets;
      for (auto& s : v.run.streams) targets.push_back(s->config());
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
          t["duration_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
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

void ReplicationService::RegisterMetrics() {
  auto& m = ctx_.metrics;
  using Samples = std::vector<std::pair<metrics::Labels, double>>;
  auto per_stream = [this](auto field) {
    return [this, field] {
      Samples out;
      for (auto& v : volumes_) {
        std::lock_guard lock(v->mu);
        for (auto& s : v->run.streams) {
          auto st = s->GetStatus();
          out.push_back({{v->plan->name, st.target_region}, field(st)});
        }
      }
      return out;
    };
  };
  using S = replicate::StreamStatus;
  pass_seconds_ = &m.AddHistogram("lifeboat_replication_pass_duration_seconds",
                                  "Durations of replication passes by kind: full (a session's first comparison), "
                                  "changes (a batch of watched changes), verify",
                                  {"volume", "target", "kind"}, metrics::DurationBuckets());
  // Every volume, also one that cannot replicate (no key): an alert on it can fire.
  m.AddGaugeCallback("lifeboat_replication_replicating",
                     "1 when this region's copy of the volume sends or receives; 0 when it cannot (see status)",
                     {"volume", "role"}, [this] {
                       Samples out;
                       for (auto& v : volumes_) {
                         std::lock_guard lock(v->mu);
                         bool running = !v->run.streams.empty() || v->run.receiver != nullptr;
                         out.push_back({{v->plan->name, v->role.source ? "source" : "target"}, running ? 1.0 : 0.0});
                       }
                       return out;
                     });
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
        if (v->run.receiver) out.push_back({{v->plan->name}, static_cast<double>(field(v->run.receiver->stats()))});
      }
      return out;
    };
  };
  using R = replicate::ReceiverStats;
  m.AddCounterCallback("lifeboat_replication_received_bytes_total", "File bytes received as data", {"volume"},
                       per_receiver([](R& r) { return r.bytes_written.load(); }));
  m.AddCounterCallback("lifeboat_replication_reused_bytes_total",
                       "File bytes rebuilt from chunks already at the target or repeated within a file", {"volume"},
                       per_receiver([](R& r) { return r.bytes_copied.load(); }));
  m.AddCounterCallback("lifeboat_replication_direct_bytes_total",
                       "File bytes of large new files written past the target's page cache", {"volume"},
                       per_receiver([](R& r) { return r.bytes_direct.load(); }));
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
  m.AddCounterCallback("lifeboat_replication_patches_total",
                       "Large files updated in place through a journal (the changed blocks only)", {"volume"},
                       per_receiver([](R& r) { return r.patches.load(); }));
  m.AddCounterCallback("lifeboat_replication_moves_total",
                       "Large files rebuilt from blocks of their old version found where they were or shifted "
                       "(an insertion or deletion)",
                       {"volume"}, per_receiver([](R& r) { return r.moves.load(); }));
  m.AddCounterCallback("lifeboat_replication_journals_recovered_total",
                       "Sealed journals of in-place updates an interrupted receiver left, applied when it started",
                       {"volume"}, per_receiver([](R& r) { return r.journals_recovered.load(); }));
  m.AddCounterCallback("lifeboat_replication_accept_errors_total",
                       "accept() failures on the replication port (out of descriptors or memory), retried with backoff",
                       {"volume"}, per_receiver([](R& r) { return r.accept_errors.load(); }));
}

}  // namespace

Result<std::unique_ptr<Service>> MakeReplicationService(ServiceContext& ctx) {
  auto s = std::make_unique<ReplicationService>(ctx);
  LB_RETURN_IF_ERROR(s->Init());
  if (s->empty()) return std::unique_ptr<Service>();
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace lifeboat::agent
