#!/usr/bin/env bash
# Switchboard benchmark matrix.
#
#   loadtest/run-bench.sh reference [reference-relay options...]
#   loadtest/run-bench.sh switchboard /path/to/switchboard [server options...]   (e.g. --open-rooms)
#   loadtest/run-bench.sh command 'any shell command that prints "listening on http://127.0.0.1:PORT"'
#
# Builds the reference relay and the load generator (release), then for every scenario starts a fresh
# server on port 0, reads its port from the "listening on http://127.0.0.1:PORT" line (stdout or stderr), runs
# the load generator with --server-pid, and stops the server (SIGTERM, then SIGKILL after 5 s).
# Loopback only. Output: a directory with one log per scenario, results.jsonl (the RESULT lines) and
# summary.md (a Markdown table of them).
#
# Scenario matrix (override with environment variables):
#   SCENARIOS="relay sweep connections"
#   relay:        RELAY_CONNS=1000 RELAY_RATE=5000 RELAY_SIZE=200 RELAY_DURATION=10 WARMUP=2
#   sweep:        SWEEP_RATES="10000 20000 40000 80000 120000" SWEEP_CONNS=auto SWEEP_DURATION=5 SWEEP_SIZE=200
#                 (auto: max(100, rate/50) connections, i.e. at most 50 msgs/s per connection, well under
#                 a server's default limit of 100 msgs/s per connection; the sweep stops at the first rate
#                 the server does not keep up with: delivered < 95 % of the target or p99 > 100 ms)
#   connections:  CONN_COUNTS="1000 5000" HOLD=3
#   OUT=loadtest/results/<target>-<time>   SERVER_START_TIMEOUT=30   RUN_TIMEOUT=300
#   PIN=1: pin the server to CPU 0 and the generator to CPU 1 (taskset); default off
#   QUIET_WAIT=60: before each case wait up to this many seconds for the machine to be quiet (under
#   QUIET_PCT=15 % busy over one second); a run beside a busy neighbour has meaningless latencies.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=${1:-}
if [[ -z "$MODE" ]]; then
    sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 2
fi
shift

SCENARIOS=${SCENARIOS:-"relay sweep connections"}
RELAY_CONNS=${RELAY_CONNS:-1000}
RELAY_RATE=${RELAY_RATE:-5000}
RELAY_SIZE=${RELAY_SIZE:-200}
RELAY_DURATION=${RELAY_DURATION:-10}
WARMUP=${WARMUP:-2}
SWEEP_RATES=${SWEEP_RATES:-"10000 20000 40000 80000 120000"}
SWEEP_CONNS=${SWEEP_CONNS:-auto}
SWEEP_DURATION=${SWEEP_DURATION:-5}
SWEEP_SIZE=${SWEEP_SIZE:-200}
CONN_COUNTS=${CONN_COUNTS:-"1000 5000"}
HOLD=${HOLD:-3}
SERVER_START_TIMEOUT=${SERVER_START_TIMEOUT:-30}
QUIET_WAIT=${QUIET_WAIT:-60}
PIN=${PIN:-0}
SERVER_PREFIX=()
LOADTEST_PREFIX=()
if [[ "$PIN" == 1 ]]; then
    SERVER_PREFIX=(taskset -c 0)
    LOADTEST_PREFIX=(taskset -c 1)
fi
QUIET_PCT=${QUIET_PCT:-15}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}

LOADTEST="$HERE/.build/release/loadtest"
RELAY_BIN="$HERE/reference-relay"

# ---------------------------------------------------------------------------------------------------
# Build

echo "== building the reference relay and the load generator (release)"
cc -O2 -o "$RELAY_BIN" "$HERE/reference-relay.c" $(pkg-config --cflags --libs libwebsockets) -lev
swift build -c release --package-path "$HERE" 2>&1 | tail -n 1

# ---------------------------------------------------------------------------------------------------
# Target

DATA_DIR=""
case "$MODE" in
    reference)
        TARGET=reference
        SERVER_CMD=("$RELAY_BIN" 0 "$@")
        ;;
    switchboard)
        BIN=${1:?"usage: run-bench.sh switchboard /path/to/switchboard [server options...]"}
        shift
        [[ -x "$BIN" ]] || { echo "not an executable: $BIN" >&2; exit 2; }
        TARGET=switchboard
        DATA_DIR=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
        SERVER_CMD=("$BIN" --port 0 --data "$DATA_DIR" "$@")
        ;;
    command)
        TARGET=command
        SERVER_CMD=(bash -c "exec $1")
        ;;
    *)
        echo "unknown target '$MODE' (reference | switchboard BINARY [options] | command 'CMD')" >&2
        exit 2
        ;;
esac

