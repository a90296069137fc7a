#!/usr/bin/env bash
# Side-by-side load test: sluice against nginx, as /work/shared/bench-method.md
# prescribes (proxy alone on CPU 1; wrk -t1 and the backend on CPU 0; 2 s
# warm-up then a measured run; interleaved rounds with the order rotated;
# medians with min-max and the paired per-round ratio sluice/nginx).
#
# Needs: apt-get install -y wrk nginx      (plus curl, python3, taskset, 2+ CPUs)
#        --https also wants openssl and h2load (apt-get install -y nghttp2-client)
#
# Usage: benches/load.sh [--quick] [--rounds N] [--duration S] [--conns "50 256"]
#                        [--ingresses N] [--proxies "sluice nginx"] [--no-build]
#                        [--https | --https-h1] [--middlewares]
#                        [--engine native|hyper] [--workers N] [--unpinned]
#                        [--access-log] [--tracing]
# The same settings as environment variables:
#   ROUNDS=5 DURATION=10 WARMUP=2 CONNS="50 256" INGRESSES=0
#   PROXIES="sluice nginx"   (also "direct": wrk straight at the backend, and
#                            "sluice-hyper": see ENGINE below)
#   QUICK=1                  (1 round of 3 s: a smoke test, not a measurement)
#   NO_BUILD=1               (use the release binaries already built)
#   BIN_DIR=<target>/release (where sluice and bench-backend are)
#   BACKEND_PORT=8900 SLUICE_PORT=8901 ADMIN_PORT=8902 NGINX_PORT=8903
#   SLUICE_TLS_PORT=8904 NGINX_TLS_PORT=8905  (sluice always binds its HTTPS
#                            listener, so it gets SLUICE_TLS_PORT in both modes)
#   SLUICE_HYPER_PORT=8906 SLUICE_HYPER_TLS_PORT=8907 SLUICE_HYPER_ADMIN_PORT=8908
#                            (the ports of "sluice-hyper", checked only when used)
#   INGRESS_CLASS=           (set to add spec.ingressClassName to the Ingresses)
#   OUT_DIR=<target>/load    (results.tsv, wrk outputs and proxy logs land here)
# INGRESSES=N adds N Ingresses (and N nginx server blocks) with distinct hosts
# hI.bench.test; the measured requests then go to the middle one via Host:, so
# host lookup cost is part of the comparison.
#
# HTTPS=1 (--https): the same comparison over TLS. One self-signed ECDSA P-256
# certificate for bench.test (OUT_DIR/bench.crt and bench.key) is served by
# both: sluice from a kubernetes.io/tls Secret `bench-tls` named in the bench
# Ingress's spec.tls (rule host bench.test), nginx from ssl_certificate on
# NGINX_TLS_PORT (TLS 1.2 + 1.3, session cache and tickets on, the same upstream
# keep-alive). The driver is h2load (HTTP/2): h2load -c C -m STREAMS -D DURATION
# --warm-up-time WARMUP, with --connect-to 127.0.0.1 so that SNI and :authority
# are bench.test; one cell per entry of H2_CONNS. The proxy's CPU is counted
# from the end of h2load's warm-up (TLS handshakes left out) to its exit. h2load
# prints no percentiles: the latency columns are the mean and the max of its
# "time for request". Without h2load, wrk runs over HTTPS instead, as with
# HTTPS_H1=1 below. In every HTTPS run sluice gets --default-cert-secret
# default/bench-tls, so a client whose SNI matches no host (wrk sends the IP)
# gets the bench.test certificate from sluice too, as from nginx's TLS
# default_server.
#   H2_CONNS="50" STREAMS=10 (h2load connections per cell, streams per connection)
#   NGINX_KEEPALIVE=256      (nginx's idle upstream connections; under
#                            H2_CONNS x STREAMS in flight nginx opens and closes
#                            upstream connections all the time: 512 avoids that)
# PROXIES=direct is not available with HTTPS (the backend speaks plain HTTP).
#
# HTTPS_H1=1 (--https-h1): HTTPS with wrk even when h2load is there: HTTP/1.1
# over TLS, CONNS cells, Host: bench.test. wrk sends the IP (127.0.0.1) as SNI;
# both proxies answer it with the bench.test certificate (sluice through
# --default-cert-secret, which it gets in every HTTPS run), and before measuring
# the script checks with `openssl s_client -servername 127.0.0.1` that each
# proxy presents exactly OUT_DIR/bench.crt (SHA-256 fingerprint), or stops.
#
# MIDDLEWARES=1 (--middlewares): the bench Ingress runs a typical chain and the
# requests go to /api/bench with Basic credentials. sluice: stripPrefix /api,
# headers (one request and one response header), basicAuth ({SHA} htpasswd line
# from a Secret) and rateLimit (a limit far above the load, so every request
# pays for the bucket but none is refused). nginx, the equivalent: rewrite
# ^/api(/.*)$ $1, proxy_set_header + add_header, auth_basic with the same
# htpasswd line, limit_req with burst. {SHA} rather than bcrypt because nginx
# would run bcrypt on every request (sluice caches successful checks).
#
# ENGINE=native|hyper (--engine X, default native): the HTTP/1.1 engine of the
# proxy "sluice" (passed as --http1-engine). To compare the engines in one run,
# put "sluice-hyper" in PROXIES: a second sluice, started with --http1-engine
# hyper on its own ports, measured interleaved with the others like any proxy;
# e.g. PROXIES="sluice sluice-hyper nginx" (with ENGINE=native) gives both
# engines' paired ratios to nginx, and the paired ratio sluice/sluice-hyper.
#
# ACCESS_LOG=1 (--access-log): both proxies write an access log into OUT_DIR:
# sluice --access-log OUT_DIR/sluice-access.log --access-log-format json,
# nginx access_log OUT_DIR/nginx-access.log buffer=64k, in a log_format with
# the same JSON fields (escape=json; NGINX_LOG_FORMAT=json, the default) or
# nginx's own `combined` line, about a sixth as long (NGINX_LOG_FORMAT=combined).
# Compare the CPU µs/request with a run without it to get each one's logging cost.
#
# TRACING=1 (--tracing): sluice exports OpenTelemetry traces of every request
# (--tracing-otlp-endpoint http://127.0.0.1:BACKEND_PORT, the bench backend
# acting as the collector; TRACING_RATIO=1.0 by default, as
# --tracing-sample-ratio). nginx has no tracing here: compare sluice's CPU
# µs/request with a run without it to get the cost of tracing.
#
# WORKERS=N (--workers N, default 1): sluice --workers N, nginx worker_processes
# N. Pinned, all N share CPU 1. UNPINNED=1 (--unpinned): no taskset at all
# (proxies, backend and wrk go where the scheduler puts them), for "2 workers on
# two cores": WORKERS=2 UNPINNED=1. Whatever the layout, a proxy's CPU is the
# sum over its whole process tree (nginx master + workers; sluice is one
# process, whose /proc/PID/stat already sums all its threads). Peak RSS is the
# sum of VmHWM over the same tree.
#
# The summary: medians (min-max) of every proxy and paired per-round ratios to
# nginx, as plain text; then, per cell, a markdown table of req/s, p50, p99
# (h2load: mean, max), CPU us/req and peak RSS for each proxy, and one of the
# paired ratios (median, min-max) of each sluice variant to nginx for us/req,
# p99 and req/s (with both engines, also sluice/sluice-hyper).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-"50 256"}
INGRESSES=${INGRESSES:-0}
PROXIES=${PROXIES:-"sluice nginx"}
QUICK=${QUICK:-0}
NO_BUILD=${NO_BUILD:-0}
BACKEND_PORT=${BACKEND_PORT:-8900}
SLUICE_PORT=${SLUICE_PORT:-8901}
ADMIN_PORT=${ADMIN_PORT:-8902}
NGINX_PORT=${NGINX_PORT:-8903}
INGRESS_CLASS=${INGRESS_CLASS:-}
HTTPS=${HTTPS:-0}
MIDDLEWARES=${MIDDLEWARES:-0}
SLUICE_TLS_PORT=${SLUICE_TLS_PORT:-8904}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-8905}
H2_CONNS=${H2_CONNS:-"50"}
STREAMS=${STREAMS:-10}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-256}
ENGINE=${ENGINE:-native}
HTTPS_H1=${HTTPS_H1:-0}
WORKERS=${WORKERS:-1}
UNPINNED=${UNPINNED:-0}
ACCESS_LOG=${ACCESS_LOG:-0}
TRACING=${TRACING:-0}
NGINX_LOG_FORMAT=${NGINX_LOG_FORMAT:-json}
TRACING_RATIO=${TRACING_RATIO:-1.0}
SLUICE_HYPER_PORT=${SLUICE_HYPER_PORT:-8906}
SLUICE_HYPER_TLS_PORT=${SLUICE_HYPER_TLS_PORT:-8907}
SLUICE_HYPER_ADMIN_PORT=${SLUICE_HYPER_ADMIN_PORT:-8908}
TLS_HOST=bench.test

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --ingresses) INGRESSES=$2; shift ;;
        --proxies) PROXIES=$2; shift ;;
        --no-build) NO_BUILD=1 ;;
        --https) HTTPS=1 ;;
        --https-h1) HTTPS_H1=1 ;;
        --middlewares) MIDDLEWARES=1 ;;
        --engine) ENGINE=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        --unpinned) UNPINNED=1 ;;
        --access-log) ACCESS_LOG=1 ;;
        --tracing) TRACING=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then ROUNDS=1; DURATION=3; fi
