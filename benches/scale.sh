#!/usr/bin/env bash
# Config scale: how fast sluice serves a change at 10,000 Ingresses, and what
# the table costs in memory (issue 4's "Scale" targets; the method of
# /work/shared/bench-method.md "Config scale": write the change, poll until the
# new route answers 200 on a fresh connection, median of several changes, RSS
# after each).
#
# 1. benches/gen_cluster.py writes an Altinn-shaped cluster into a temp dir:
#    INGRESSES Ingresses, 90% as Prefix paths /orgO/appA on 5 shared hosts
#    (apps0..apps4.bench.test, 90 apps per org), 10% with hosts of their own
#    (svcN.bench.test, path /); one Service each and one EndpointSlice each with
#    2 ready endpoints (127.0.0.1 and 127.0.0.2 on one of the bench-backend
#    ports), so 2 x INGRESSES endpoints. Layout of a GitOps folder:
#    apps/orgO.yaml = one org's 90 Ingresses + Services + EndpointSlices (100
#    files at 10,000), svc/svc-K.yaml = 100 own-host ones each; new files go to
#    added/.
# 2. Starts the bench-backends (CPU 0) and sluice --workers 1 (CPU 1); reports
#    start -> /readyz 200, start -> first 200 on a sample route, and VmRSS /
#    VmHWM once ready.
# 3. CHANGES rounds of four changes (interleaved add, edit, eps, delete), each written
#    atomically: the new file is written and fsynced in a staging directory
#    beside (not inside) the watched one, the clock starts, then rename(2) puts
#    it in place. The changed route is then polled every 2 ms, each request on
#    a new connection (Python http.client, Connection: close), until it answers
#    200 (cap 10 s, else counted as a failure):
#      add   a new file with an Ingress /orgO/addedR on a shared host + its
#            Service + a live EndpointSlice (404 before)
#      edit  one Ingress's path /orgO/appA -> /orgO/appA-v2 in its org file
#            (the new path answered 404 before)
#      eps   an EndpointSlice goes from a dead port (127.0.0.1:1 -> 502) to a
#            live one, in its org file; EPS_MODE=notready instead flips
#            ready: false (503) to ready: true
#      delete the file this round's add wrote is removed (unlink(2)); the
#            route is polled until it answers 404
#    After each change: SETTLE seconds, then sluice's VmRSS; sluice's own log
#    (JSON) gives how long the reload took inside (file load / compile or
#    endpoints-only update).
# 4. nginx (NGINX=1, the default when nginx is installed): the same cluster as
#    nginx.conf (one server block per host, one location per path, one
#    upstream per Service with its 2 endpoints), worker_processes 1 on CPU 1;
#    start -> first 200, RSS of master + workers, then NGINX_CHANGES added
#    locations: conf written (atomic rename) -> `nginx -s reload` -> first 200.
#
# Needs: python3, curl, taskset (2+ CPUs for the pinning; with 1 CPU nothing
# is pinned); nginx for the comparison (apt-get install -y nginx).
#
# Usage: benches/scale.sh [--quick] [--no-build] [--no-nginx]
# Environment:
#   INGRESSES=10000 CHANGES=20   (QUICK=1: 1000 Ingresses, 5 changes per kind)
#   NGINX=1|0 NGINX_CHANGES=5 EPS_MODE=dead|notready SETTLE=0.3 (s)
#   BACKENDS=4                   (bench-backend ports; each on 127.0.0.1 and .2)
#   SLUICE_PORT=8910 SLUICE_TLS_PORT=8911 ADMIN_PORT=8912 NGINX_PORT=8913
#   BACKEND_PORT=8920            (the first backend port)
#   NO_BUILD=1                   (use the release binaries already built)
#   BIN_DIR=<target>/release  OUT_DIR=<target>/scale  KEEP=1 (keep the temp dir)
# Results: OUT_DIR/sluice-changes.tsv, nginx-changes.tsv, *-start.json, logs.
set -euo pipefail

