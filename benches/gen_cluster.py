#!/usr/bin/env python3
"""The cluster generator and change driver behind benches/scale.sh.

An Altinn-shaped cluster, deterministic from (ingresses, changes, ports):

* 90% of the Ingresses sit on 5 shared hosts apps0..apps4.bench.test, one
  Prefix path /orgO/appA each: org O gets 90 apps, in namespace orgO, on host
  apps(O mod 5). The other 10% have a host of their own, svcN.bench.test, path
  /, in namespace svc.
* One Service per Ingress (ports [{name: http, port: 80}]) and one
  EndpointSlice per Service with 2 ready endpoints, 127.0.0.1 and 127.0.0.2 on
  one of the bench-backend ports (Service i gets port i mod len(ports)). The
  Services that the EndpointSlice changes will revive start dead (port 1, so
  502) or not ready (ready: false, so 503).
* Layout, as a GitOps folder would have it: apps/orgO.yaml holds one org's 90
  Ingresses with their Services and EndpointSlices (100 files at 10,000),
  svc/svc-K.yaml the own-host ones by the 100; added/ receives the new files.

Subcommands (see scale.sh for how they are used):
  generate    write the manifests and print a one-line description
  startup     poll /readyz and a sample route, report times and RSS
  drive       make the sluice changes (add / edit / endpointslice), write a TSV
  nginx-conf  write the equivalent nginx.conf
  drive-nginx add locations + `nginx -s reload`, write a TSV
  summary     print the final table from the TSVs
"""

import argparse
import http.client
import json
import math
import os
import subprocess
import sys
import time

APPS_PER_ORG = 90
SHARED_HOSTS = 5
INGRESS_FILE_CHUNK = 100  # own-host Ingresses per file
POLL_INTERVAL = 0.002
POLL_CAP = 10.0


# --- the model ---------------------------------------------------------------


class Cluster:
    def __init__(self, ingresses, changes, ports, eps_mode):
        self.n = ingresses
        self.shared = int(round(ingresses * 0.9))
        self.own = ingresses - self.shared
        self.orgs = max(1, math.ceil(self.shared / APPS_PER_ORG))
        self.changes = changes
        self.ports = ports
        self.eps_mode = eps_mode
        if self.shared < 2 * changes:
            sys.exit(f"gen_cluster: {ingresses} Ingresses are too few for {changes} changes per kind")
        # 2 * changes shared Ingresses spread evenly: even ones get their path
        # edited, odd ones start with a dead EndpointSlice and are revived.
        step = self.shared / (2 * changes)
        picks = [int(i * step + step / 2) for i in range(2 * changes)]
        self.edit_targets = picks[0::2]
        self.eps_targets = picks[1::2]
        self.edited = set()
        self.revived = set()
        self.dead = set(self.eps_targets)

    # Shared Ingress j: org, app, host, path.
    def org_app(self, j):
        return j // APPS_PER_ORG, j % APPS_PER_ORG

    @staticmethod
    def shared_host(org):
        return f"apps{org % SHARED_HOSTS}.bench.test"

    def shared_path(self, j):
        o, a = self.org_app(j)
        return f"/org{o}/app{a}" + ("-v2" if j in self.edited else "")

    def port_of(self, i):
        return self.ports[i % len(self.ports)]

    def org_file(self, o):
        return f"apps/org{o}.yaml"

    def org_text(self, o):
        out = []
        for j in range(o * APPS_PER_ORG, min((o + 1) * APPS_PER_ORG, self.shared)):
            _, a = self.org_app(j)
            name = f"app{a}"
            live = j not in self.dead or j in self.revived
            out.append(objects(f"org{o}", name, self.shared_host(o), self.shared_path(j),
                               self.port_of(j), live, self.eps_mode))
        return "".join(out)

    def own_text(self, k):
        out = []
        for s in range(k * INGRESS_FILE_CHUNK, min((k + 1) * INGRESS_FILE_CHUNK, self.own)):
            out.append(objects("svc", f"svc{s}", f"svc{s}.bench.test", "/",
                               self.port_of(self.shared + s), True, self.eps_mode))
        return "".join(out)

    def added(self, r):
        """The r-th added Ingress: (file, text, host, path)."""
        o = (r * 7) % self.orgs
        name = f"added{r}"
        path = f"/org{o}/{name}"
        host = self.shared_host(o)
        return (f"added/{name}.yaml", objects(f"org{o}", name, host, path, self.port_of(r), True,
                                              self.eps_mode), host, path)

    def files(self):
        for o in range(self.orgs):
            yield self.org_file(o), self.org_text(o)
        for k in range(math.ceil(self.own / INGRESS_FILE_CHUNK)):
            yield f"svc/svc-{k}.yaml", self.own_text(k)

    def sample(self):
        """A live route for the start-up probe: (host, path)."""
        j = self.shared // 2
        while j in self.dead:
            j += 1
        return self.shared_host(self.org_app(j)[0]), self.shared_path(j) + "/"