[ "$HTTPS_H1" = 1 ] && HTTPS=1

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${BIN_DIR:-$TARGET_DIR/release}
OUT_DIR=${OUT_DIR:-$TARGET_DIR/load}
CLK_TCK=$(getconf CLK_TCK)

die() { echo "load.sh: $*" >&2; exit 1; }

# --- preflight ---------------------------------------------------------------
NGINX=$(command -v nginx || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if ! command -v wrk >/dev/null || { [[ " $PROXIES " == *" nginx "* ]] && [ -z "$NGINX" ]; }; then
    echo "load.sh needs wrk and nginx. Install them with:" >&2
    echo "    sudo apt-get install -y wrk nginx" >&2
    exit 1
fi
for tool in curl python3 getconf; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs for the pinning layout"
for p in $PROXIES; do
    case "$p" in sluice|sluice-hyper|nginx|direct) ;; *) die "unknown proxy '$p' in PROXIES" ;; esac
done
case "$ENGINE" in native|hyper) ;; *) die "ENGINE must be native or hyper, not '$ENGINE'" ;; esac
if [ "$ENGINE" = hyper ] && [[ " $PROXIES " == *" sluice "* ]] && [[ " $PROXIES " == *" sluice-hyper "* ]]; then
    die "with ENGINE=hyper, sluice and sluice-hyper would be the same engine"
