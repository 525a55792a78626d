#!/usr/bin/env bash
# Instructions per relayed message, counted by valgrind (callgrind): repeatable whatever the machine is doing,
# unlike CPU time on a VM whose hypervisor steals cycles. The server runs under callgrind twice, relaying
# RATE msgs/s over CONNS connections for a short and a long run; (instructions long - short) / (messages long
# - short) is the cost of one relayed message, with start-up and connection set-up cancelled out.
#
#   loadtest/instructions.sh reference
#   loadtest/instructions.sh switchboard /path/to/switchboard --open-rooms
set -euo pipefail
cd "$(dirname "$0")"
CONNS=${CONNS:-200} RATE=${RATE:-1000} SIZE=${SIZE:-200} SHORT=${SHORT:-4} LONG=${LONG:-12}
target=$1; shift
swift build -c release --package-path . >/dev/null
if [ "$target" = reference ]; then
  cc -O2 -o reference-relay reference-relay.c $(pkg-config --cflags --libs libwebsockets) -lev
  server=(./reference-relay 0)
else
  data=$(mktemp -d); server=("$1" --port 0 --data "$data" "${@:2}")
fi

run() {  # $1 = duration; prints "instructions messages"
  local out; out=$(mktemp); local log; log=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "${server[@]}" >"$log" 2>&1 &
  local pid=$!
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://') || true
    [ -n "$port" ] && break; sleep 0.1
  done
  [ -n "$port" ] || { echo "server did not start" >&2; cat "$log" >&2; kill $pid; exit 1; }
  local result
  result=$(.build/release/loadtest relay --url "ws://127.0.0.1:$port/ws" --connections "$CONNS" --rate "$RATE" \
           --size "$SIZE" --duration "$1" --warmup 1 --setup-timeout 120 | grep '^RESULT')
  kill -TERM $pid; wait $pid || true
  local instructions; instructions=$(grep '^summary:' "$out" | awk '{print $2}')
  local delivered; delivered=$(echo "$result" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()[7:])["delivered"])')
  rm -f "$out" "$log"
  echo "$instructions $delivered"
}

read -r i1 m1 < <(run "$SHORT")
read -r i2 m2 < <(run "$LONG")
python3 - "$target" "$i1" "$m1" "$i2" "$m2" <<'PY'
import sys
target, i1, m1, i2, m2 = sys.argv[1], *map(int, sys.argv[2:])
per = (i2 - i1) / (m2 - m1)
print(f"{target}: {per:,.0f} instructions per relayed message "
      f"(short run {i1:,} instr / {m1:,} msgs, long run {i2:,} instr / {m2:,} msgs)")
PY
