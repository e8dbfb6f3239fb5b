// The plan: what every agent reads. These structs are the normalized form,
// with every default filled in; plan/load.h builds them from YAML and
// docs/operations.md documents every key. Plans are immutable once loaded and
// safe to share between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/address.h"
#include "core/units.h"

namespace lifeboat::plan {

enum class Pattern { kBackupRestore, kPilotLight, kWarmStandby, kActiveActive };
enum class Role { kPrimary, kStandby, kWitness };
enum class CheckType { kHttp, kHttps, kTcp, kPostgres, kCalculated };
enum class RecordPolicy { kSimple, kFailover, kWeighted, kMultivalue };
enum class LocationType { kFilesystem, kS3 };
enum class Access { kReadWrite, kReadOnly };
enum class S3Addressing { kAuto, kPath, kVirtual };
enum class FailoverMode { kAutomatic, kManual };
enum class ReplicationMode { kContinuous, kOff };
enum class ListenerProtocol { kTcp, kUdp };
enum class ProxyPolicy { kFailover, kWeighted, kNearest };
enum class DbMode { kAsync, kSync };
enum class StandbyDown { kBlock, kDegrade };

const char* Name(Pattern p);
const char* Name(Role r);
const char* Name(CheckType t);
const char* Name(RecordPolicy p);
const char* Name(LocationType t);
const char* Name(Access a);
const char* Name(S3Addressing a);
const char* Name(FailoverMode m);
const char* Name(ReplicationMode m);
const char* Name(ListenerProtocol p);
const char* Name(ProxyPolicy p);
const char* Name(DbMode m);
const char* Name(StandbyDown s);

struct Objectives {
  std::optional<Duration> rto;
  std::optional<Duration> rpo;
};

struct Region {
  std::string name;
  Role role = Role::kStandby;
  Address agent;
  bool serves() const { return role != Role::kWitness; }
};

struct StatusRange {
  int lo = 200, hi = 299;
};

struct Check {
  std::string name;
  CheckType type = CheckType::kHttp;
  std::string path = "/";                // http(s)
  std::string host;                      // Host header and TLS SNI; empty: the endpoint's host
  StatusRange expect_status;             // http(s)
  std::string expect_body;               // substring of the first 5120 bytes; empty: any
  bool tls_verify = true;                // https
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(2);
  int fall = 3;
  int rise = 2;
  bool invert = false;
  std::vector<std::string> children;     // calculated: endpoint names
  int min_healthy = 0;                   // calculated: 0 means all children
  // postgres: the plan database whose user, dbname and password log in
  // (at the endpoint's address), and the role the server must have:
  // "any" (it answers a query), "primary" (writable, not fenced), "standby".
  std::string database;
  std::string role = "any";
  // How many regions' views must see an endpoint healthy for the DNS
  // servers to count it healthy; 0: a majority of the regions with a view.
  int vantage_quorum = 0;
};

struct Endpoint {
  std::string name;
  std::string region;
  Address address;
  std::string check;  // empty: always healthy
};

struct WeightedTarget {
  std::string endpoint;
  int weight = 1;
};

struct Record {
  std::string name;  // absolute, lower case, with the trailing dot
  std::string type;  // A, AAAA, CNAME, TXT, MX, SRV, CAA
  Duration ttl = std::chrono::seconds(30);
  RecordPolicy policy = RecordPolicy::kSimple;
  std::vector<std::string> values;       // simple: rdata in presentation form
  std::string primary, secondary;        // failover: endpoint names
  std::vector<WeightedTarget> targets;   // weighted (weights), multivalue (weight 1)
  bool fail_open = true;
};

struct Soa {
  std::string mname;  // default: the first NS
  std::string rname;  // default: hostmaster.<zone>
  uint32_t serial = 1;
  Duration refresh = std::chrono::hours(1);
  Duration retry = std::chrono::minutes(15);
  Duration expire = std::chrono::hours(24 * 14);
  Duration minimum = std::chrono::seconds(30);  // negative-caching TTL
  Duration ttl = std::chrono::hours(1);
};

struct Dns {
  std::string zone;  // absolute, lower case, with the trailing dot
  std::vector<Address> listen;
  Soa soa;
  std::vector<std::string> ns;
  std::vector<Record> records;
};

// One entry point of the L4 proxy (plan section `proxy.listeners`): an
// address that forwards to the endpoints by policy, with the health checks,
// routing controls and failover epoch the DNS answers go by.
struct ProxyListener {
  std::string name;
  Address listen;
  ListenerProtocol protocol = ListenerProtocol::kTcp;
  // failover: the current primary region's up endpoints, then the next
  // region's; weighted: by weight among the up endpoints; nearest: the up
  // endpoint with the lowest measured connect time.
  ProxyPolicy policy = ProxyPolicy::kFailover;
  std::vector<WeightedTarget> endpoints;  // weights matter for weighted only
  Duration connect_timeout = std::chrono::seconds(2);  // tcp: then the next endpoint is tried
  Duration idle_timeout = std::chrono::minutes(5);     // tcp: no byte either way; udp: a flow's
  // How long a connection to an endpoint that is healthy but no longer chosen
  // (switched off, an older epoch's primary) may go on before it is closed.
  Duration drain = std::chrono::seconds(30);
  int max_connections = 10000;  // tcp connections, or udp flows, at once
  bool proxy_protocol = false;  // tcp: a PROXY protocol v2 header to the endpoint first
  bool fail_open = true;        // no endpoint up: try them all rather than refuse
};

struct Proxy {
  int threads = 0;  // event loops; 0: one per core
  std::vector<ProxyListener> listeners;
};

struct RoutingControls {
  int min_on = 1;
  std::string token_file;  // bearer token for changes; LIFEBOAT_TOKEN overrides
};

struct Replication {
  ReplicationMode mode = ReplicationMode::kContinuous;
  uint16_t port = 7710;
  Duration coalesce = std::chrono::milliseconds(200);
  Duration verify_every = std::chrono::hours(1);
  std::optional<Rate> bandwidth;  // unset: unlimited
  std::string key_file;           // pre-shared key of the TLS sessions; LIFEBOAT_REPLICATION_KEY_FILE overrides
};

struct Volume {
  std::string name;
  std::map<std::string, std::string> path;  // region -> absolute path
  Replication replication;
};

struct Database {
  std::string name;
  std::string engine = "postgresql";
  // region -> libpq conninfo (never a password: see password_file). The user
  // needs the REPLICATION attribute and pg_hba must let it in for
  // replication from the other regions' hosts.
  std::map<std::string, std::string> instances;
  // async: a commit returns before the standby has it (RPO: the lag);
  // sync: it returns once the standby has flushed it (RPO 0).
  DbMode mode = DbMode::kAsync;
  // sync only, and required there: while the standby is away, commits
  // block, or the primary goes on asynchronously and an alert fires.
  std::optional<StandbyDown> when_standby_down;
  Size max_lag_on_failover{16'000'000};  // a standby further behind is not promoted unless forced
  // region -> the server's data directory on that region's host, for what
  // runs there: bootstrap, rewind, re-attaching an old primary. Optional.
  std::map<std::string, std::string> data_dir;
  std::string bin_dir;  // PostgreSQL's programs; empty: found (pg_config, /usr/lib/postgresql/*/bin)
  std::string password_file;  // first line; LIFEBOAT_DB_<NAME>_PASSWORD overrides
};

struct Location {
  std::string name;
  LocationType type = LocationType::kFilesystem;
  std::string path;                          // filesystem
  std::string endpoint, bucket, prefix;      // s3
  std::string s3_region = "us-east-1";       // s3
  S3Addressing addressing = S3Addressing::kAuto;  // s3: auto is virtual-hosted for amazonaws.com, else path-style
  Access access = Access::kReadWrite;
  std::string password_file;  // the repository password; LIFEBOAT_REPO_PASSWORD overrides
};

// Retention by count; 0 leaves a rule out. A backup is kept when any rule
// selects it (the newest N; the newest of each of the last N hours, days,
// weeks or months that have a backup).
struct Keep {
  int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0;
  bool any() const { return last + hourly + daily + weekly + monthly > 0; }
};

struct Schedule {
  std::string name;
  std::string cron;
  std::string location;
  std::vector<std::string> volumes;
  // Instead of volumes, a cluster backup: the Kubernetes cluster of this
  // region (clusters.REGION), made by that region's agent, with a selection
  // as `lifeboat backup create --cluster` takes it.
  std::string cluster;
  std::vector<std::string> namespaces, exclude_namespaces, resources, exclude_resources;
  std::string selector;
  std::string include_cluster_resources = "auto";  // auto, true, false
  bool volume_data = false;  // the PVCs' files too, through the node agents
  // What the schedule backs up: its volumes, or "cluster:REGION".
  std::vector<std::string> Targets() const { return cluster.empty() ? volumes : std::vector{"cluster:" + cluster}; }
  Duration ttl = std::chrono::hours(720);  // a backup older than this is deleted
  Keep keep;  // when set, a backup no rule keeps is deleted too
};

struct Backup {
  std::vector<Location> locations;
  std::vector<Schedule> schedules;
};

struct Hook {
  std::string name;
  std::string run;
  Duration timeout = std::chrono::minutes(5);
};

struct Failover {
  FailoverMode mode = FailoverMode::kManual;
  int quorum = 0;  // filled: a majority of the regions
  // How long a quorum must see the primary down, without a break, before an
  // automatic failover starts.
  Duration grace = std::chrono::seconds(2);
  // The lease of each agent's view and heartbeat: a dead agent's view
  // vanishes after it, and a primary that cannot renew it for this long
  // fences itself.
  Duration lease = std::chrono::seconds(3);
  std::string self_fence;  // a hook the primary runs when it fences itself; empty: none
  std::vector<std::string> steps;
  std::vector<Hook> hooks;
};

// A workload the runbook step `scale` sets to a replica count.
struct ScaleTarget {
  std::string kind;  // "Deployment" or "StatefulSet"
  std::string ns, name;
  int replicas = 1;
};

// What the runbook step `restore-resources` restores into this region's
// cluster: the newest backup of the cluster of region `from` in `location`.
struct ClusterRestorePlan {
  std::string from, location;
  std::vector<std::string> namespaces, exclude_namespaces;  // globs; empty: all
  std::map<std::string, std::string> namespace_map, storage_class_map;
  bool update_existing = false;  // existing: update (default skip)
};

// A region's Kubernetes cluster (plan section `clusters`, keyed by region):
// how to reach it, the client's rate limit, and what the runbook steps
// `scale` and `restore-resources` do there when the region becomes primary.
struct Cluster {
  std::string region;
  std::string kubeconfig;  // absolute path, or "in-cluster" (the pod's service account)
  std::string context;     // empty: the kubeconfig's current-context
  int qps = 100, burst = 200;
  std::vector<ScaleTarget> scale;
  Duration scale_timeout = std::chrono::minutes(5);
  std::optional<ClusterRestorePlan> restore;
  // Where the node agents (lifeboat agent --node) run, for PVC files.
  std::string node_agent_namespace = "lifeboat";
  // How long a restore waits for a pod that mounts a restored PVC to be
  // scheduled, before its files are reported not restored.
  Duration volume_wait = std::chrono::minutes(10);
};

enum class StoreKind { kEmbedded, kEtcd };
const char* Name(StoreKind k);

// Where the agents keep and share their state (plan section `state`).
struct StateConfig {
  StoreKind store = StoreKind::kEmbedded;
  // embedded: the SQLite file every agent on the machine shares; empty: the
  // parent of the agent's data dir, so that regions' agents started with
  // sibling data dirs (the demo, the tests) share one.
  std::string path;
  std::vector<std::string> endpoints;  // etcd: "https://10.0.0.1:2379", ...
  std::string prefix;                  // etcd: every key below it; filled: "/lifeboat/<plan name>/"
  std::string ca_file, cert_file, key_file;  // etcd TLS
  Duration timeout = std::chrono::seconds(5);  // deadline of every store call
};

struct Plan {
  std::string source;  // file it was loaded from, for messages
  std::string name;
  Pattern pattern = Pattern::kWarmStandby;
  Objectives objectives;
  std::vector<Region> regions;
  std::vector<Check> checks;
  std::vector<Endpoint> endpoints;
  std::optional<Dns> dns;
  std::optional<Proxy> proxy;
  RoutingControls routing_controls;
  std::vector<Volume> volumes;
  std::vector<Database> databases;
  Backup backup;
  Failover failover;
  StateConfig state;
  std::vector<Cluster> clusters;