fi
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, not '$WORKERS'"
# The layout: the client side (wrk or h2load, and the backend) on CPU 0, the
# proxies on CPU 1; nothing pinned with UNPINNED=1.
PIN_CLIENT=(taskset -c 0)
PIN_PROXY=(taskset -c 1)
if [ "$UNPINNED" = 1 ]; then
    PIN_CLIENT=()
    PIN_PROXY=()
else
    command -v taskset >/dev/null || die "missing taskset"
fi
# Each proxy's plain and TLS ports ("direct" is the backend, plain only).
declare -A HTTP_PORT=([sluice]=$SLUICE_PORT [sluice-hyper]=$SLUICE_HYPER_PORT
    [nginx]=$NGINX_PORT [direct]=$BACKEND_PORT)
declare -A TLS_PORT=([sluice]=$SLUICE_TLS_PORT [sluice-hyper]=$SLUICE_HYPER_TLS_PORT
    [nginx]=$NGINX_TLS_PORT)
# The HTTP/1.1 engine of each sluice variant.
declare -A SLUICE_ENGINE=([sluice]=$ENGINE [sluice-hyper]=hyper)
# DRIVER: wrk (plain HTTP, HTTPS_H1, and the HTTPS fallback) or h2load (HTTPS).
DRIVER=wrk
if [ "$HTTPS" = 1 ]; then
    command -v openssl >/dev/null || die "--https needs openssl"
    if [[ " $PROXIES " == *" direct "* ]]; then
        die "PROXIES=direct is not available with --https (the backend speaks plain HTTP)"
    fi
    if [ "$HTTPS_H1" = 1 ]; then
        DRIVER=wrk
    elif command -v h2load >/dev/null; then
        DRIVER=h2load
        CONNS=$H2_CONNS
    else
        echo "load: no h2load (apt-get install -y nghttp2-client); falling back to wrk over HTTPS (HTTP/1.1 over TLS)" >&2
    fi
fi
ports=("$BACKEND_PORT" "$SLUICE_PORT" "$ADMIN_PORT" "$NGINX_PORT" "$SLUICE_TLS_PORT" "$NGINX_TLS_PORT")
if [[ " $PROXIES " == *" sluice-hyper "* ]]; then
    ports+=("$SLUICE_HYPER_PORT" "$SLUICE_HYPER_TLS_PORT" "$SLUICE_HYPER_ADMIN_PORT")
fi
for port in "${ports[@]}"; do
    # Anything listening there, plain or TLS.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "something already listens on 127.0.0.1:$port; set the *_PORT variables"
    fi
done

