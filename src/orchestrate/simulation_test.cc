// A deterministic simulation of the failover engine: four regions' agents
// (east primary, west and north standbys, a witness) run the engine's real
// parts (Detector, CurrentPrimary/AdvanceEpoch, Runbook, Reconcile,
// AdmitSender) against one in-memory store (state::SimStore) on a simulated
// clock, with seeded random faults: agent crashes and restarts, application
// outages, partitions between any two regions and between a region and the
// store, clock jumps (a long pause of every agent), and slow answers (a
// tenth of an agent's ticks get the store's answers 200-800 ms late: it acts
// on what it read then, while the others go on). One schedule is one
// seed; a failing seed is printed with the events that led to it and
// replays alone with LIFEBOAT_SIM_SEED=N (LIFEBOAT_SIM_SCHEDULES=N runs more).
//
// Checked after every event:
//   1. never two regions primary in one epoch (an active source of a volume
//      at epoch E, or the store's record of E, names one region);
//   2. a fenced copy never accepts a replication write, and no copy accepts
//      one from an older epoch than its own or from a region it does not
//      follow;
//   3. no failover without quorum: every automatic run begins when at least
//      failover.quorum views of the epoch, each from a live lease, see the
//      primary down;
// and at the end of each schedule, after every fault is healed and the
// agents have run on: 4. every started run has ended (done or failed), and
// the primary region's copy is the only active source.
//
// What this simulation leaves out (covered by the agent's own tests and the
// integration tests): threads, the health monitor's fall/rise (a probe here
// is the ground truth of reachability), DNS and routing controls, and
// delays of replication frames (a receiver admits a session at its start and
// ends it on a role change; here every delivery is admitted afresh).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "orchestrate/detector.h"
#include "orchestrate/fencing.h"
#include "orchestrate/primary.h"
#include "orchestrate/runbook.h"
#include "plan/load.h"
#include "state/keys.h"
#include "state/store_testing.h"

namespace lifeboat::orchestrate {
namespace {

using namespace std::chrono_literals;

constexpr auto kTick = 200ms;
const std::vector<std::string> kRegions = {"east", "west", "north", "witness"};

plan::Plan SimPlan() {
  auto r = plan::LoadPlanText(R"(
name: sim
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  north: { role: standby, agent: 127.0.0.1:3 }
  witness: { role: witness, agent: 127.0.0.1:4 }
checks:
  web: { type: tcp }
endpoints:
  web-east: { region: east, address: 127.0.0.1:9, check: web }
  web-west: { region: west, address: 127.0.0.1:9, check: web }
  web-north: { region: north, address: 127.0.0.1:9, check: web }
failover: { mode: automatic, grace: 1s, lease: 4s, steps: [fence, promote, verify] }
)", "sim.yaml");
  EXPECT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  return *r.plan;
}

class Simulation;

// One region's agent: what the failover service does each tick, with the
// same real parts, on the simulated clock.
struct Agent {
  std::string name;
  bool serves = true;
  bool alive = true;     // the agent process
  bool app_up = true;    // the region's application (its endpoint)
  std::unique_ptr<state::CuttableStore> store;
  std::unique_ptr<Detector> detector;
  state::LeaseId lease = 0;
  Duration renewed{}, last_store_ok{-1};
  std::optional<state::PrimaryRecord> primary_seen;
  state::VolumeRole role;  // this region's copy of the volume, as saved
  bool held = false;       // self-fenced: sends nothing
  bool has_copy = true;
  std::string published;  // the view last written, as the service compares it
  // What the agent read at the start of a tick whose answers are slow to
  // arrive (a delayed message): it acts on them at `due`, blocked meanwhile.
  struct Read {
    state::PrimaryRecord primary;
    std::vector<state::KeyValue> views;
    std::optional<state::FailoverRun> run;
    Duration at{}, due{};  // when it was read, and when the answers arrive
  };
  std::optional<Read> slow;
};

class Simulation {
 public:
  Simulation(uint64_t seed, const plan::Plan& plan) : rng_(seed), plan_(plan) {
    store_ = std::make_unique<state::SimStore>([this] { return now_; });
    for (const auto& name : kRegions) {
      auto a = std::make_unique<Agent>();
      a->name = name;
      a->serves = name != "witness";
      a->has_copy = a->serves;
      a->store = std::make_unique<state::CuttableStore>(*store_);
      a->detector = std::make_unique<Detector>(plan_, name);
      a->role.source = name == "east";
      a->role.source_region = a->role.source ? "" : "east";
      agents_[name] = std::move(a);
    }
    for (auto& [name, a] : agents_) {
      if (a->has_copy) (void)state::keys::VolumeRoleOf(name, "data").Put(*store_, a->role);
    }
  }

