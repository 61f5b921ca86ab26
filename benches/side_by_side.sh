#!/usr/bin/env bash
# Compares two builds of Chronos on this machine, side by side: a 3-node cluster of each runs at
# once on loopback, and the same `chronos bench` workload runs against them in turns. For each
# run it measures the CPU time the three nodes and the bench client spent per operation (from
# /proc), which moves less than throughput on a noisy machine, and prints the best and median
# of both builds.
#
#   benches/side_by_side.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS] [WORKLOAD] [CLIENTS] [COUNT]
#   benches/side_by_side.sh /tmp/old/release target/release 5 insert 64 15000
#   benches/side_by_side.sh /tmp/old/release target/release 5 read 32 15000
#
# BENCH_ARGS adds options to every bench run (BENCH_ARGS="--batch-size 1000" for the batch
# workload). Each BIN_DIR holds `chronosd` and `chronos` (e.g. a copy of target/release from another
# commit). Linux only (/proc); ports 7501-7503 and 7601-7603 must be free.
set -euo pipefail

OLD=${1:?old bin dir}; NEW=${2:?new bin dir}
ROUNDS=${3:-5}; WORKLOAD=${4:-insert}; CLIENTS=${5:-64}; COUNT=${6:-15000}
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

# start BIN BASE_PORT: a 3-node cluster on BASE_PORT+1..3; its pids go to $WORK/pids.BASE_PORT.
start() {
    local bin=$1 base=$2
    for i in 1 2 3; do
        local peers=""
        for j in 1 2 3; do [ "$j" != "$i" ] && peers="$peers,$j=127.0.0.1:$((base + j))"; done
        "$bin/chronosd" --id "$i" --listen "127.0.0.1:$((base + i))" --peers "${peers#,}" \
            --data-dir "$WORK/$base-$i" 2>/dev/null &
        PIDS+=($!)
        echo $! >> "$WORK/pids.$base"
    done
}

addresses() { echo "127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2)),127.0.0.1:$(($1 + 3))"; }

# The CPU ticks (1/100 s) the nodes of cluster BASE_PORT have used.
ticks() {
    local total=0 pid
    for pid in $(cat "$WORK/pids.$1"); do
        read -ra fields < "/proc/$pid/stat"
        total=$((total + fields[13] + fields[14]))
    done
    echo "$total"
}

# run LABEL BIN BASE_PORT: one run; appends "LABEL cpu_us_per_op ops_per_s" to $WORK/runs.
run() {
    local label=$1 bin=$2 base=$3 before after out client rate
    before=$(ticks "$base")
    out=$( { /usr/bin/time -f "CLIENT %U %S" "$bin/chronos" --addr "$(addresses "$base")" bench \
        --workload "$WORKLOAD" --clients "$CLIENTS" --count "$COUNT" ${BENCH_ARGS:-} 2>&1; } 2>&1 ) || true
    after=$(ticks "$base")
    client=$(echo "$out" | awk '/^CLIENT/ { printf "%d", ($2 + $3) * 100 }')
    rate=$(echo "$out" | grep -oE '\([0-9]+/s\)' | head -1 | tr -d '()/s')
    if [ -n "$client" ] && [ -n "$rate" ]; then
        echo "$label $(( (after - before + client) * 10000 / COUNT )) $rate" >> "$WORK/runs"
    else
        echo "a $label run failed: $(echo "$out" | tail -2)" >&2
    fi
}

start "$OLD" 7500
start "$NEW" 7600
sleep 3
"$OLD/chronos" --addr "$(addresses 7500)" bench --workload "$WORKLOAD" --clients 4 --count 500 ${BENCH_ARGS:-} >/dev/null 2>&1 || true
"$NEW/chronos" --addr "$(addresses 7600)" bench --workload "$WORKLOAD" --clients 4 --count 500 ${BENCH_ARGS:-} >/dev/null 2>&1 || true
for _ in $(seq "$ROUNDS"); do
    run old "$OLD" 7500
    run new "$NEW" 7600
done

echo "$WORKLOAD, $CLIENTS clients, $COUNT operations per run, $ROUNDS rounds"
for label in old new; do
    grep "^$label " "$WORK/runs" | awk -v label="$label" '
        { cpu[NR] = $2; rate[NR] = $3 }
        END {
            if (NR == 0) { print label ": no successful run"; exit }
            n = asort_num(cpu); asort_num(rate)
            printf "%s: CPU per operation (nodes + client) best %d us, median %d us; median %d ops/s (%d runs)\n",
                label, cpu[1], cpu[int((n + 1) / 2)], rate[int((n + 1) / 2)], n
        }
        function asort_num(a,   i, j, t, n) {
            n = 0; for (i in a) n++
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n
        }'
done