# --- processes, stopped by PID on every exit ----------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-load.XXXXXX")
declare -A PID=()
cleanup() {
    local p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do
        # Bounded: anything still alive after ~5 s is killed outright.
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
    # Access logs of a run reach gigabytes: keep the first lines as a sample.
    local log
    for log in "$OUT_DIR"/*-access.log; do
        [ -f "$log" ] || continue
        head -n 1000 "$log" >"$log.sample" && rm -f "$log"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$NO_BUILD" != 1 ]; then
    echo "building release binaries (cargo build --release --bins)..."
    (cd "$REPO" && cargo build --release --bins)
fi
[ -x "$BIN/bench-backend" ] || die "no $BIN/bench-backend; build first"
mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.tsv
# h2load reports no percentiles: its rows carry the mean and the max latency.
LAT_COLS=p50_ms$'\t'p99_ms
[ "$DRIVER" = h2load ] && LAT_COLS=mean_ms$'\t'max_ms
printf 'round\tconns\tproxy\trps\t%s\tus_per_req\trss_mb\trequests\tnon2xx\terrors\n' "$LAT_COLS" >"$RESULTS"

# One self-signed certificate for TLS_HOST, served by both proxies.
CERT=$OUT_DIR/bench.crt
KEY=$OUT_DIR/bench.key
if [ "$HTTPS" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$KEY" -out "$CERT" -days 30 -subj "/CN=$TLS_HOST" \
        -addext "subjectAltName=DNS:$TLS_HOST" >"$OUT_DIR/openssl.log" 2>&1 ||
        { cat "$OUT_DIR/openssl.log" >&2; die "openssl could not make the certificate"; }
fi

# Host header for the measured requests: the middle of the generated hosts.
HOST_ARGS=()
if [ "$INGRESSES" -gt 0 ]; then
    HOST_ARGS=(-H "Host: h$(((INGRESSES + 1) / 2)).bench.test")
fi
BENCH_PATH=/
if [ "$MIDDLEWARES" = 1 ]; then
    [ "$HTTPS" = 1 ] && die "MIDDLEWARES=1 is an HTTP/1.1 (wrk) comparison; drop HTTPS=1"
    BENCH_PATH=/api/bench
    HOST_ARGS+=(-H "Authorization: Basic $(printf 'bench:bench' | base64)")
    # The htpasswd line both proxies check: bench / bench, {SHA}.
    BENCH_HTPASSWD="bench:{SHA}$(printf bench | python3 -c 'import sys,hashlib,base64; print(base64.b64encode(hashlib.sha1(sys.stdin.buffer.read()).digest()).decode())')"
fi

# Waits until URL answers 200 (through HOST_ARGS and any further curl
# arguments) while PID lives.
wait_ready() {
    local name=$1 url=$2 pid=$3 log=$4
    shift 4
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; die "$name exited during start-up"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${HOST_ARGS[@]}" "$@" "$url" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    tail -20 "$log" >&2
    die "$name not answering 200 on $url after 30 s (last: $code)"
}

# Waits until https://TLS_HOST:PORT/ answers 200 with the bench certificate
# (SNI TLS_HOST, verified against CERT), then says what curl --http2 negotiates.
wait_ready_tls() {
    local name=$1 port=$2 pid=$3 log=$4 url="https://$TLS_HOST:$2/" proto
    local tls_args=(--cacert "$CERT" --resolve "$TLS_HOST:$port:127.0.0.1")
    local saved=("${HOST_ARGS[@]}")
    HOST_ARGS=()
    wait_ready "$name (HTTPS with the $TLS_HOST certificate)" "$url" "$pid" "$log" "${tls_args[@]}"
    proto=$(curl -s -o /dev/null -w 'HTTP/%{http_version}' --http2 --max-time 2 "${tls_args[@]}" "$url" || true)
    HOST_ARGS=("${saved[@]}")
    echo "load: $name serves $url with the $TLS_HOST certificate ($proto to curl --http2)"
}

# --- configuration ------------------------------------------------------------
# One multi-document manifest: Service, EndpointSlice, the host-less Ingress
# `bench`, and INGRESSES more with hosts hI.bench.test.
write_manifests() {
    local dir=$1 class=""
    [ -n "$INGRESS_CLASS" ] && class="  ingressClassName: $INGRESS_CLASS"
    mkdir -p "$dir"
    {
        cat <<EOF
apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: default
spec:
  ports:
  - name: http
    port: 80
    targetPort: $BACKEND_PORT
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-bench
  namespace: default
  labels:
    kubernetes.io/service-name: backend
addressType: IPv4
ports:
- name: http
  port: $BACKEND_PORT
  protocol: TCP
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
EOF
        if [ "$HTTPS" = 1 ]; then
            tls_secret
            # A rule for TLS_HOST, which spec.tls covers, and the host-less one.
            ingress bench "$class" "  tls:
  - hosts: [$TLS_HOST]
    secretName: bench-tls" "$TLS_HOST" ""
        else
            ingress bench "$class" "" ""
        fi
        for i in $(seq "$INGRESSES"); do ingress "bench-$i" "$class" "" "h$i.bench.test"; done
        if [ "$MIDDLEWARES" = 1 ]; then bench_middlewares; fi
    } >"$dir/bench.yaml"
}

# The Middleware objects and users Secret of MIDDLEWARES=1.
bench_middlewares() {
    cat <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-users
  namespace: default
stringData:
  users: "$BENCH_HTPASSWD"
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip, namespace: default}
spec:
  stripPrefix:
    prefixes: [/api]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: hdrs, namespace: default}
spec:
  headers:
    customRequestHeaders: {X-Bench: "1"}
    customResponseHeaders: {X-Bench-Resp: "1"}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: auth, namespace: default}
spec:
  basicAuth:
    secret: bench-users
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: limit, namespace: default}
spec:
  rateLimit:
    average: 100000000
    burst: 100000000
EOF
}

# The kubernetes.io/tls Secret bench-tls: the bench certificate and key (PEM).
tls_secret() {
    cat <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-tls
  namespace: default
type: kubernetes.io/tls
stringData:
  tls.crt: |
$(sed 's/^/    /' "$CERT")
  tls.key: |
$(sed 's/^/    /' "$KEY")
EOF
}

# ingress NAME CLASS-LINE TLS-LINES HOST...: one rule per HOST ("" = host-less).
ingress() {
    local name=$1 class=$2 tls=$3 host
    shift 3
    cat <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: $name
  namespace: default
EOF
    if [ "$MIDDLEWARES" = 1 ] && [ "$name" = bench ]; then
        echo "  annotations:"
        echo "    traefik.ingress.kubernetes.io/router.middlewares: default-strip@kubernetescrd,default-hdrs@kubernetescrd,default-auth@kubernetescrd,default-limit@kubernetescrd"
    fi
    cat <<EOF
spec:
$class
EOF
    [ -z "$tls" ] || echo "$tls"
    echo "  rules:"
    for host in "$@"; do
        if [ -n "$host" ]; then printf '  - host: %s\n    http:\n' "$host"; else echo "  - http:"; fi
        cat <<EOF
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: backend
            port:
              number: 80
EOF
    done
}

write_nginx_conf() {
    local conf=$1 prefix=$2 i
    mkdir -p "$prefix/logs" "$prefix/tmp"
    local location="location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
    local limit_zone=""
    if [ "$MIDDLEWARES" = 1 ]; then
        printf '%s\n' "$BENCH_HTPASSWD" >"$prefix/htpasswd"
        # nginx's worker (not root) reads the file on each request.
        chmod 755 "$TMP" "$prefix"
        chmod 644 "$prefix/htpasswd"
        limit_zone="limit_req_zone \$binary_remote_addr zone=bench:10m rate=100000000r/s;"
        location="location / { rewrite ^/api(/.*)\$ \$1 break; proxy_set_header X-Bench 1; add_header X-Bench-Resp 1; auth_basic bench; auth_basic_user_file $prefix/htpasswd; limit_req zone=bench burst=100000000 nodelay; proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
    fi
    local nginx_access_log="access_log off;"
    if [ "$ACCESS_LOG" = 1 ] && [ "$NGINX_LOG_FORMAT" = combined ]; then
        nginx_access_log="access_log $OUT_DIR/nginx-access.log combined buffer=64k;"
    elif [ "$ACCESS_LOG" = 1 ]; then
        # The same fields sluice writes (Traefik's), as nginx variables.
        local fields='{"ClientAddr":"$remote_addr:$remote_port","ClientHost":"$remote_addr","ClientPort":"$remote_port","ClientUsername":"$remote_user","DownstreamContentSize":"$body_bytes_sent","DownstreamStatus":"$status","Duration":"$request_time","OriginContentSize":"$upstream_response_length","OriginDuration":"$upstream_response_time","OriginStatus":"$upstream_status","Overhead":"0","RequestAddr":"$http_host","RequestContentSize":"$content_length","RequestCount":"$connection_requests","RequestHost":"$host","RequestMethod":"$request_method","RequestPath":"$request_uri","RequestPort":"$server_port","RequestProtocol":"$server_protocol","RequestScheme":"$scheme","RetryAttempts":"0","RouterName":"bench","ServiceAddr":"$upstream_addr","ServiceName":"default/backend","ServiceURL":"http://$upstream_addr","StartLocal":"$time_iso8601","StartUTC":"$time_iso8601","entryPointName":"web","level":"info","msg":"","time":"$time_iso8601"}'
        nginx_access_log="log_format traefikjson escape=json '$fields'; access_log $OUT_DIR/nginx-access.log traefikjson buffer=64k;"
    fi
    {
        cat <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile 8192;
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
    $nginx_access_log
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    $limit_zone
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive $NGINX_KEEPALIVE;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT default_server;
        server_name _;
        $location
    }
EOF
        for i in $(seq "$INGRESSES"); do
            echo "    server { listen 127.0.0.1:$NGINX_PORT; server_name h$i.bench.test; $location }"
        done
        if [ "$HTTPS" = 1 ]; then
            # nginx >= 1.25.1 spells HTTP/2 `http2 on;`; older ones `listen ... ssl http2;`.
            local listen="listen 127.0.0.1:$NGINX_TLS_PORT ssl" h2="http2 on;"
            if ! printf '%s\n' 1.25.1 "$(nginx_version)" | sort -C -V; then
                listen="$listen http2"
                h2=""
            fi
            cat <<EOF
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    server {
        $listen default_server;
        $h2
        server_name $TLS_HOST;
        $location
    }
EOF
            for i in $(seq "$INGRESSES"); do
                echo "    server { $listen; $h2 server_name h$i.bench.test; $location }"
            done
        fi
        echo "}"
    } >"$conf"
}

# "1.22.1" from `nginx -v`.
nginx_version() {
    "$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p'
}

# --- measurement helpers --------------------------------------------------------
# The PID and all its descendants.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            }
            for (p in keep) print p
        }'
}

# utime + stime, in clock ticks, summed over the tree. Fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() {
    local p total=0 t
    for p in $(tree_pids "$1"); do
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# Peak RSS (VmHWM) of the tree in MB.
peak_rss_mb() {
    local p
    for p in $(tree_pids "$1"); do cat "/proc/$p/status" 2>/dev/null || true; done |
        awk '/^VmHWM:/ { kb += $2 } END { printf "%.1f", kb / 1024 }'
}

# Resets VmHWM (Linux >= 4.0) so each cell reports its own peak.
reset_peak_rss() {
    local p
    for p in $(tree_pids "$1"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}

# wrk latency like "637.00us", "1.23ms" or "2.01s" -> milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# One cell: warm-up, then the measured run; appends a row to RESULTS.
run_cell() {
    local round=$1 conns=$2 proxy=$3 port pid log
    port=${HTTP_PORT[$proxy]}
    pid=${PID[$proxy]:-}
    if [ "$DRIVER" = h2load ]; then
        run_cell_h2load "$@"
        return
    fi
    local url="http://127.0.0.1:$port$BENCH_PATH" req_args=("${HOST_ARGS[@]}")
    if [ "$HTTPS" = 1 ]; then
        # wrk over TLS: the IP goes out as SNI, bench.test as Host.
        port=${TLS_PORT[$proxy]}
        url="https://127.0.0.1:$port/"
        req_args=(-H "Host: $TLS_HOST")
    fi
    log=$OUT_DIR/wrk-r$round-c$conns-$proxy.txt
    [ -n "$pid" ] && reset_peak_rss "$pid"
    timeout $((WARMUP + 30)) "${PIN_CLIENT[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" "${req_args[@]}" "$url" >/dev/null
    local before=0 after=0
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    timeout $((DURATION + 30)) "${PIN_CLIENT[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${req_args[@]}" "$url" >"$log"
    [ -n "$pid" ] && after=$(cpu_ticks "$pid")
    local rps p50 p99 reqs non2xx errors us rss=nan
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$log")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$log")")
    reqs=$(awk '/requests in/ { print $1 }' "$log")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")
    errors=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$log")
    if [ -z "$rps" ] || [ -z "$reqs" ]; then cat "$log" >&2; die "could not read wrk output ($log)"; fi
    us=nan
    if [ -n "$pid" ] && [ "$reqs" -gt 0 ]; then
        us=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
        rss=$(peak_rss_mb "$pid")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$conns" "$proxy" "$rps" \
        "$p50" "$p99" "$us" "$rss" "$reqs" "${non2xx:-0}" "${errors:-0}" >>"$RESULTS"
    printf '  round %s  %4sc  %-12s  %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6s us/req  %6s MB%s\n' \
        "$round" "$conns" "$proxy" "$rps" "$p50" "$p99" "$us" "$rss" \
        "$([ "${non2xx:-0}${errors:-0}" != 00 ] && echo "  (non-2xx ${non2xx:-0}, socket errors ${errors:-0})")"
}

# An HTTPS cell with h2load: one run of WARMUP + DURATION whose warm-up ends
# with "Main benchmark duration is started", where the proxy's CPU count starts
# (so the TLS handshakes stay out of it); h2load counts only the main duration.
run_cell_h2load() {
    local round=$1 conns=$2 proxy=$3 port pid cell
    port=${TLS_PORT[$proxy]}
    pid=${PID[$proxy]}
    cell=${conns}x$STREAMS
    local log=$OUT_DIR/h2load-r$round-c$cell-$proxy.txt
    reset_peak_rss "$pid"
    timeout $((WARMUP + DURATION + 30)) "${PIN_CLIENT[@]}" h2load -t1 -c"$conns" -m"$STREAMS" \
        -D"$DURATION" --warm-up-time="$WARMUP" --connect-to="127.0.0.1:$port" \
        "https://$TLS_HOST:$port/" >"$log" 2>&1 &
    local h2pid=$! started=0 rc=0 before after
    for _ in $(seq $(((WARMUP + 30) * 100))); do
        if grep -q '^Main benchmark duration is started' "$log"; then started=1; break; fi
        kill -0 "$h2pid" 2>/dev/null || break
        sleep 0.01
    done
    before=$(cpu_ticks "$pid")
    wait "$h2pid" || rc=$?
    after=$(cpu_ticks "$pid")
    if [ "$started" != 1 ] || [ "$rc" != 0 ]; then
        cat "$log" >&2
        die "h2load failed (exit $rc, main duration started: $started; $log)"
    fi
    local rps mean max reqs non2xx errors us rss proto
    rps=$(awk '/^finished in/ { print $4 }' "$log")
    mean=$(to_ms "$(awk '/^time for request:/ { print $6 }' "$log")")
    max=$(to_ms "$(awk '/^time for request:/ { print $5 }' "$log")")
    reqs=$(awk '/^requests:/ { print $6 }' "$log")
    # h2load's "failed" takes in "errored" and "timeout"; count whichever is more.
    errors=$(awk '/^requests:/ { e = $12 + $14; print ($10 > e ? $10 : e) }' "$log")
    non2xx=$(awk '/^status codes:/ { print $5 + $7 + $9 }' "$log")
    proto=$(awk -F': ' '/^TLS Protocol:/ { v = $2 } /^Cipher:/ { c = $2 } /^Application protocol:/ { a = $2 }
        END { print v "/" c "/" a }' "$log")
    if [ -z "$rps" ] || [ -z "$reqs" ]; then cat "$log" >&2; die "could not read h2load output ($log)"; fi
    [[ "$proto" == */h2 ]] || { cat "$log" >&2; die "h2load did not negotiate h2 with $proxy ($proto)"; }
    us=nan rss=nan
    if [ "$reqs" -gt 0 ]; then
        us=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
        rss=$(peak_rss_mb "$pid")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$cell" "$proxy" "$rps" \
        "$mean" "$max" "$us" "$rss" "$reqs" "${non2xx:-0}" "${errors:-0}" >>"$RESULTS"
    printf '  round %s  %sc  %-12s  %9.0f req/s  mean %7.3f ms  max %7.3f ms  %6s us/req  %6s MB  %s%s\n' \
        "$round" "$cell" "$proxy" "$rps" "$mean" "$max" "$us" "$rss" "$proto" \
        "$([ "${non2xx:-0}${errors:-0}" != 00 ] && echo "  (non-2xx ${non2xx:-0}, failed/errored ${errors:-0})")"
}