def objects(ns, name, host, path, port, live, eps_mode):
    """Ingress + Service + EndpointSlice for one app."""
    ready = "true"
    if not live:
        if eps_mode == "notready":
            ready = "false"
        else:
            port = 1
    endpoints = "".join(
        f"- addresses: [\"{addr}\"]\n  conditions:\n    ready: {ready}\n"
        for addr in ("127.0.0.1", "127.0.0.2"))
    return app_yaml(ns, name, host, path) + slice_yaml(ns, f"{name}-x7k2p", name, port, endpoints)


def app_yaml(ns, name, host, path):
    """An app's Ingress (host + Prefix path -> Service `name` port 80) and its Service."""
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: {name}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend:
          service:
            name: {name}
            port:
              number: 80
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
  - name: http
    port: 80
    targetPort: http
"""


def slice_yaml(ns, name, service, port, endpoints):
    """One EndpointSlice of Service `service`: one port, `endpoints` as YAML list items."""
    return f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: {ns}
  labels:
    kubernetes.io/service-name: {service}
addressType: IPv4
ports:
- name: http
  port: {port}
  protocol: TCP
endpoints:
{endpoints}"""


def model(args):
    return Cluster(args.ingresses, args.changes, [int(p) for p in args.ports.split()], args.eps_mode)


# --- helpers -------------------------------------------------------------------