QUICK=${QUICK:-0}
NO_BUILD=${NO_BUILD:-0}
CHANGES=${CHANGES:-}
INGRESSES=${INGRESSES:-}
NGINX_CHANGES=${NGINX_CHANGES:-5}
EPS_MODE=${EPS_MODE:-dead}
SETTLE=${SETTLE:-0.3}
BACKENDS=${BACKENDS:-4}
SLUICE_PORT=${SLUICE_PORT:-8910}
SLUICE_TLS_PORT=${SLUICE_TLS_PORT:-8911}
ADMIN_PORT=${ADMIN_PORT:-8912}
NGINX_PORT=${NGINX_PORT:-8913}
BACKEND_PORT=${BACKEND_PORT:-8920}
KEEP=${KEEP:-0}

NGINX_BIN=$(command -v nginx || true)
[ -z "$NGINX_BIN" ] && [ -x /usr/sbin/nginx ] && NGINX_BIN=/usr/sbin/nginx
if [ -n "$NGINX_BIN" ]; then NGINX=${NGINX:-1}; else NGINX=${NGINX:-0}; fi

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) NO_BUILD=1 ;;
        --no-nginx) NGINX=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    INGRESSES=${INGRESSES:-1000}
    CHANGES=${CHANGES:-5}
fi
INGRESSES=${INGRESSES:-10000}
CHANGES=${CHANGES:-20}

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${BIN_DIR:-$TARGET_DIR/release}
OUT_DIR=${OUT_DIR:-$TARGET_DIR/scale}
GEN=$REPO/benches/gen_cluster.py

die() { echo "scale.sh: $*" >&2; exit 1; }
# shellcheck source=benches/bench-lib.sh
. "$REPO/benches/bench-lib.sh"

# --- preflight ---------------------------------------------------------------
for tool in curl python3 taskset; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
if [ "$NGINX" = 1 ] && [ -z "$NGINX_BIN" ]; then
    die "NGINX=1 but no nginx (apt-get install -y nginx), or run with NGINX=0"
fi
[[ "$EPS_MODE" == dead || "$EPS_MODE" == notready ]] || die "EPS_MODE is dead or notready"
# Proxies on CPU 1, backends and the poller on CPU 0 (bench-method.md).
pin_cpus scale
PORTS=()
for i in $(seq 0 $((BACKENDS - 1))); do PORTS+=($((BACKEND_PORT + i))); done
require_free_ports "$SLUICE_PORT" "$SLUICE_TLS_PORT" "$ADMIN_PORT" "$NGINX_PORT" "${PORTS[@]}"