# --- start everything -----------------------------------------------------------
"${PIN_CLIENT[@]}" "$BIN/bench-backend" "127.0.0.1:$BACKEND_PORT" >"$OUT_DIR/backend.log" 2>&1 &
PID[backend]=$!
saved_host_args=("${HOST_ARGS[@]}")
HOST_ARGS=()
wait_ready backend "http://127.0.0.1:$BACKEND_PORT/" "${PID[backend]}" "$OUT_DIR/backend.log"
HOST_ARGS=("${saved_host_args[@]}")

# start_sluice NAME ADMIN-PORT: the sluice variant NAME (sluice, sluice-hyper)
# on its ports, with its HTTP/1.1 engine; all variants read the same manifests.
start_sluice() {
    local name=$1 admin=$2 args=()
    [ "$HTTPS" = 1 ] && args+=(--default-cert-secret default/bench-tls)
    [ "$ACCESS_LOG" = 1 ] && args+=(--access-log "$OUT_DIR/$name-access.log" --access-log-format json)
    [ "$TRACING" = 1 ] && args+=(--tracing-otlp-endpoint "http://127.0.0.1:$BACKEND_PORT" --tracing-sample-ratio "$TRACING_RATIO")
    "${PIN_PROXY[@]}" "$BIN/sluice" --manifests "$TMP/manifests" --workers "$WORKERS" \
        --http1-engine "${SLUICE_ENGINE[$name]}" "${args[@]}" \
        --http-addr "127.0.0.1:${HTTP_PORT[$name]}" --https-addr "127.0.0.1:${TLS_PORT[$name]}" \
        --admin-addr "127.0.0.1:$admin" >"$OUT_DIR/$name.log" 2>&1 &
    PID[$name]=$!
    wait_ready "$name" "http://127.0.0.1:${HTTP_PORT[$name]}/" "${PID[$name]}" "$OUT_DIR/$name.log"
    [ "$HTTPS" = 1 ] && wait_ready_tls "$name" "${TLS_PORT[$name]}" "${PID[$name]}" "$OUT_DIR/$name.log"
    return 0
}