  const Region* FindRegion(const std::string& name) const;
  // The region, or InvalidArgument listing the plan's regions and the
  // closest name ("did you mean 'us-east'?").
  Result<const Region*> RequireRegion(const std::string& name) const;
  const Check* FindCheck(const std::string& name) const;
  const Endpoint* FindEndpoint(const std::string& name) const;
  const Volume* FindVolume(const std::string& name) const;
  const Database* FindDatabase(const std::string& name) const;
  const Location* FindLocation(const std::string& name) const;
  const Cluster* FindCluster(const std::string& region) const;
  const Region* Primary() const;
  // The longest TTL of the DNS answers that can send a client to an
  // endpoint of `region` (failover, weighted and multivalue records): how
  // long after its traffic goes off a resolver may still send clients
  // there. Zero without such a record.
  Duration LongestTtlTo(const std::string& region) const;
};

// The built-in failover steps, in their usual order.
inline constexpr const char* kBuiltinSteps[] = {"fence", "promote", "restore", "restore-resources",
                                                "scale", "switch-traffic", "verify"};
// The hook a plan's default steps run before switch-traffic: capacity in the
// new primary before its traffic arrives.
inline constexpr const char* kScaleUpHook = "scale-up";

// The steps of a plan without failover.steps, which the pattern implies:
//   pilot-light, warm-standby: fence, promote, [k8s], [scale-up], switch-traffic, hooks, verify
//   backup-restore:            fence, restore, [k8s], [scale-up], switch-traffic, hooks, verify
//   active-active:             fence, [k8s], [scale-up], switch-traffic, hooks, verify
// (both regions serve already: nothing waits for a promote; the copies still
// follow the epoch). [k8s] is restore-resources when a cluster of the plan
// has a `restore` section, then scale when one has a `scale` list. "hooks"
// are the plan's other hooks in their order; the self-fence hook is not a
// step.
std::vector<std::string> DefaultSteps(Pattern pattern, const std::vector<Hook>& hooks, const std::string& self_fence,
                                      const std::vector<Cluster>& clusters = {});

}  // namespace lifeboat::plan