  // Runs `ticks` ticks with random faults, then heals everything and runs
  // `settle` more. Returns the first broken rule, if any: the schedule stops
  // at the end of the tick that broke it.
  std::optional<std::string> Run(int ticks, int settle) {
    for (int t = 0; t < ticks && !violation_; ++t) {
      MaybeFault();
      Tick();
    }
    if (violation_) return violation_;
    Heal();
    for (int t = 0; t < settle && !violation_; ++t) Tick();
    if (!violation_) CheckEnd();
    return violation_;
  }

  const std::vector<std::string>& events() const { return events_; }

 private:
  void Note(const std::string& what) {
    std::ostringstream s;
    s << "t=" << std::chrono::duration_cast<std::chrono::milliseconds>(now_).count() << "ms " << what;
    events_.push_back(s.str());
  }
  // Records the first broken rule (later ones follow from it).
  void Fail(const std::string& what) {
    if (!violation_) violation_ = what;
  }

  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  Agent& Pick() { return *agents_[kRegions[std::uniform_int_distribution<size_t>(0, kRegions.size() - 1)(rng_)]]; }

  void MaybeFault() {
    if (Chance(0.015)) {  // the primary region goes dark: its agent and its application
      auto p = CurrentPrimary(*store_, plan_);
      if (p.ok()) {
        Agent& a = *agents_[p->record.region];
        a.alive = false;
        a.app_up = false;
        Note(a.name + " (primary) goes dark");
      }
    }
    if (Chance(0.03)) {  // an agent crashes, or comes back
      Agent& a = Pick();
      if (a.alive) {
        a.alive = false;
        Note(a.name + "'s agent crashes");
      } else {
        Restart(a);
      }
    }
    if (Chance(0.04)) {  // a region's application fails, or recovers
      Agent& a = Pick();
      a.app_up = !a.app_up;
      Note(a.name + "'s application " + (a.app_up ? "recovers" : "fails"));
    }
    if (Chance(0.03)) {  // a region loses the store, or gets it back
      Agent& a = Pick();
      bool cut = !cut_from_store_.count(a.name);
      if (cut) {
        cut_from_store_.insert(a.name);
      } else {
        cut_from_store_.erase(a.name);
      }
      a.store->Cut(cut);
      Note(a.name + (cut ? " is cut off from the store" : " reaches the store again"));
    }
    if (Chance(0.04)) {  // a link between two regions breaks, or heals
      Agent& a = Pick();
      Agent& b = Pick();
      if (&a != &b) {
        auto link = std::minmax(a.name, b.name);
        bool cut = !cut_links_.count(link);
        if (cut) {
          cut_links_.insert(link);
        } else {
          cut_links_.erase(link);
        }
        Note("link " + link.first + "-" + link.second + (cut ? " cut" : " healed"));
      }
    }
    if (Chance(0.005)) {  // every process pauses (a clock jump): leases run out meanwhile
      auto jump = std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 5000)(rng_));
      now_ += jump;
      Note("the clock jumps " + std::to_string(jump.count()) + "ms");
    }
  }

  void Restart(Agent& a) {
    a.alive = true;
    a.slow.reset();
    a.lease = 0;
    a.held = false;
    a.primary_seen.reset();
    a.last_store_ok = Duration(-1);
    a.detector = std::make_unique<Detector>(plan_, a.name);
    // The role survives in the store; an agent that cannot read it keeps the
    // one it had (the real agent does not start without the store).
    if (a.has_copy) {
      auto saved = state::keys::VolumeRoleOf(a.name, "data").Get(*store_);
      if (saved.ok() && *saved) a.role = **saved;
    }
    Note(a.name + "'s agent restarts");
  }