# The SHA-256 fingerprint of the certificate PORT presents to SNI 127.0.0.1
# (what wrk sends for https://127.0.0.1:PORT/), or of CERT without a port.
cert_fingerprint() {
    if [ $# -eq 0 ]; then
        openssl x509 -in "$CERT" -noout -fingerprint -sha256
        return
    fi
    timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername 127.0.0.1 </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
}

# Processes and threads of each proxy's tree (what cpu_ticks sums over).
describe_tree() {
    local name=$1 pid=$2 procs threads
    procs=$(tree_pids "$pid" | wc -l)
    threads=$(for p in $(tree_pids "$pid"); do ps -o nlwp= -p "$p" 2>/dev/null || true; done | awk '{ n += $1 } END { print n + 0 }')
    echo "load: $name (pid $pid): $procs process(es), $threads thread(s), CPU summed over all of them"
}

if [[ " $PROXIES " == *" sluice"* ]]; then
    [ -x "$BIN/sluice" ] || die "no $BIN/sluice; build first"
    write_manifests "$TMP/manifests"
    cp "$TMP/manifests/bench.yaml" "$OUT_DIR/"
fi
if [[ " $PROXIES " == *" sluice "* ]]; then start_sluice sluice "$ADMIN_PORT"; fi
if [[ " $PROXIES " == *" sluice-hyper "* ]]; then start_sluice sluice-hyper "$SLUICE_HYPER_ADMIN_PORT"; fi
if [[ " $PROXIES " == *" nginx "* ]]; then
    write_nginx_conf "$TMP/nginx/nginx.conf" "$TMP/nginx"
    cp "$TMP/nginx/nginx.conf" "$OUT_DIR/"
    "${PIN_PROXY[@]}" "$NGINX" -e "$TMP/nginx/logs/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
        >"$OUT_DIR/nginx.log" 2>&1 &
    PID[nginx]=$!
    wait_ready nginx "http://127.0.0.1:$NGINX_PORT/" "${PID[nginx]}" "$OUT_DIR/nginx.log"
    [ "$HTTPS" = 1 ] && wait_ready_tls nginx "$NGINX_TLS_PORT" "${PID[nginx]}" "$OUT_DIR/nginx.log"
    # All workers up before the first cell, so the tree is complete.
    for _ in $(seq 50); do
        [ "$(tree_pids "${PID[nginx]}" | wc -l)" -gt "$WORKERS" ] && break
        sleep 0.1
    done
fi
for p in $PROXIES; do
    if [ -n "${PID[$p]:-}" ]; then describe_tree "$p" "${PID[$p]}"; fi
done

# wrk over TLS sends 127.0.0.1 as SNI: every proxy must answer it with CERT.
if [ "$HTTPS" = 1 ] && [ "$DRIVER" = wrk ]; then
    want=$(cert_fingerprint)
    for p in $PROXIES; do
        got=$(cert_fingerprint "${TLS_PORT[$p]}")
        [ "$got" = "$want" ] ||
            die "$p presents another certificate than $CERT to SNI 127.0.0.1 (got '${got:-nothing}', want '$want')"
        echo "load: $p presents the $TLS_HOST certificate to SNI 127.0.0.1 (${want#*=})"
    done
fi

read -r -a proxy_list <<<"$PROXIES"
mode=""
case "$HTTPS/$DRIVER" in
    1/h2load) mode="HTTPS: h2load, HTTP/2, $STREAMS streams per connection, SNI and :authority $TLS_HOST; " ;;
    1/wrk) mode="HTTPS: wrk, HTTP/1.1 over TLS, Host $TLS_HOST, SNI 127.0.0.1, the $TLS_HOST certificate from all; " ;;
