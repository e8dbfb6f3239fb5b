#!/usr/bin/env python3
"""A FAKE Kubernetes API server, for tests only.

No kube-apiserver is packaged for Debian 12 and none can run on the test
machines, so lifeboat's Kubernetes tests talk to this instead. It is not
Kubernetes: it keeps objects in memory, has no admission, no controllers and
no watch. What it does do, it does the way the API server does (and
tests/integration/k8s_test.sh checks that with real clients, Debian's
kubectl and python3-kubernetes):

  - discovery: /api, /api/v1, /apis, /apis/GROUP/VERSION, /version
  - namespaced and cluster-scoped resources of the core, apps, batch,
    networking, rbac, storage, coordination, events and apiextensions groups
  - CustomResourceDefinitions: a created CRD is served after a moment, and
    its status then says Established
  - LIST with labelSelector, limit and continue tokens (objects in key order)
  - create (POST), get, update (PUT, resourceVersion checked: 409 Conflict),
    merge patch (PATCH), delete; 409 AlreadyExists; 404 for an object, a
    namespace or a resource not served; metav1.Status bodies for errors
  - bearer tokens, and client certificates when --client-ca is given
  - a stand-in for the workload controllers (no pods exist): a Deployment
    or StatefulSet written with a new spec gets, after --ready-delay
    seconds, a status with observedGeneration and every replica ready; one
    named in POST /fake/stuck {"namespace", "name"} never gets ready
    replicas (a rollout that hangs)
  - on demand (POST /fake/throttle {"count": N}): the next N requests get
    429 with Retry-After; POST /fake/fail {"count": N}: the next N get 500;
    POST /fake/timeout {"count": N}: the next N creates (POST) are done and
    then answered 504 Timeout, as a real API server's write that finished
    after its request timed out;
    POST /fake/load {"resource", "group", "version", "namespace", "count",
    "prefix", "template"}: COUNT objects at once (benchmarks)

Usage: fake_apiserver.py --port P --cert C --key K [--client-ca CA]
           [--token T ...] [--without GROUP ...] [--establish-delay S] [--ready-delay S]
"""
import argparse
import base64
import copy
import datetime
import fnmatch
import json
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# group, version, resource, kind, namespaced, short names
BUILTIN = [
    ("", "v1", "namespaces", "Namespace", False, ["ns"]),
    ("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    ("", "v1", "secrets", "Secret", True, []),
    ("", "v1", "services", "Service", True, ["svc"]),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"]),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"]),
    ("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"]),
    ("", "v1", "pods", "Pod", True, ["po"]),
    ("", "v1", "endpoints", "Endpoints", True, ["ep"]),
    ("", "v1", "events", "Event", True, ["ev"]),
    ("", "v1", "nodes", "Node", False, ["no"]),
    ("", "v1", "limitranges", "LimitRange", True, ["limits"]),
    ("apps", "v1", "deployments", "Deployment", True, ["deploy"]),
    ("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"]),
    ("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"]),
    ("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"]),
    ("batch", "v1", "jobs", "Job", True, []),
    ("batch", "v1", "cronjobs", "CronJob", True, ["cj"]),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"]),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, []),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, []),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"]),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, []),
    ("events.k8s.io", "v1", "events", "Event", True, []),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ["crd", "crds"]),
]
VERBS = ["create", "delete", "get", "list", "patch", "update"]
WORKLOADS = {("apps", "deployments"), ("apps", "statefulsets")}


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code, reason, message, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.headers = code, reason, message, headers or {}


class Resource:
    def __init__(self, group, version, name, kind, namespaced, short=None, crd=None):
        self.group, self.version, self.name, self.kind = group, version, name, kind
        self.namespaced, self.short, self.crd = namespaced, short or [], crd
        self.singular = kind.lower()

    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version