# --- processes, stopped by PID on every exit ----------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-scale.XXXXXX")
declare -A PID=()
cleanup() {
    stop_all "${PID[@]}"
    if [ "$KEEP" = 1 ]; then echo "scale: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prepare_binaries
rm -f "$OUT_DIR"/sluice-changes.tsv "$OUT_DIR"/nginx-changes.tsv "$OUT_DIR"/sluice-start.json \
    "$OUT_DIR"/nginx-start.json

COMMON=(--ingresses "$INGRESSES" --changes "$CHANGES" --ports "${PORTS[*]}" --eps-mode "$EPS_MODE")
gen() { "${CLIENT_CPU[@]}" python3 "$GEN" "$@" "${COMMON[@]}"; }

# --- the cluster ----------------------------------------------------------------
MANIFESTS=$TMP/manifests
STAGE=$TMP/stage
mkdir -p "$MANIFESTS" "$STAGE"
echo "scale: generating the cluster into $MANIFESTS"
echo "  $(gen generate --dir "$MANIFESTS")"

# --- backends -------------------------------------------------------------------
start_backends "${PORTS[@]}"
for i in "${!BACKEND_PIDS[@]}"; do PID[backend-$i]=${BACKEND_PIDS[$i]}; done

# --- sluice ---------------------------------------------------------------------
echo "scale: sluice on $INGRESSES Ingresses"
SLUICE_LOG=$OUT_DIR/sluice.log
t0=$EPOCHREALTIME
"${PROXY_CPU[@]}" "$BIN/sluice" --manifests "$MANIFESTS" --workers 1 --log-format json \
    --http-addr "127.0.0.1:$SLUICE_PORT" --https-addr "127.0.0.1:$SLUICE_TLS_PORT" \
    --admin-addr "127.0.0.1:$ADMIN_PORT" >"$SLUICE_LOG" 2>&1 &
PID[sluice]=$!
gen startup --t0 "$t0" --pid "${PID[sluice]}" --http "$SLUICE_PORT" --admin "$ADMIN_PORT" \
    --out "$OUT_DIR/sluice-start.json" ||
    { tail -20 "$SLUICE_LOG" >&2; die "sluice did not get ready"; }
kill -0 "${PID[sluice]}" 2>/dev/null || { tail -20 "$SLUICE_LOG" >&2; die "sluice exited"; }

echo "scale: $CHANGES rounds of (add, edit, eps, delete) changes"
gen drive --dir "$MANIFESTS" --stage "$STAGE" --http "$SLUICE_PORT" --pid "${PID[sluice]}" \
    --log "$SLUICE_LOG" --settle "$SETTLE" --out "$OUT_DIR/sluice-changes.tsv"
stop_pid "${PID[sluice]}"
unset 'PID[sluice]'

# --- nginx ----------------------------------------------------------------------
if [ "$NGINX" = 1 ]; then
    echo "scale: nginx ($("$NGINX_BIN" -v 2>&1 | sed 's/.*: //')) on the same cluster"
    NGX=$TMP/nginx
    mkdir -p "$NGX"
    gen nginx-conf --prefix "$NGX" --conf "$NGX/nginx.conf" --nginx-port "$NGINX_PORT"
    "$NGINX_BIN" -t -q -e "$NGX/logs/error.log" -p "$NGX" -c "$NGX/nginx.conf" ||
        die "nginx -t rejects the generated config ($NGX/logs/error.log)"
    t0=$EPOCHREALTIME
    "${PROXY_CPU[@]}" "$NGINX_BIN" -e "$NGX/logs/error.log" -p "$NGX" -c "$NGX/nginx.conf" \
        >"$OUT_DIR/nginx.log" 2>&1 &
    PID[nginx]=$!
    gen startup --name nginx --t0 "$t0" --pid "${PID[nginx]}" --tree --http "$NGINX_PORT" \
        --out "$OUT_DIR/nginx-start.json" ||
        { tail -20 "$NGX/logs/error.log" >&2; die "nginx did not get ready"; }
    echo "scale: $NGINX_CHANGES nginx reloads, each adding a location"
    gen drive-nginx --nginx "$NGINX_BIN" --prefix "$NGX" --conf "$NGX/nginx.conf" --stage "$STAGE" \
        --nginx-port "$NGINX_PORT" --pid "${PID[nginx]}" --nginx-changes "$NGINX_CHANGES" \
        --settle "$SETTLE" --out "$OUT_DIR/nginx-changes.tsv" ||
        { tail -20 "$NGX/logs/error.log" >&2; die "nginx changes failed"; }
    cp "$NGX/logs/error.log" "$OUT_DIR/nginx-error.log" 2>/dev/null || true
    stop_pid "${PID[nginx]}"
    unset 'PID[nginx]'
fi

# --- summary --------------------------------------------------------------------
gen summary --sluice-start "$OUT_DIR/sluice-start.json" --sluice-tsv "$OUT_DIR/sluice-changes.tsv" \
    --nginx-start "$OUT_DIR/nginx-start.json" --nginx-tsv "$OUT_DIR/nginx-changes.tsv" |
    tee "$OUT_DIR/summary.txt"
echo
echo "scale: details in $OUT_DIR"