esac
layout="proxies pinned to CPU 1, client and backend to CPU 0"
[ "$UNPINNED" = 1 ] && layout="nothing pinned"
engines=""
for p in $PROXIES; do
    if [ -n "${SLUICE_ENGINE[$p]:-}" ]; then engines+="${engines:+, }$p --http1-engine ${SLUICE_ENGINE[$p]}"; fi
done
echo "load: $WORKERS worker(s) per proxy, $layout${engines:+; $engines}"
echo "load: ${mode}proxies [$PROXIES], conns [$CONNS], $ROUNDS round(s) of ${WARMUP}s warm-up + ${DURATION}s," \
    "$INGRESSES extra ingress(es)${HOST_ARGS[*]:+, ${HOST_ARGS[*]}}; results in $OUT_DIR"
for round in $(seq "$ROUNDS"); do
    for conns in $CONNS; do
        # Rotate the order each round: A B, then B A, ...
        n=${#proxy_list[@]}
        for k in $(seq 0 $((n - 1))); do
            run_cell "$round" "$conns" "${proxy_list[$(((k + round - 1) % n))]}"
        done
    done
done

# --- summary ----------------------------------------------------------------------
# Plain-text medians and paired ratios, then one markdown table per cell.
engine_args=()
for p in $PROXIES; do
    if [ -n "${SLUICE_ENGINE[$p]:-}" ]; then engine_args+=("$p=${SLUICE_ENGINE[$p]}"); fi
done
python3 - "$RESULTS" "$PROXIES" "${engine_args[@]}" <<'PY'
import csv, math, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
proxies = sys.argv[2].split()
# "sluice=native", "sluice-hyper=hyper": the HTTP/1.1 engine of each sluice variant.
engines = dict(a.split("=", 1) for a in sys.argv[3:])
# Cells are "50" (connections) or, with h2load, "50x10" (connections x streams).
conns = sorted({r["conns"] for r in rows}, key=lambda c: (int(c.split("x")[0]), c))
rounds = sorted({r["round"] for r in rows}, key=int)
# wrk rows carry p50_ms and p99_ms; h2load rows mean_ms and max_ms.
latency = [(k, k.replace("_ms", " ms"), "{:.3f}") for k in rows[0] if k.endswith("_ms")] if rows else []
figures = [("rps", "req/s", "{:.0f}")] + latency + [("us_per_req", "us/req", "{:.2f}"), ("rss_mb", "RSS MB", "{:.1f}")]
width = max([7] + [len(p) for p in proxies])

def num(v):
    try:
        x = float(v)
    except ValueError:
        return None
    return None if math.isnan(x) else x

def spread(values, fmt, dash="-"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}{dash}{fmt.format(max(values))})"

