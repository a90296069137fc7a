#!/usr/bin/env bash
# Endpoint churn under load (issue 14): while wrk drives one route, its
# EndpointSlices are rewritten RATE times a second for DURATION seconds, as a
# rolling Deployment's pods come and go; the same wrk run without churn is the
# baseline. Reports, per round and as medians: requests/s, p99, failed
# requests (socket errors + non-2xx) and how many endpoint-only publications
# sluice made (sluice_endpoint_updates_total).
#
# 1. benches/gen_cluster.py writes an Altinn-shaped cluster of INGRESSES
#    Ingresses (as benches/scale.sh does) plus the churned app: Ingress
#    churn.bench.test/ -> Service churn -> EndpointSlices churn-0 and churn-1,
#    each one ready endpoint, in churn/churn.yaml. Every churn write moves both
#    endpoints on to the next bench-backend addresses (BACKENDS ports on
#    127.0.0.1 and 127.0.0.2), so the endpoint set of every write differs from
#    the last one's, and every address ever listed is live: any failed
#    request is sluice's fault.
# 2. bench-backends and wrk on CPU 0, sluice --workers 1 on CPU 1
#    (bench-method.md); each write is an atomic rename, paced on a fixed
#    schedule.
# 3. ROUNDS rounds of three runs, the order reversed every other round, each
#    run WARMUP s of wrk first (not measured), then DURATION s measured:
#      quiet  no writes
#      decoy  the same writes into a directory sluice does not watch: what
#             the writer itself costs the client CPU (wrk and the backends
#             share CPU 0 with it), so `churn - decoy` is sluice's part
#      churn  the writes into the watched directory
#
# Needs: wrk, curl, python3, taskset (apt-get install -y wrk curl python3).
# Usage: benches/churn.sh [--quick] [--no-build]
# Environment:
#   INGRESSES=10000 ROUNDS=3 DURATION=20 WARMUP=2 RATE=100 CONNS=50 BACKENDS=4
#   QUICK=1                 (1,000 Ingresses, 1 round of 5 s: a smoke test)
#   NO_BUILD=1 BIN_DIR=<target>/release OUT_DIR=<target>/churn KEEP=1
#   SLUICE_PORT=8940 SLUICE_TLS_PORT=8941 ADMIN_PORT=8942 BACKEND_PORT=8950
# Results: OUT_DIR/results.tsv (one line per run), the wrk outputs, sluice.log.
set -euo pipefail

QUICK=${QUICK:-0}
NO_BUILD=${NO_BUILD:-0}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) NO_BUILD=1 ;;
        *) echo "churn.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    INGRESSES=${INGRESSES:-1000}; ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-5}