class Cluster:
    """Objects in memory, keyed by (group, resource) then (namespace, name)."""

    def __init__(self, without, establish_delay, ready_delay=0.5):
        self.lock = threading.Lock()
        self.rv = 1000
        self.resources = {}  # (group, version, resource) -> Resource
        self.objects = {}  # (group, resource) -> {(ns, name): obj}
        self.throttle = 0
        self.fail = 0
        self.timeout = 0
        self.requests = 0
        self.establish_delay = establish_delay
        self.ready_delay = ready_delay
        self.stuck = set()  # "ns/name" of workloads whose replicas never get ready
        for g, v, r, k, n, s in BUILTIN:
            if g in without:
                continue
            self.resources[(g, v, r)] = Resource(g, v, r, k, n, s)
        for name in ["default", "kube-system", "kube-public"]:
            self._put(self.find("", "v1", "namespaces"), None, {"metadata": {"name": name}})

    def find(self, group, version, resource):
        return self.resources.get((group, version, resource))

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def _put(self, res, ns, obj):
        obj["apiVersion"], obj["kind"] = res.api_version(), res.kind
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self.next_rv()
        meta["creationTimestamp"] = now_text()
        meta["generation"] = 1
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if res.name == "services":
            spec = obj.setdefault("spec", {})
            if spec.get("clusterIP") != "None":
                ip = "10.96.%d.%d" % ((self.rv // 250) % 250, self.rv % 250 + 1)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        if res.name == "namespaces":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        self.objects.setdefault((res.group, res.name), {})[(ns or "", meta["name"])] = obj
        if res.name == "customresourcedefinitions":
            threading.Timer(self.establish_delay, self._establish, [meta["name"]]).start()
        self._workload_written(res, ns, meta["name"])
        return obj

    def _workload_written(self, res, ns, name):
        if (res.group, res.name) in WORKLOADS:
            threading.Timer(self.ready_delay, self._rolled_out, [res.group, res.name, ns, name]).start()

    def _rolled_out(self, group, resource, ns, name):
        """What the controller would report once the rollout of the current spec ended."""
        with self.lock:
            obj = self.objects.get((group, resource), {}).get((ns or "", name))
            if obj is None:
                return
            want = (obj.get("spec") or {}).get("replicas", 1)
            ready = 0 if f"{ns}/{name}" in self.stuck else want
            status = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": want,
                      "updatedReplicas": want}
            if ready:  # as the API server does, zero counts are left out
                status["readyReplicas"] = ready
                status["availableReplicas" if resource == "deployments" else "currentReplicas"] = ready
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self.next_rv()

    def _establish(self, name):
        with self.lock:
            crd = self.objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {}).get(("", name))
            if crd is None:
                return
            spec = crd.get("spec", {})
            names = spec.get("names", {})
            for v in spec.get("versions", []):
                if v.get("served", True):
                    r = Resource(spec["group"], v["name"], names["plural"], names["kind"],
                                 spec.get("scope", "Namespaced") == "Namespaced", names.get("shortNames"), crd=name)
                    self.resources[(r.group, r.version, r.name)] = r
            crd["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now_text()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "lastTransitionTime": now_text()}],
                "acceptedNames": names, "storedVersions": [v["name"] for v in spec.get("versions", [])][:1]}
            crd["metadata"]["resourceVersion"] = self.next_rv()

    # --- verbs
    def check_namespace(self, ns):
        if ("", ns) not in self.objects.get(("", "namespaces"), {}):
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')

    def create(self, res, ns, body):
        with self.lock:
            meta = body.get("metadata") or {}
            name = meta.get("name")
            if not name and meta.get("generateName"):
                name = meta["generateName"] + uuid.uuid4().hex[:5]
                meta["name"] = name
            if not name:
                raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value")
            if body.get("kind") not in (None, res.kind):
                raise ApiError(400, "BadRequest", f"the kind {body.get('kind')} does not match {res.kind}")
            if res.namespaced:
                if meta.get("namespace") not in (None, "", ns):
                    raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                                                      "the namespace sent on the request")
                self.check_namespace(ns)
            if (ns or "", name) in self.objects.get((res.group, res.name), {}):
                raise ApiError(409, "AlreadyExists", f'{res.name}{"." + res.group if res.group else ""} '
                                                     f'"{name}" already exists')
            return copy.deepcopy(self._put(res, ns, copy.deepcopy(body)))

    def get(self, res, ns, name):
        with self.lock:
            obj = self.objects.get((res.group, res.name), {}).get((ns or "", name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.name}{"." + res.group if res.group else ""} "{name}" not found')
            return copy.deepcopy(obj)

    def update(self, res, ns, name, body, merge=False):
        with self.lock:
            store = self.objects.get((res.group, res.name), {})
            old = store.get((ns or "", name))
            if old is None:
                raise ApiError(404, "NotFound", f'{res.name}{"." + res.group if res.group else ""} "{name}" not found')
            if merge:
                new = merge_patch(copy.deepcopy(old), body)
            else:
                new = copy.deepcopy(body)
                rv = (new.get("metadata") or {}).get("resourceVersion")
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.name} "{name}": the '
                                                    'object has been modified; please apply your changes to the '
                                                    'latest version and try again')
            meta = new.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp"):
                meta[k] = old["metadata"][k]
            meta["name"] = name
            if res.namespaced:
                meta["namespace"] = ns
            meta["resourceVersion"] = self.next_rv()
            meta["generation"] = old["metadata"].get("generation", 1) + (new.get("spec") != old.get("spec"))
            new["apiVersion"], new["kind"] = res.api_version(), res.kind
            if "status" in old and "status" not in new:
                new["status"] = old["status"]
            store[(ns or "", name)] = new
            if new.get("spec") != old.get("spec"):
                self._workload_written(res, ns, name)
            return copy.deepcopy(new)

    def delete(self, res, ns, name):
        with self.lock:
            store = self.objects.get((res.group, res.name), {})
            obj = store.pop((ns or "", name), None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.name}{"." + res.group if res.group else ""} "{name}" not found')
            if res.name == "customresourcedefinitions":
                spec = obj.get("spec", {})
                for v in spec.get("versions", []):
                    self.resources.pop((spec.get("group"), v["name"], spec.get("names", {}).get("plural")), None)
                self.objects.pop((spec.get("group"), spec.get("names", {}).get("plural")), None)
            if res.name == "namespaces":
                for (g, r), objs in self.objects.items():
                    for key in [k for k in objs if k[0] == name]:
                        del objs[key]
            return obj

    def list(self, res, ns, selector, limit, cont):
        with self.lock:
            store = self.objects.get((res.group, res.name), {})
            keys = sorted(k for k in store if ns is None or k[0] == ns)
            if cont:
                try:
                    after = tuple(json.loads(base64.urlsafe_b64decode(cont.encode())))
                except Exception:
                    raise ApiError(400, "BadRequest", "continue key is not valid")
                keys = [k for k in keys if k > after]
            items = []
            next_token = ""
            for k in keys:
                obj = store[k]
                if not matches(selector, obj.get("metadata", {}).get("labels") or {}):
                    continue
                if limit and len(items) == limit:
                    next_token = base64.urlsafe_b64encode(json.dumps(list(prev)).encode()).decode()
                    break
                items.append(copy.deepcopy(obj))
                prev = k
            meta = {"resourceVersion": str(self.rv)}
            if next_token:
                meta["continue"] = next_token
                meta["remainingItemCount"] = len(keys) - keys.index(prev) - 1
            return {"apiVersion": res.api_version(), "kind": res.kind + "List", "metadata": meta, "items": items}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def matches(selector, labels):
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip()) != v.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    cluster = None
    tokens = set()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: " + fmt % args + "\n")

    swallow = False  # a write the fake does, then answers 504 (POST /fake/timeout)

    def send_json(self, code, body, headers=None):
        if self.swallow:
            return
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_status(self, e):
        self.send_json(e.code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": e.message, "reason": e.reason, "code": e.code}, e.headers)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "BadRequest", "the request body is not JSON (this fake server takes JSON only)")

    def authenticated(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return True
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        return bool(cert)

    def handle_any(self, verb):
        c = self.cluster
        try:
            url = urlparse(self.path)
            parts = [p for p in url.path.split("/") if p]
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if parts[:1] == ["fake"]:  # test controls, no auth
                body = self.body()
                with c.lock:
                    if parts[1:] == ["throttle"]:
                        c.throttle = int(body.get("count", 1))
                    elif parts[1:] == ["fail"]:
                        c.fail = int(body.get("count", 1))
                    elif parts[1:] == ["timeout"]:
                        c.timeout = int(body.get("count", 1))
                    elif parts[1:] == ["stuck"]:
                        c.stuck.add(f'{body["namespace"]}/{body["name"]}')
                    elif parts[1:] == ["requests"]:
                        return self.send_json(200, {"requests": c.requests})
                if parts[1:] == ["load"]:  # bulk objects for benchmarks, without a request each
                    res = c.find(body.get("group", ""), body.get("version", "v1"), body["resource"])
                    if res is None:
                        raise ApiError(404, "NotFound", "no such resource")
                    ns = body.get("namespace") if res.namespaced else None
                    with c.lock:
                        for i in range(int(body.get("count", 1))):
                            obj = copy.deepcopy(body.get("template", {}))
                            obj.setdefault("metadata", {})["name"] = "%s-%06d" % (body.get("prefix", "obj"), i)
                            c._put(res, ns, obj)
                    return self.send_json(200, {"loaded": int(body.get("count", 1))})
                return self.send_json(200, {})
            if not self.authenticated():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            with c.lock:
                c.requests += 1
                if c.throttle > 0:
                    c.throttle -= 1
                    raise ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                                   {"Retry-After": "1"})
                if c.fail > 0:
                    c.fail -= 1
                    raise ApiError(500, "InternalError", "Internal error occurred: the fake server was told to fail")
                time_out = verb == "POST" and c.timeout > 0
                if time_out:
                    c.timeout -= 1
            if time_out:  # done, and the answer lost
                self.swallow = True
                try:
                    self.route(verb, parts, query)
                finally:
                    self.swallow = False
                raise ApiError(504, "Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded")
            self.route(verb, parts, query)
        except ApiError as e:
            self.send_status(e)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, verb, parts, query):
        c = self.cluster
        if verb == "GET" and parts == ["version"]:
            return self.send_json(200, {"major": "1", "minor": "28", "gitVersion": "v1.28.0-fake",
                                        "platform": "linux/amd64"})
        if verb == "GET" and parts == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                                        "serverAddress": "127.0.0.1"}]})
        if verb == "GET" and parts == ["apis"]:
            groups = {}
            with c.lock:
                for (g, v, _), _r in sorted(c.resources.items()):
                    if g:
                        groups.setdefault(g, [])
                        if v not in groups[g]:
                            groups[g].append(v)
            out = []
            for g, vs in groups.items():
                vs.sort(key=lambda v: (not v.startswith("v1"), v))
                out.append({"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}})
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": out})
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if verb != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            with c.lock:
                rs = [r for (g, v, _), r in sorted(c.resources.items()) if g == group and v == version]
            if not rs:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            gv = f"{group}/{version}" if group else version
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                        "resources": [{"name": r.name, "singularName": r.singular,
                                                       "namespaced": r.namespaced, "kind": r.kind, "verbs": VERBS,
                                                       "shortNames": r.short} for r in rs]})
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        res = c.find(group, version, rest[0])
        if res is None or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        if len(rest) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource (subresources are "
                                            "not served by this fake)")
        if res.namespaced and ns is None and verb != "GET":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if verb == "GET" and name is None:
            limit = int(query.get("limit", "0") or 0)
            return self.send_json(200, c.list(res, ns, query.get("labelSelector"), limit, query.get("continue")))
        if verb == "GET":
            return self.send_json(200, c.get(res, ns, name))
        if verb == "POST" and name is None:
            obj = c.create(res, ns, self.body())
            return self.send_json(201, obj)
        if verb == "PUT" and name:
            return self.send_json(200, c.update(res, ns, name, self.body()))
        if verb == "PATCH" and name:
            ctype = self.headers.get("Content-Type", "")
            if "apply-patch" in ctype or "json-patch+json" in ctype:
                raise ApiError(415, "UnsupportedMediaType", f"this fake server takes merge patches only, not {ctype}")
            return self.send_json(200, c.update(res, ns, name, self.body(), merge=True))
        if verb == "DELETE" and name:
            self.body()
            return self.send_json(200, c.delete(res, ns, name))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    ap = argparse.ArgumentParser(description="A fake Kubernetes API server for lifeboat's tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", help="accept client certificates signed by this CA")
    ap.add_argument("--token", action="append", default=[], help="a bearer token it accepts (repeatable)")
    ap.add_argument("--without", action="append", default=[], help="an API group it does not serve")
    ap.add_argument("--establish-delay", type=float, default=0.3)
    ap.add_argument("--ready-delay", type=float, default=0.5, help="seconds until a written workload is ready")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    Handler.cluster = Cluster(set(a.without), a.establish_delay, a.ready_delay)
    Handler.tokens = set(a.token)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    server.verbose = a.verbose
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.load_verify_locations(a.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"fake-apiserver: listening on https://127.0.0.1:{a.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