OUT=${OUT:-"$HERE/results/$TARGET-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

# The server and the generator need a descriptor each per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

{
    echo "target: $TARGET: ${SERVER_CMD[*]}"
    echo "pinning: $([[ "$PIN" == 1 ]] && echo "server on CPU 0, generator on CPU 1" || echo none)"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/environment.txt"

# ---------------------------------------------------------------------------------------------------
# Server lifecycle

SERVER_PID=""
PORT=""

start_server() { # $1 = log name
    local log="$OUT/server-$1"
    if [[ -n "$DATA_DIR" ]]; then rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"; fi
    : >"$log.out"
    : >"$log.err"
    "${SERVER_PREFIX[@]}" "${SERVER_CMD[@]}" >"$log.out" 2>"$log.err" &
    SERVER_PID=$!
    local deadline=$((SECONDS + SERVER_START_TIMEOUT))
    PORT=""
    while [[ -z "$PORT" ]]; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited during start-up; see $log.err" >&2
            tail -n 20 "$log.err" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "no 'listening on http://127.0.0.1:PORT' line within ${SERVER_START_TIMEOUT}s" >&2
            stop_server
            return 1
        fi
        PORT=$(cat "$log.out" "$log.err" | sed -n 's#.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' | head -n 1)
        [[ -n "$PORT" ]] || sleep 0.05
    done
    sleep 0.2 # let it settle before the baseline RSS is read
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server did not stop within 5 s of SIGTERM: SIGKILL" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    local rc=0
    wait "$SERVER_PID" 2>/dev/null || rc=$?
    [[ $rc -eq 0 ]] || echo "(server exit status $rc)"
    SERVER_PID=""
}

cleanup() {
    stop_server
    if [[ -n "$DATA_DIR" ]]; then rm -rf "$DATA_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busy_pct() { # machine-wide busy % over one second, from /proc/stat
    local a b
    a=($(head -n 1 /proc/stat))
    sleep 1
    b=($(head -n 1 /proc/stat))
    local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
    local total=$(( busy + (b[4]+b[5]) - (a[4]+a[5]) ))
    echo $(( total > 0 ? busy * 100 / total : 0 ))
}

wait_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) pct
    while :; do
        pct=$(busy_pct)
        ((pct < QUIET_PCT)) && return 0
        if ((SECONDS >= deadline)); then
            echo "(the machine is still ${pct}% busy after ${QUIET_WAIT}s: running anyway)"
            return 0
        fi
        echo "(machine ${pct}% busy: waiting for quiet)"
    done
}

# run_case NAME loadtest-args... : fresh server, one load generator run, RESULT line appended
LAST_RESULT=""
run_case() {
    local name=$1
    shift
    echo
    echo "== $name"
    wait_quiet
    start_server "$name" || { echo "SKIPPED $name (server did not start)"; LAST_RESULT=""; return 1; }
    local url="ws://127.0.0.1:$PORT/ws"
    local rc=0
    timeout --signal=INT "$RUN_TIMEOUT" "${LOADTEST_PREFIX[@]}" "$LOADTEST" "$@" --url "$url" --server-pid "$SERVER_PID" --label "$name" \
        2>&1 | tee "$OUT/$name.log" || rc=$?
    stop_server
    LAST_RESULT=$(grep '^RESULT ' "$OUT/$name.log" | tail -n 1 | cut -c8- || true)
    if [[ -n "$LAST_RESULT" ]]; then
        echo "$LAST_RESULT" >> "$RESULTS"
    else
        echo "no RESULT line from $name (exit status $rc)"
        return 1
    fi
}

json_num() { # json_num KEY JSON -> first numeric value of "KEY":
    grep -o "\"$1\":[-0-9.]*" <<<"$2" | head -n 1 | cut -d: -f2
}

# ---------------------------------------------------------------------------------------------------
# Matrix

for scenario in $SCENARIOS; do
    case "$scenario" in
        relay)
            run_case "relay-${RELAY_CONNS}c-${RELAY_RATE}r" relay --connections "$RELAY_CONNS" --rate "$RELAY_RATE" \
                --size "$RELAY_SIZE" --duration "$RELAY_DURATION" --warmup "$WARMUP" || true
            ;;
        sweep)
            for rate in $SWEEP_RATES; do
                conns=$SWEEP_CONNS
                if [[ "$conns" == auto ]]; then
                    conns=$((rate / 50))
                    ((conns >= 100)) || conns=100
                    ((conns % 2 == 0)) || conns=$((conns + 1))
                fi
                run_case "sweep-${conns}c-${rate}r" relay --connections "$conns" --rate "$rate" --size "$SWEEP_SIZE" \
                    --duration "$SWEEP_DURATION" --warmup 1 || break
                delivered=$(json_num delivered_per_s "$LAST_RESULT")
                p99=$(json_num p99 "$LAST_RESULT")
                if awk -v d="${delivered:-0}" -v r="$rate" -v p="${p99:-1e9}" 'BEGIN { exit !(d < 0.95 * r || p > 100) }'; then
                    echo "-> saturated at $rate msgs/s (delivered ${delivered:-?} msgs/s, p99 ${p99:-?} ms): sweep stops"
                    break
                fi
            done
            ;;
        connections)
            for n in $CONN_COUNTS; do
                run_case "connections-${n}" connections --connections "$n" --hold "$HOLD" || true
            done
            ;;
        *)
            echo "unknown scenario $scenario (relay | sweep | connections)" >&2
            ;;
    esac
done

echo
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/environment.txt"
"$LOADTEST" summarize "$RESULTS" | tee "$OUT/summary.md"
echo
echo "results: $OUT"