def ratios(p, q, c, k):
    """The per-round ratios p/q of figure k in cell c (rounds where both have it)."""
    out = []
    for rnd in rounds:
        a = [num(r[k]) for r in rows if r["proxy"] == p and r["conns"] == c and r["round"] == rnd]
        b = [num(r[k]) for r in rows if r["proxy"] == q and r["conns"] == c and r["round"] == rnd]
        if a and b and a[0] is not None and b[0]:
            out.append(a[0] / b[0])
    return out

def agree(values):
    """'*' when every round's ratio is on the same side of 1."""
    return "*" if len(values) > 1 and (all(x > 1 for x in values) or all(x < 1 for x in values)) else ""

def paired_lines(p, q):
    for c in conns:
        parts = []
        for k, label, _ in figures:
            rs = ratios(p, q, c, k)
            parts.append(f"{label} {spread(rs, '{:.2f}')}{agree(rs)}" if rs else f"{label} -")
        print(f"{p}/{q} @{c}c: " + "; ".join(parts))

print("\nmedians (min-max) over rounds")
head = f"{'proxy':<{width}} {'conns':>5}  " + "  ".join(f"{label:>24}" for _, label, _ in figures)
print(head)
for c in conns:
    for p in proxies:
        cell = [r for r in rows if r["proxy"] == p and r["conns"] == c]
        line = f"{p:<{width}} {c:>5}  " + "  ".join(f"{spread([num(r[k]) for r in cell], fmt):>24}" for k, _, fmt in figures)
        print(line)
bad = [r for r in rows if r["non2xx"] not in ("", "0") or r["errors"] not in ("", "0")]
for r in bad:
    print(f"warning: round {r['round']} {r['proxy']} @{r['conns']}c: non-2xx {r['non2xx']}, errors {r['errors']}")

if "nginx" in proxies and len(proxies) > 1:
    print("\npaired per-round ratio X/nginx: median (min-max); '*' = every round on the same side of 1")
    for p in [p for p in proxies if p != "nginx"]:
        paired_lines(p, "nginx")
if "sluice" in proxies and "sluice-hyper" in proxies:
    print(f"\npaired per-round ratio sluice ({engines.get('sluice')}) / sluice-hyper: median (min-max)")
    paired_lines("sluice", "sluice-hyper")

# Markdown: per cell, medians (min-max) of each proxy, then the paired ratios of
# each sluice variant to nginx (and of sluice to sluice-hyper).
sys.stdout.reconfigure(encoding="utf-8")
def name(p):
    return f"{p} ({engines[p]})" if p in engines else p
md = [("rps", "req/s", "{:.0f}")] + [(k, label, fmt) for k, label, fmt in latency] + [
    ("us_per_req", "CPU µs/req", "{:.2f}"), ("rss_mb", "peak RSS MB", "{:.1f}")]
# The ratio columns: µs/req and the tail latency (wrk p99; h2load mean and max), then req/s.
ratio_cols = [("us_per_req", "µs/req")] + [(k, label) for k, label, _ in latency if k != "p50_ms"] + [("rps", "req/s")]
pairs = [(p, "nginx") for p in proxies if p.startswith("sluice") and "nginx" in proxies]
if "sluice" in proxies and "sluice-hyper" in proxies:
    pairs.append(("sluice", "sluice-hyper"))
print(f"\n## Results: medians (min–max) over {len(rounds)} round(s)")
for c in conns:
    print(f"\n### {c} connections" if "x" not in c else f"\n### {c.replace('x', ' connections × ')} streams")
    print()
    print("| proxy | " + " | ".join(label for _, label, _ in md) + " |")
    print("|---|" + "---:|" * len(md))
    for p in proxies:
        cell = [r for r in rows if r["proxy"] == p and r["conns"] == c]
        print(f"| {name(p)} | " + " | ".join(spread([num(r[k]) for r in cell], fmt, "–") for k, _, fmt in md) + " |")
    if pairs:
        print()
        print("| paired per-round ratio | " + " | ".join(label for _, label in ratio_cols) + " |")
        print("|---|" + "---:|" * len(ratio_cols))
        for p, q in pairs:
            cols = []
            for k, _ in ratio_cols:
                rs = ratios(p, q, c, k)
                cols.append(f"{spread(rs, '{:.2f}', '–')}{agree(rs)}" if rs else "-")
            print(f"| {name(p)} / {name(q)} | " + " | ".join(cols) + " |")
if pairs:
    print("\nRatios: median (min–max) of the per-round ratios; * = every round on the same side of 1.")
PY