fi
INGRESSES=${INGRESSES:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
RATE=${RATE:-100}
CONNS=${CONNS:-50}
BACKENDS=${BACKENDS:-4}
SLUICE_PORT=${SLUICE_PORT:-8940}
SLUICE_TLS_PORT=${SLUICE_TLS_PORT:-8941}
ADMIN_PORT=${ADMIN_PORT:-8942}
BACKEND_PORT=${BACKEND_PORT:-8950}
KEEP=${KEEP:-0}

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${BIN_DIR:-$TARGET_DIR/release}
OUT_DIR=${OUT_DIR:-$TARGET_DIR/churn}
GEN=$REPO/benches/gen_cluster.py

die() { echo "churn.sh: $*" >&2; exit 1; }
# shellcheck source=benches/bench-lib.sh
. "$REPO/benches/bench-lib.sh"

for tool in wrk curl python3 taskset; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y wrk curl python3)"
done
pin_cpus churn
PORTS=()
for i in $(seq 0 $((BACKENDS - 1))); do PORTS+=($((BACKEND_PORT + i))); done
require_free_ports "$SLUICE_PORT" "$SLUICE_TLS_PORT" "$ADMIN_PORT" "${PORTS[@]}"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-churn.XXXXXX")
PIDS=()
cleanup() {
    stop_all "${PIDS[@]}"
    if [ "$KEEP" = 1 ]; then echo "churn: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prepare_binaries
RESULTS=$OUT_DIR/results.tsv
printf 'round\trun\trequests_per_s\tp50_ms\tp99_ms\tfailed\tpublications\twriter\n' >"$RESULTS"

MANIFESTS=$TMP/manifests
STAGE=$TMP/stage
DECOY=$TMP/decoy
mkdir -p "$MANIFESTS" "$STAGE" "$DECOY"
gen() {
    "${CLIENT_CPU[@]}" python3 "$GEN" --ingresses "$INGRESSES" --changes 1 \
        --ports "${PORTS[*]}" --dir "$MANIFESTS" --stage "$STAGE" "$@"
}
echo "churn: $(gen generate)"
gen churn

start_backends "${PORTS[@]}"
PIDS+=("${BACKEND_PIDS[@]}")
"${PROXY_CPU[@]}" "$BIN/sluice" --manifests "$MANIFESTS" --workers 1 --log-format json \
    --http-addr "127.0.0.1:$SLUICE_PORT" --https-addr "127.0.0.1:$SLUICE_TLS_PORT" \
    --admin-addr "127.0.0.1:$ADMIN_PORT" >"$OUT_DIR/sluice.log" 2>&1 &
PIDS+=($!)
URL=http://127.0.0.1:$SLUICE_PORT/
probe() { curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Host: churn.bench.test" "$URL" || true; }
for _ in $(seq 300); do
    [ "$(probe)" = 200 ] && break
    sleep 0.1
done
[ "$(probe)" = 200 ] || { tail -20 "$OUT_DIR/sluice.log" >&2; die "sluice does not serve churn.bench.test"; }

publications() {
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '$1 == "sluice_endpoint_updates_total" { print $2 }'
}

# One run: warm-up, then DURATION s of wrk; with churn=1 the writer runs alongside.
run() {
    local round=$1 kind=$2 out=$OUT_DIR/wrk-$1-$2.txt writer=- before after
    "${CLIENT_CPU[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H "Host: churn.bench.test" "$URL" >/dev/null
    before=$(publications)
    if [ "$kind" != quiet ]; then
        local dir=$MANIFESTS
        [ "$kind" = decoy ] && dir=$DECOY
        gen churn --rate "$RATE" --seconds "$DURATION" --dir "$dir" >"$OUT_DIR/writer-$round.json" &
        local wpid=$!
        "${CLIENT_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: churn.bench.test" "$URL" >"$out"
        wait "$wpid"
        writer=$(tr -d ' \n' <"$OUT_DIR/writer-$round.json")
    else
        "${CLIENT_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: churn.bench.test" "$URL" >"$out"
    fi
    sleep 0.5
    after=$(publications)
    python3 - "$out" "$round" "$kind" "$((${after%.*} - ${before%.*}))" "$writer" >>"$RESULTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
lat = {m[0]: ms(m[1], m[2]) for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
failed = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
failed += int(non2xx.group(1)) if non2xx else 0
print("\t".join([sys.argv[2], sys.argv[3], f"{rps:.0f}", f"{lat['50']:.3f}", f"{lat['99']:.3f}",
                 str(failed), sys.argv[4], sys.argv[5]]))
PY
    tail -1 "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="quiet decoy churn"; else order="churn decoy quiet"; fi
    for kind in $order; do run "$round" "$kind"; done
done

python3 - "$RESULTS" "$RATE" "$DURATION" "$INGRESSES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def col(kind, key):
    return [float(r[key]) for r in rows if r["run"] == kind]
print(f"\nchurn: {sys.argv[4]} Ingresses, {sys.argv[2]} EndpointSlice writes/s for {sys.argv[3]} s per run")
for kind in ("quiet", "decoy", "churn"):
    p99, rps, failed = col(kind, "p99_ms"), col(kind, "requests_per_s"), col(kind, "failed")
    pubs = col(kind, "publications")
    print(f"  {kind:5}  req/s {statistics.median(rps):8.0f}  p99 {statistics.median(p99):6.3f} ms "
          f"({min(p99):.3f}-{max(p99):.3f})  failed {int(sum(failed))}  publications {int(sum(pubs))}")
for base in ("quiet", "decoy"):
    deltas = [c - q for q, c in zip(col(base, "p99_ms"), col("churn", "p99_ms"))]
    print(f"  p99 churn - {base}, per round: {', '.join(f'{d:+.3f}' for d in deltas)} ms "
          f"(median {statistics.median(deltas):+.3f} ms)")
PY
