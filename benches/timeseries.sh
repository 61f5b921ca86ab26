#!/usr/bin/env bash
# The time-series figures of the README: a 3-node cluster of release builds on loopback ingests
# POINTS sensor points from DEVICES devices (`chronos bench --workload timeseries`: 1,000-point
# INSERTs from 4 clients into a table with a per-minute and a latest-value rollup, one operation
# in ten a rollup read), then this prints the ingest rate, the latency of latest-value and
# per-minute rollup reads during the load and once it is done, a full GROUP BY over the points
# for contrast, the storage per point, and the Raft bytes compression saved.
#
#   cargo build --release --bin chronosd --bin chronos
#   benches/timeseries.sh [POINTS] [DEVICES]        # defaults: 10000000 10000
#
# BIN (default target/release) holds chronosd and chronos; NODE_ARGS adds options to every
# node (NODE_ARGS="--store-cache-mb 512"). Needs python3 and curl; Linux; ports 7701-7703 and
# 7711-7713 must be free.
set -euo pipefail

BIN=${BIN:-target/release}; POINTS=${1:-10000000}; DEVICES=${2:-10000}; BATCH=1000
WORK=$(mktemp -d)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/secret"
export CHRONOS_CLUSTER_SECRET_FILE="$WORK/secret"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for i in 1 2 3; do
    peers=""
    for j in 1 2 3; do [ "$j" != "$i" ] && peers="$peers,$j=127.0.0.1:$((7700 + j))"; done
    "$BIN/chronosd" --id "$i" --listen "127.0.0.1:$((7700 + i))" --peers "${peers#,}" \
        --metrics-listen "127.0.0.1:$((7710 + i))" --data-dir "$WORK/node$i" ${NODE_ARGS:-} 2>/dev/null &
    PIDS+=($!)
done
A=127.0.0.1:7701,127.0.0.1:7702,127.0.0.1:7703
chronos() { "$BIN/chronos" --addr "$A" "$@"; }
for _ in $(seq 100); do chronos exec "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done

inserts=$(( POINTS / BATCH ))
operations=$(( (inserts * 10 + 8) / 9 ))
echo "loading $((inserts * BATCH)) points from $DEVICES devices ($operations operations)..."
chronos bench --workload timeseries --clients 4 --batch-size "$BATCH" --rows "$DEVICES" \
    --count "$operations" --format json > "$WORK/load.json" || true
python3 - "$WORK/load.json" "$BATCH" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); batch = int(sys.argv[2]); k = r["latency_ms_by_kind"]
points = k["insert"]["count"] * batch
print(f"ingest: {points:,} points in {r['seconds']:.1f} s = {points / r['seconds']:,.0f} points/s, errors {r['errors']}")
for message, count in r["error_messages"].items():
    print(f"  error x{count}: {message}")
for kind in ("insert", "latest", "rollup"):
    h = k[kind]
    print(f"  during the load, {kind:<7} p50 {h['p50']:.2f} ms  p99 {h['p99']:.2f} ms  ({h['count']} ops)")
PY

# Reads once the table is full: 200 statements in one script, timed as a whole.
query_batch() {
    local file=$WORK/queries.sql
    : > "$file"
    for n in $(seq 200); do echo "$1" | sed "s/DEVICE/$(( (n * 7919) % DEVICES ))/" >> "$file"; done
    local start end
    start=$(date +%s%N)
    chronos exec --format json --file "$file" > /dev/null
    end=$(date +%s%N)
    echo "  $2: $(( (end - start) / 200000 )) us per query (200 in one script)"
}
echo "at $(chronos exec --format csv "SELECT count(*) FROM bench_timeseries" | tail -1) points:"
query_batch "SELECT v, at FROM bench_timeseries_latest WHERE device = DEVICE;" "latest value of a device (rollup)"
query_batch "SELECT bucket, avg_v, n FROM bench_timeseries_minute WHERE device = DEVICE ORDER BY bucket DESC LIMIT 10;" "last 10 minutes of a device (rollup)"
query_batch "SELECT ts, v FROM bench_timeseries WHERE device = DEVICE ORDER BY ts DESC LIMIT 1;" "latest point of a device (raw, by key)"
start=$(date +%s%N)
chronos exec --format csv "SELECT count(*) FROM (SELECT device, last(v, ts) FROM bench_timeseries GROUP BY device) AS d" > /dev/null
end=$(date +%s%N)
echo "  latest value of every device by a GROUP BY over the points: $(( (end - start) / 1000000 )) ms"
start=$(date +%s%N)
chronos exec --format csv "SELECT count(*) FROM bench_timeseries_latest" > /dev/null
end=$(date +%s%N)
echo "  latest value of every device from the rollup: $(( (end - start) / 1000000 )) ms"

sleep 2
# Apparent size (redb grows its file in regions it has not written yet) and blocks in use.
bytes=$(du -sb "$WORK/node1" | cut -f1)
blocks=$(du -s --block-size=1 "$WORK/node1" | cut -f1)
echo "storage: node 1's data directory $(( bytes / 1048576 )) MiB = $(( bytes / (inserts * BATCH) )) bytes per point (log, store and rollups; apparent size)"
echo "  on disk: $(( blocks / 1048576 )) MiB = $(( blocks / (inserts * BATCH) )) bytes per point (blocks in use)"
encoded=0; sent=0
for i in 1 2 3; do
    m=$(curl -s "127.0.0.1:$((7710 + i))/metrics")
    encoded=$(( encoded + $(echo "$m" | awk '/^chronos_raft_message_bytes_total\{stage="encoded"\}/ { printf "%d", $2 }') ))
    sent=$(( sent + $(echo "$m" | awk '/^chronos_raft_message_bytes_total\{stage="sent"\}/ { printf "%d", $2 }') ))
done
echo "raft messages: $(( encoded / 1048576 )) MiB encoded, $(( sent / 1048576 )) MiB sent (lz4)"