def atomic_write(root, stage, rel, text):
    """Writes text to stage, then renames it to root/rel; returns the time just before the rename."""
    dst = os.path.join(root, rel)
    tmp = os.path.join(stage, rel.replace("/", "__") + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t0 = time.perf_counter()
    os.rename(tmp, dst)
    return t0


def get(port, host, path, timeout=2.0):
    """One request on a fresh connection; the status, or 0 if it failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def poll_200(port, host, path, t0, cap=POLL_CAP, want=200):
    """Polls until `want` (200); (ms since t0 or None, attempts, last status)."""
    attempts, status = 0, 0
    while True:
        status = get(port, host, path)
        attempts += 1
        now = time.perf_counter()
        if status == want:
            return (now - t0) * 1000.0, attempts, status
        if now - t0 > cap:
            return None, attempts, status
        time.sleep(POLL_INTERVAL)


def status_kb(pid):
    """(VmRSS, VmHWM) in kB."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def tree_rss_kb(root):
    """VmRSS summed over root and its children (nginx master + workers)."""
    pids = [root]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == root:
            pids.append(int(entry))
    return sum(status_kb(p)[0] for p in pids), len(pids)


def duration_ms(text):
    """tracing's Debug of a Duration ("12.3ms", "850.1µs", "1.2s", "42ns") in ms."""
    for unit, scale in (("ms", 1.0), ("µs", 1e-3), ("us", 1e-3), ("ns", 1e-6), ("s", 1000.0)):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * scale
            except ValueError:
                return None
    return None


def sluice_log_events(log, offset):
    """sluice's reload log lines (JSON) after offset: (new offset, load_ms, apply_ms, apply_kind)."""
    load = apply = None
    kind = "-"
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        fields = event.get("fields", {})
        msg = fields.get("message", "")
        elapsed = duration_ms(str(fields.get("elapsed", "")))
        if msg == "manifests loaded":
            load = (load or 0) + (elapsed or 0)
        elif msg == "routing table published":
            apply, kind = (apply or 0) + (elapsed or 0), "recompile"
        elif msg == "endpoints updated without recompiling":
            apply, kind = (apply or 0) + (elapsed or 0), "endpoints-only"
    return offset + len(data), load, apply, kind


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


# --- subcommands -------------------------------------------------------------------


def cmd_generate(args):
    c = model(args)
    for sub in ("apps", "svc", "added"):
        os.makedirs(os.path.join(args.dir, sub), exist_ok=True)
    files = size = 0
    for rel, text in c.files():
        with open(os.path.join(args.dir, rel), "w") as f:
            f.write(text)
        files += 1
        size += len(text)
    print(f"{c.n} Ingresses ({c.shared} as /orgO/appA on {SHARED_HOSTS} shared hosts, {c.orgs} orgs; "
          f"{c.own} with hosts of their own), {c.n} Services, {2 * c.n} endpoints; "
          f"{files} files, {size / 1e6:.1f} MB (apps/orgO.yaml: one org's {APPS_PER_ORG} Ingresses + "
          f"Services + EndpointSlices; svc/svc-K.yaml: {INGRESS_FILE_CHUNK} own-host ones)")


def cmd_startup(args):
    """Polls readyz and the sample route; t0 is the wall-clock start time from the shell."""
    c = model(args)
    host, path = c.sample()
    ready_ms = first_ms = None
    deadline = args.t0 + 60
    while time.time() < deadline:
        if ready_ms is None and args.admin and get(args.admin, "127.0.0.1", "/readyz") == 200:
            ready_ms = (time.time() - args.t0) * 1000
        if ready_ms is not None or not args.admin:
            if get(args.http, host, path) == 200:
                first_ms = (time.time() - args.t0) * 1000
                break
        time.sleep(POLL_INTERVAL)
    if args.tree:
        rss, procs = tree_rss_kb(args.pid)
        hwm = 0
    else:
        rss, hwm = status_kb(args.pid)
        procs = 1
    result = {"ready_ms": ready_ms, "first_200_ms": first_ms, "rss_kb": rss, "hwm_kb": hwm,
              "procs": procs, "sample": f"http://{host}{path}"}
    time.sleep(1.0)
    result["rss_kb_1s"] = tree_rss_kb(args.pid)[0] if args.tree else status_kb(args.pid)[0]
    with open(args.out, "w") as f:
        json.dump(result, f)
    ready = f"/readyz 200 {fmt(ready_ms)} ms, -> " if args.admin else ""
    print(f"  {args.name}: start -> {ready}first 200 on {result['sample']} {fmt(first_ms)} ms; RSS {rss / 1024:.1f} MB" + (f" (VmHWM {hwm / 1024:.1f} MB)" if hwm else ""))
    if first_ms is None:
        sys.exit(f"gen_cluster: {args.name} never answered 200 on {result['sample']}")


def cmd_drive(args):
    c = model(args)
    root, stage = args.dir, args.stage
    log_offset = os.path.getsize(args.log) if os.path.exists(args.log) else 0
    rows = []
    expected_before = {"add": (404,), "edit": (404,), "eps": (502,) if args.eps_mode == "dead" else (503,),
                       "delete": (200,)}
    for r in range(c.changes):
        for kind in args.kinds.split():
            if kind == "add":
                rel, text, host, path = c.added(r)
            elif kind == "edit":
                j = c.edit_targets[r]
                o, _ = c.org_app(j)
                c.edited.add(j)
                rel, text, host, path = c.org_file(o), c.org_text(o), c.shared_host(o), c.shared_path(j)
            elif kind == "eps":
                j = c.eps_targets[r]
                o, _ = c.org_app(j)
                c.revived.add(j)
                rel, text, host, path = c.org_file(o), c.org_text(o), c.shared_host(o), c.shared_path(j)
            elif kind == "delete":
                # The Ingress (and Service, slice) this round added goes away.
                rel, _, host, path = c.added(r)
            else:
                sys.exit(f"gen_cluster: unknown change kind {kind}")
            before = get(args.http, host, path)
            if kind == "delete":
                t0 = time.perf_counter()
                os.remove(os.path.join(root, rel))
                ms, attempts, last = poll_200(args.http, host, path, t0, want=404)
            else:
                t0 = atomic_write(root, stage, rel, text)
                ms, attempts, last = poll_200(args.http, host, path, t0)
            time.sleep(args.settle)
            rss, hwm = status_kb(args.pid)
            log_offset, load_ms, apply_ms, apply_kind = sluice_log_events(args.log, log_offset)
            rows.append((kind, r, ms, before, attempts, last, rss, hwm, load_ms, apply_ms, apply_kind))
            flag = "" if before in expected_before[kind] else f"  (!) answered {before} before the change"
            print(f"  {kind:5} #{r:<2} {fmt(ms):>8} ms  ({attempts} polls; before {before}; "
                  f"sluice load {fmt(load_ms)} ms, {apply_kind} {fmt(apply_ms)} ms)  "
                  f"RSS {rss / 1024:.1f} MB{flag}" + ("" if ms is not None else f"  FAILED (last {last})"))
    with open(args.out, "w") as f:
        f.write("kind\tround\tms\tbefore\tpolls\tlast\trss_kb\thwm_kb\tload_ms\tapply_ms\tapply\n")
        for row in rows:
            f.write("\t".join("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
                              for v in row) + "\n")


def nginx_text(c, prefix, port, extra):
    """nginx.conf with the cluster plus the first `extra` added Ingresses."""
    out = [f"""worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
"""]
    locations = {}  # host -> [(path, upstream)]

    def service(ns, name, host, path, port_, live):
        up = f"{ns}-{name}"
        p = port_ if live or c.eps_mode != "dead" else 1
        out.append(f"    upstream {up} {{ server 127.0.0.1:{p}; server 127.0.0.2:{p}; }}\n")
        locations.setdefault(host, []).append((path, up))

    for j in range(c.shared):
        o, a = c.org_app(j)
        service(f"org{o}", f"app{a}", c.shared_host(o), c.shared_path(j), c.port_of(j), j not in c.dead)
    for s in range(c.own):
        service("svc", f"svc{s}", f"svc{s}.bench.test", "/", c.port_of(c.shared + s), True)
    for r in range(extra):
        _, _, host, path = c.added(r)
        o = (r * 7) % c.orgs
        service(f"org{o}", f"added{r}", host, path, c.port_of(r), True)
    for host, locs in locations.items():
        out.append(f"    server {{\n        listen 127.0.0.1:{port};\n        server_name {host};\n")
        for path, up in locs:
            out.append(f"        location {path} {{ proxy_pass http://{up}; }}\n")
        if all(path != "/" for path, _ in locs):
            out.append("        location / { return 404; }\n")  # as sluice: unknown path -> 404
        out.append("    }\n")
    out.append("}\n")
    return "".join(out)


def cmd_nginx_conf(args):
    c = model(args)
    os.makedirs(os.path.join(args.prefix, "logs"), exist_ok=True)
    os.makedirs(os.path.join(args.prefix, "tmp"), exist_ok=True)
    text = nginx_text(c, args.prefix, args.nginx_port, 0)
    with open(args.conf, "w") as f:
        f.write(text)
    print(f"  nginx.conf: {len(text) / 1e6:.1f} MB, {text.count('server {')} server blocks, "
          f"{text.count('location ')} locations, {text.count('upstream ')} upstreams")


def cmd_drive_nginx(args):
    c = model(args)
    rows = []
    conf_dir, conf_name = os.path.split(args.conf)
    for r in range(args.nginx_changes):
        _, _, host, path = c.added(r)
        text = nginx_text(c, args.prefix, args.nginx_port, r + 1)
        before = get(args.nginx_port, host, path)
        t0 = atomic_write(conf_dir, args.stage, conf_name, text)
        reload = subprocess.run([args.nginx, "-p", args.prefix, "-c", args.conf, "-s", "reload"],
                                capture_output=True, text=True, timeout=60)
        reload_ms = (time.perf_counter() - t0) * 1000
        if reload.returncode != 0:
            sys.exit(f"gen_cluster: nginx -s reload failed: {reload.stderr}")
        ms, attempts, last = poll_200(args.nginx_port, host, path, t0)
        time.sleep(args.settle)
        rss, procs = tree_rss_kb(args.pid)
        rows.append(("nginx-add", r, ms, before, attempts, last, rss, 0, reload_ms, None, f"{procs}procs"))
        print(f"  nginx #{r} {fmt(ms):>8} ms  (nginx -s reload returned after {reload_ms:.0f} ms; "
              f"{attempts} polls; before {before})  RSS {rss / 1024:.1f} MB over {procs} processes"
              + ("" if ms is not None else f"  FAILED (last {last})"))
    with open(args.out, "w") as f:
        f.write("kind\tround\tms\tbefore\tpolls\tlast\trss_kb\thwm_kb\tload_ms\tapply_ms\tapply\n")
        for row in rows:
            f.write("\t".join("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
                              for v in row) + "\n")


# --- summary -------------------------------------------------------------------------


def read_tsv(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def read_json(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def stats(values):
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    median = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    p90 = v[max(0, math.ceil(0.9 * n) - 1)]
    return median, p90, v[0], v[-1]


def floats(rows, key):
    return [float(r[key]) for r in rows if r.get(key)]


def cmd_summary(args):
    c = model(args)
    eps_label = "EndpointSlice 502->200" if args.eps_mode == "dead" else "EndpointSlice 503->200"
    labels = {"add": "add an Ingress (new file)", "edit": "edit a path (/x -> /x-v2)", "eps": eps_label,
              "delete": "delete an Ingress (file removed) -> 404", "nginx-add": "nginx: add location + reload"}
    targets = {"add": 50.0, "edit": 50.0, "eps": 20.0, "delete": 50.0}
    su = read_json(args.sluice_start)
    ng = read_json(args.nginx_start)
    rows = read_tsv(args.sluice_tsv)
    nrows = read_tsv(args.nginx_tsv)

    print()
    print(f"=== sluice scale: {c.n} Ingresses ({c.shared} on {SHARED_HOSTS} shared hosts + {c.own} own hosts), "
          f"{2 * c.n} endpoints ===")
    print()
    print(f"{'':34} {'sluice':>12} {'nginx':>12}   target (sluice)")
    s_ready = su and su.get("ready_ms")
    print(f"{'start -> /readyz 200 (ms)':34} {fmt(s_ready, 0):>12} {'-':>12}   <= 1000"
          + (f"  {'met' if s_ready is not None and s_ready <= 1000 else 'MISSED'}" if su else ""))
    s_first = su and su.get("first_200_ms")
    n_first = ng and ng.get("first_200_ms")
    print(f"{'start -> first 200 (ms)':34} {fmt(s_first, 0):>12} {fmt(n_first, 0):>12}")
    s_rss = su and su["rss_kb"] / 1024
    n_rss = ng and ng["rss_kb"] / 1024
    print(f"{'RSS after ready (MB)':34} {fmt(s_rss):>12} {fmt(n_rss):>12}   <= 64"
          + (f"  {'met' if s_rss <= 64 else 'MISSED'}" if su else ""))
    if su:
        print(f"{'VmHWM after ready (MB)':34} {su['hwm_kb'] / 1024:>12.1f} {'-':>12}")
        print(f"{'RSS 1 s after ready (MB)':34} {su['rss_kb_1s'] / 1024:>12.1f} "
              f"{fmt(ng and ng['rss_kb_1s'] / 1024):>12}")
    print()
    print(f"change -> first right answer, fresh connection   n  fail  median     p90     min     max"
          f"   target   sluice load / apply (median ms)")
    for kind in ("add", "edit", "eps", "delete", "nginx-add"):
        rs = [r for r in (rows if kind != "nginx-add" else nrows) if r["kind"] == kind]
        if not rs:
            continue
        ok = floats(rs, "ms")
        fail = len(rs) - len(ok)
        st = stats(ok)
        line = f"{labels[kind]:46} {len(rs):>3} {fail:>5}"
        line += "".join(f" {x:>7.1f}" for x in st) if st else "       -       -       -       -"
        if kind in targets and st:
            line += f"   <= {targets[kind]:<3.0f} {'met' if st[0] <= targets[kind] else 'MISSED'}"
            ld, ap = stats(floats(rs, "load_ms")), stats(floats(rs, "apply_ms"))
            applies = sorted({r["apply"] for r in rs})
            line += f"   {fmt(ld and ld[0])} / {fmt(ap and ap[0])} ({', '.join(applies)})"
        elif kind == "nginx-add" and st:
            rl = stats(floats(rs, "load_ms"))
            line += f"   (nginx -s reload itself: median {fmt(rl and rl[0], 0)} ms)"
        print(line)
    for name, rs in (("sluice", rows), ("nginx", nrows)):
        if not rs:
            continue
        rss = [int(r["rss_kb"]) / 1024 for r in rs]
        lo, hi = min(rss), max(rss)
        spread = (hi - lo) / lo * 100 if lo else float("nan")
        print()
        print(f"{name} RSS after each change (MB, in order): " + " ".join(f"{x:.1f}" for x in rss))
        print(f"{name} RSS min {lo:.1f} / max {hi:.1f} MB over {len(rss)} changes: spread {spread:.1f}% -> "
              f"{'flat within 5%' if spread <= 5 else 'NOT flat within 5%'}"
              + (f"; VmHWM at the end {int(rs[-1]['hwm_kb']) / 1024:.1f} MB" if name == "sluice" else ""))
        if len(rss) >= 6:
            half = rss[len(rss) // 2:]
            lo2, hi2 = min(half), max(half)
            print(f"{name} RSS over the second half ({len(half)} changes): {lo2:.1f}..{hi2:.1f} MB, "
                  f"spread {(hi2 - lo2) / lo2 * 100:.1f}%")
    bad = [r for r in rows if r["kind"] in ("add", "edit") and r["before"] != "404"]
    bad += [r for r in rows if r["kind"] == "eps" and r["before"] not in ("502", "503")]
    bad += [r for r in rows if r["kind"] == "delete" and r["before"] != "200"]
    if bad:
        print(f"\nwarning: {len(bad)} changes answered something unexpected before the change "
              f"(kind/round/status: {', '.join(r['kind'] + '/' + r['round'] + '/' + r['before'] for r in bad)})")


# --- endpoint churn (benches/churn.sh) ------------------------------------------

CHURN_FILE = "churn/churn.yaml"
CHURN_HOST = "churn.bench.test"


def churn_text(ports, step):
    """The churned app: Ingress churn.bench.test/ -> Service churn -> one
    EndpointSlice whose two ready endpoints move on at each step, as pods of a
    rolling Deployment do (every address listed is a live bench-backend)."""
    addrs = [(a, port) for port in ports for a in ("127.0.0.1", "127.0.0.2")]
    picked = [addrs[(step + i) % len(addrs)] for i in range(2)]
    # One slice per port: a slice lists one port for all its endpoints.
    slices = [slice_yaml("churn", f"churn-{n}", "churn", port,
                         f"- addresses: [\"{addr}\"]\n  conditions:\n    ready: true\n")
              for n, (addr, port) in enumerate(picked)]
    return app_yaml("churn", "churn", CHURN_HOST, "/") + "".join(slices)


def cmd_churn(args):
    """Writes the churned app (step 0), or with --rate R --seconds S rewrites
    its EndpointSlices R times a second for S seconds (atomic renames, paced
    on a fixed schedule); prints how many writes it made and the most any
    write fell behind its schedule."""
    ports = [int(p) for p in args.ports.split()]
    os.makedirs(os.path.join(args.dir, "churn"), exist_ok=True)
    if not args.rate:
        atomic_write(args.dir, args.stage, CHURN_FILE, churn_text(ports, 0))
        return
    start = time.perf_counter()
    n = int(args.rate * args.seconds)
    late = 0.0
    for step in range(1, n + 1):
        due = start + step / args.rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
        atomic_write(args.dir, args.stage, CHURN_FILE, churn_text(ports, step))
    took = time.perf_counter() - start
    print(json.dumps({"writes": n, "seconds": round(took, 3), "max_late_ms": round(late * 1000, 1)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["generate", "startup", "drive", "nginx-conf", "drive-nginx", "summary",
                                       "churn"])
    p.add_argument("--ingresses", type=int, default=10000)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--ports", default="8920", help="bench-backend ports, space separated")
    p.add_argument("--eps-mode", choices=["dead", "notready"], default="dead")
    p.add_argument("--dir", help="the manifests directory")
    p.add_argument("--stage", help="staging directory on the same filesystem (outside the watched one)")
    p.add_argument("--http", type=int, help="sluice's HTTP port")
    p.add_argument("--admin", type=int, default=0, help="sluice's admin port (startup)")
    p.add_argument("--pid", type=int)
    p.add_argument("--tree", action="store_true", help="sum RSS over the PID and its children")
    p.add_argument("--name", default="sluice")
    p.add_argument("--t0", type=float, help="start time (epoch seconds)")
    p.add_argument("--log", help="sluice's JSON log")
    p.add_argument("--kinds", default="add edit eps delete")
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--out")
    p.add_argument("--nginx", default="nginx")
    p.add_argument("--prefix")
    p.add_argument("--conf")
    p.add_argument("--nginx-port", type=int)
    p.add_argument("--nginx-changes", type=int, default=5)
    p.add_argument("--rate", type=float, default=0, help="churn: EndpointSlice writes per second")
    p.add_argument("--seconds", type=float, default=20, help="churn: for how long")
    p.add_argument("--sluice-start")
    p.add_argument("--sluice-tsv")
    p.add_argument("--nginx-start")
    p.add_argument("--nginx-tsv")
    args = p.parse_args()
    {"generate": cmd_generate, "startup": cmd_startup, "drive": cmd_drive, "nginx-conf": cmd_nginx_conf,
     "drive-nginx": cmd_drive_nginx, "summary": cmd_summary, "churn": cmd_churn}[args.command](args)


if __name__ == "__main__":
    main()
