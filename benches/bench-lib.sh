# Shared by benches/scale.sh and benches/churn.sh (sourced, not run): CPU
# pinning as ../shared/bench-method.md wants it, port checks, the
# bench-backends, and stopping processes. Expects `die` to be defined.

# PROXY_CPU / CLIENT_CPU: the proxy alone on CPU 1; backends and clients on
# CPU 0 (with fewer than 2 CPUs nothing is pinned). $1 names the script.
pin_cpus() {
    PROXY_CPU=(taskset -c 1)
    CLIENT_CPU=(taskset -c 0)
    if [ "$(nproc)" -lt 2 ]; then
        echo "$1: fewer than 2 CPUs, nothing pinned" >&2
        PROXY_CPU=()
        CLIENT_CPU=()
    fi
}

# Stops unless every port given is free on 127.0.0.1 and 127.0.0.2.
require_free_ports() {
    local port addr
    for port in "$@"; do
        for addr in 127.0.0.1 127.0.0.2; do
            if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then
                die "something already listens on $addr:$port; set the *_PORT variables"
            fi
        done
    done
}

# Starts a bench-backend on 127.0.0.1 and 127.0.0.2 for each port given (on
# the client CPU, logs in OUT_DIR), appends their PIDs to BACKEND_PIDS, and
# waits until each answers.
start_backends() {
    local port addr
    BACKEND_PIDS=()
    for port in "$@"; do
        for addr in 127.0.0.1 127.0.0.2; do
            "${CLIENT_CPU[@]}" "$BIN/bench-backend" "$addr:$port" >"$OUT_DIR/backend-$addr-$port.log" 2>&1 &
            BACKEND_PIDS+=($!)
        done
    done
    for port in "$@"; do
        for addr in 127.0.0.1 127.0.0.2; do
            for _ in $(seq 100); do
                [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$addr:$port/" || true)" = 200 ] && break
                sleep 0.05
            done
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$addr:$port/" || true)" = 200 ] ||
                die "bench-backend on $addr:$port does not answer"
        done
    done
}

# Stops a process: TERM, up to ~5 s to exit, then KILL.
stop_pid() {
    local p=$1
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

# Stops every PID given: TERM to all at once, then waits for (or kills) each.
stop_all() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do stop_pid "$p"; done
}

# Builds the release binaries unless NO_BUILD=1, checks that BIN has them,
# and makes OUT_DIR.
prepare_binaries() {
    if [ "$NO_BUILD" != 1 ]; then
        echo "building release binaries (cargo build --release --bins)..."
        (cd "$REPO" && cargo build --release --bins)
    fi
    [ -x "$BIN/sluice" ] || die "no $BIN/sluice; build first"
    [ -x "$BIN/bench-backend" ] || die "no $BIN/bench-backend; build first"
    mkdir -p "$OUT_DIR"
}