  void Heal() {
    for (auto& [name, a] : agents_) {
      if (!a->alive) Restart(*a);
      a->app_up = true;
      a->store->Cut(false);
    }
    cut_from_store_.clear();
    cut_links_.clear();
    Note("every fault healed");
  }

  bool Linked(const std::string& a, const std::string& b) const {
    return a == b || !cut_links_.count(std::minmax(a, b));
  }
  // Ground truth of a probe: the endpoint's application runs and the link holds.
  bool Healthy(const std::string& observer, const std::string& endpoint) const {
    const plan::Endpoint* e = plan_.FindEndpoint(endpoint);
    return agents_.at(e->region)->app_up && Linked(observer, e->region);
  }

  void Tick() {
    now_ += kTick;
    std::vector<Agent*> order;
    for (auto& [_, a] : agents_) {
      if (a->alive) order.push_back(a.get());
    }
    std::shuffle(order.begin(), order.end(), rng_);
    for (Agent* a : order) {
      if (a->slow) {  // blocked on a slow answer until it arrives
        if (now_ < a->slow->due) continue;
        Agent::Read read = std::move(*a->slow);
        a->slow.reset();
        Note(a->name + " gets the answers it asked for " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now_ - read.at).count()) + "ms ago");
        Act(*a, read);
      } else {
        AgentTick(*a);
      }
      CheckNow();
    }
    Replicate();
    CheckNow();
  }

  void SaveRole(Agent& a) {
    // The real service saves first and keeps the old role when it cannot.
    if (state::keys::VolumeRoleOf(a.name, "data").Put(*a.store, a.role).ok()) return;
    auto saved = state::keys::VolumeRoleOf(a.name, "data").Get(*store_);
    if (saved.ok() && *saved) a.role = **saved;
  }

  void AgentTick(Agent& a) {
    const Duration lease_ttl = plan_.failover.lease;
    state::Store& store = *a.store;
    auto store_trouble = [&] {
      // A primary without the store for a whole lease fences itself.
      if (!a.held && a.primary_seen && a.primary_seen->region == a.name && a.last_store_ok >= Duration::zero() &&
          now_ - a.last_store_ok >= lease_ttl) {
        a.held = true;
        Note(a.name + " fences itself (no store for a lease)");
      }
    };
    if (a.lease == 0 || now_ - a.renewed >= lease_ttl / 3) {
      Status kept = a.lease == 0 ? Status(NotFound("none")) : store.KeepAlive(a.lease);
      if (!kept.ok() && kept.error().code() == Code::kNotFound) {
        auto g = store.Grant(lease_ttl);
        if (!g.ok()) return store_trouble();
        a.lease = *g;
      } else if (!kept.ok()) {
        return store_trouble();
      }
      a.renewed = now_;
    }
    auto primary = CurrentPrimary(store, plan_);
    if (!primary.ok()) return store_trouble();
    auto range = store.List(state::keys::kViewsPrefix);
    if (!range.ok()) return store_trouble();
    auto run = state::keys::CurrentFailover().Get(store);
    if (!run.ok()) return store_trouble();
    Agent::Read read{primary->record, std::move(range->kvs), std::move(*run), now_, now_};
    if (Chance(slow_reads_)) {  // the answers arrive late: other agents act meanwhile
      read.due = now_ + kTick * std::uniform_int_distribution<int>(1, 4)(rng_);
      a.slow = std::move(read);
      ++slow_answers_;
      return;
    }
    Act(a, read);
  }

  // The rest of a tick, on what the agent read (now, or earlier when the
  // answers were slow): its writes land now.
  void Act(Agent& a, const Agent::Read& read) {
    state::Store& store = *a.store;
    a.last_store_ok = now_;
    a.primary_seen = read.primary;
    if (a.held) {
      a.held = false;
      Note(a.name + " reaches the store again and stops holding");
    }
    const state::PrimaryRecord& p = read.primary;
    const std::optional<state::FailoverRun>* run = &read.run;

    std::vector<state::ObserverView> views;
    for (const auto& kv : read.views) {
      // Decoded once per revision of the key (the codec is most of the cost).
      auto& [rev, decoded, ok] = view_cache_[kv.key];
      if (rev != kv.mod_revision) {
        rev = kv.mod_revision;
        ok = state::Decode(kv.value, decoded);
      }
      if (ok) views.push_back(decoded);
    }
    bool heartbeat = std::any_of(views.begin(), views.end(), [&](const auto& v) { return v.observer == p.region; });
    auto mine = a.detector->Observe(p, [&](const std::string& e) { return Healthy(a.name, e); }, heartbeat,
                                    Steady(now_));
    if (a.has_copy) mine.copies.push_back({"data", a.role});
    // Written when it changed, as the service does (down_for_ms aside).
    state::ObserverView key_fields = mine;
    key_fields.down_for_ms = 0;
    std::string sig = state::Encode(key_fields);
    if (sig != a.published || !heartbeat_of(a.name, read.views)) {
      if (store.Put(state::keys::ViewOf(a.name).name(), sig, state::Expect::Any(), a.lease).ok()) a.published = sig;
    }
    std::erase_if(views, [&](const auto& v) { return v.observer == a.name; });
    views.push_back(mine);

    if (a.has_copy) {
      auto action = Reconcile(a.role, p, *run, a.name, true);
      if (action != VolumeAction::kNone) {
        state::VolumeRole before = a.role;
        if (action == VolumeAction::kPromote) a.role = {true, "", p.epoch, false};
        if (action == VolumeAction::kFence) a.role.fenced = true;
        if (action == VolumeAction::kFollow) a.role = {false, p.region, p.epoch, false};
        SaveRole(a);
        if (!(a.role.source == before.source && a.role.fenced == before.fenced && a.role.epoch == before.epoch)) {
          Note(a.name + ": " + Name(action) + " at epoch " + std::to_string(p.epoch));
        }
      }
    }

    if (!a.serves) return;
    if (*run && (*run)->state == "failed") failed_at_.try_emplace((*run)->id, now_);
    Steps steps(*this, store);
    Runbook rb(store, steps, {a.name});
    if (*run && (*run)->state == "running") {
      auto stepped = rb.Step(a.lease);
      if (stepped.ok()) Note(a.name + " drives the run to " + (*run)->to + ": " + Summary(*stepped));
      return;
    }
    auto verdict = a.detector->Decide(p, views);
    if (!verdict.failover || verdict.target != a.name) return;
    if (*run && (*run)->state == "failed" && now_ - failed_at_[(*run)->id] < 10s) return;
    CheckQuorum(p, verdict, read.views);
    auto begun = rb.Begin(p.region, a.name, p.epoch + 1, false, plan_.failover.steps, a.lease);
    if (!begun.ok()) return;
    Note(a.name + " begins a failover from " + p.region + " (epoch " + std::to_string(p.epoch + 1) + "): " +
         verdict.why);
    ++runs_begun_;
    if (read.at != now_) ++stale_begins_;
  }

  static std::string Summary(const state::FailoverRun& run) {
    std::string s = run.state;
    for (const auto& st : run.steps) s += " " + st.name + "=" + st.state;
    return s;
  }

  // The built-in steps, as the agent's failover service runs them, through
  // the driving agent's view of the store, without waiting (a step not
  // ready fails its attempt; the driver steps again next tick).
  struct Steps : StepRunner {
    Steps(Simulation& sim, state::Store& store) : sim(sim), store(store) {}
    Result<std::string> RunStep(const state::StepRecord& step, const state::FailoverRun& run) override {
      return sim.RunStep(store, step, run);
    }
    Simulation& sim;
    state::Store& store;
  };
  Result<std::string> RunStep(state::Store& store, const state::StepRecord& step, const state::FailoverRun& run) {
    if (step.name == "fence") {
      LB_ASSIGN_OR_RETURN(auto p, CurrentPrimary(store, plan_));
      if (p.record.epoch < run.epoch) {
        if (p.record.epoch + 1 != run.epoch || p.record.region != run.from) {
          return FailedPrecondition("the primary moved meanwhile");
        }
        LB_ASSIGN_OR_RETURN(p, AdvanceEpoch(store, plan_, p, run.to, run.owner));
        Note("epoch " + std::to_string(run.epoch) + ": " + run.to + " is primary");
      } else if (p.record.epoch > run.epoch || p.record.region != run.to) {
        return FailedPrecondition("superseded");
      }
      return std::string("fenced");
    }
    if (step.name == "promote") {
      LB_ASSIGN_OR_RETURN(auto role, state::keys::VolumeRoleOf(run.to, "data").Get(store));
      if (role && role->source && !role->fenced && role->epoch >= run.epoch) return std::string("promoted");
      return Unavailable(run.to + " has not promoted yet");
    }
    return std::string("ok");
  }

  // Every active source sends to every other copy it can reach; each copy
  // admits or refuses by the real rule.
  void Replicate() {
    for (auto& [from, src] : agents_) {
      if (!src->alive || !src->has_copy || !src->role.source || src->role.fenced || src->held) continue;
      for (auto& [to, dst] : agents_) {
        if (to == from || !dst->alive || !dst->has_copy || !Linked(from, to)) continue;
        Status admitted = AdmitSender(dst->role, from, src->role.epoch);
        if (!admitted.ok()) continue;
        if (dst->role.fenced) Fail("fenced " + to + " accepted a write from " + from);
        if (dst->role.source) Fail("source " + to + " accepted a write from " + from);
        if (src->role.epoch < dst->role.epoch) {
          Fail(to + " (epoch " + std::to_string(dst->role.epoch) + ") accepted a write from " + from + " at epoch " +
               std::to_string(src->role.epoch));
        }
      }
    }
  }

  // Whether `region`'s view is in `kvs` (it vanishes with its lease).
  static bool heartbeat_of(const std::string& region, const std::vector<state::KeyValue>& kvs) {
    std::string key = state::keys::ViewOf(region).name();
    return std::any_of(kvs.begin(), kvs.end(), [&](const auto& kv) { return kv.key == key; });
  }

  // 1: one region per epoch, in the store's history and among active sources.
  void CheckNow() {
    auto kv = store_->Get(state::keys::Primary().name());
    int64_t rev = kv.ok() && *kv ? (*kv)->mod_revision : 0;
    auto p = rev != checked_primary_rev_ ? CurrentPrimary(*store_, plan_) : Result<Primary>(Unavailable("unchanged"));
    checked_primary_rev_ = rev;
    if (p.ok()) {
      auto [it, fresh] = primary_of_epoch_.emplace(p->record.epoch, p->record.region);
      if (!fresh && it->second != p->record.region) {
        Fail("epoch " + std::to_string(p->record.epoch) + " names " + it->second + " and then " + p->record.region);
      }
    }
    for (auto& [name, a] : agents_) {
      if (!a->has_copy || !a->role.source || a->role.fenced) continue;
      auto [it, fresh] = source_of_epoch_.emplace(a->role.epoch, name);
      if (!fresh && it->second != name) {
        // Two active sources in one epoch: split brain, unless one of them
        // no longer sends (crashed agents keep their role until restarted).
        Fail("two regions are sources in epoch " + std::to_string(a->role.epoch) + ": " + it->second + " and " + name);
      }
      auto primary = primary_of_epoch_.find(a->role.epoch);
      if (a->role.epoch > 1 && primary != primary_of_epoch_.end() && primary->second != name) {
        Fail(name + " is a source in epoch " + std::to_string(a->role.epoch) + ", whose primary is " + primary->second);
      }
    }
  }

  // 3: a run begins only on a quorum of live views that see the primary down:
  // views that were in the store, under their leases, when the deciding
  // agent read them (its answers may have been slow to arrive).
  void CheckQuorum(const state::PrimaryRecord& p, const Verdict& verdict, const std::vector<state::KeyValue>& read) {
    int down = 0;
    for (const auto& kv : read) {
      state::ObserverView v;
      if (state::Decode(kv.value, v) && v.epoch == p.epoch && v.primary == p.region && v.primary_down) ++down;
    }
    // The deciding agent's own fresh view may not be stored yet: count it.
    if (verdict.votes < plan_.failover.quorum || down + 1 < plan_.failover.quorum) {
      Fail("a failover began with " + std::to_string(verdict.votes) + " votes (" + std::to_string(down) +
           " stored), quorum " + std::to_string(plan_.failover.quorum));
    }
  }

  // 4: after healing, every run has ended and the primary alone sends.
  void CheckEnd() {
    auto run = state::keys::CurrentFailover().Get(*store_);
    if (run.ok() && *run && (*run)->state == "running") Fail("a run is still running after the faults healed");
    auto p = CurrentPrimary(*store_, plan_);
    if (!p.ok()) return Fail("no primary record");
    for (auto& [name, a] : agents_) {
      if (!a->has_copy) continue;
      bool active = a->role.source && !a->role.fenced && !a->held;
      if (name == p->record.region && !active && a->role.epoch <= p->record.epoch) {
        // The primary's copy may be stale (fenced) only if nothing was left to promote it: never here.
        Fail("the primary " + name + " does not send after the faults healed (" +
             std::string(a->role.fenced ? "fenced" : a->role.source ? "held" : "target") + ")");
      }
      if (name != p->record.region && active) Fail(name + " still sends, but " + p->record.region + " is primary");
    }
  }

 public:
  int runs_begun() const { return runs_begun_; }
  int slow_answers() const { return slow_answers_; }
  int stale_begins() const { return stale_begins_; }
  int epochs() const { return static_cast<int>(primary_of_epoch_.size()); }

 private:
  std::mt19937_64 rng_;
  const plan::Plan& plan_;
  Duration now_{};
  std::unique_ptr<state::SimStore> store_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
  std::set<std::string> cut_from_store_;
  std::set<std::pair<std::string, std::string>> cut_links_;
  std::map<uint64_t, std::string> primary_of_epoch_, source_of_epoch_;
  std::map<std::string, Duration> failed_at_;
  std::vector<std::string> events_;
  int runs_begun_ = 0;
  int slow_answers_ = 0, stale_begins_ = 0;
  int64_t checked_primary_rev_ = -1;
  // The share of agent ticks whose store answers arrive 1 to 4 ticks late.
  double slow_reads_ = 0.1;
  std::optional<std::string> violation_;
  std::map<std::string, std::tuple<int64_t, state::ObserverView, bool>> view_cache_;
};

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(Simulation, NoSplitBrainNoFailoverWithoutQuorumEveryRunEnds) {
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  plan::Plan plan = SimPlan();
  uint64_t only = EnvNumber("LIFEBOAT_SIM_SEED", 0);
  uint64_t schedules = only ? 1 : EnvNumber("LIFEBOAT_SIM_SCHEDULES", 2000);
  int failovers = 0, epochs = 0, slow = 0, stale_begins = 0;
  for (uint64_t i = 0; i < schedules; ++i) {
    uint64_t seed = only ? only : i + 1;
    Simulation sim(seed, plan);
    if (auto violation = sim.Run(150, 150)) {  // 30 s with faults, 30 s healed
      std::string trail;
      const auto& ev = sim.events();
      for (size_t k = ev.size() > 40 ? ev.size() - 40 : 0; k < ev.size(); ++k) trail += "  " + ev[k] + "\n";
      spdlog::set_level(level);
      FAIL() << "seed " << seed << ": " << *violation << "\nlast events:\n"
             << trail << "replay: LIFEBOAT_SIM_SEED=" << seed << " " << ::testing::internal::GetArgvs()[0]
             << " --gtest_filter=Simulation.*";
    }
    failovers += sim.runs_begun();
    slow += sim.slow_answers();
    stale_begins += sim.stale_begins();
    epochs += sim.epochs() - 1;
  }
  spdlog::set_level(level);
  // The faults must actually cause failovers, or the test proves nothing.
  EXPECT_GT(failovers, static_cast<int>(schedules) / 10) << "too few failovers to mean anything";
  std::cout << schedules << " schedules: " << failovers << " failovers begun (" << stale_begins
            << " on answers that came late), " << epochs << " epochs moved, " << slow << " slow answers\n";
}

}  // namespace
}  // namespace lifeboat::orchestrate
