#!/usr/bin/env bash
# One-client write latency, Chronos against etcd in the same run: a 3-member etcd cluster and a
# 3-node Chronos cluster on loopback, one after the other, each driven by one client doing one
# write at a time for DUR seconds (etcd: 16-byte Puts; Chronos: one-row autocommit INSERTs),
# every acknowledged write fsynced by a majority. Prints p50 and p99 of each, ROUNDS times.
#
#   cargo build --release && ROUNDS=3 benches/etcd_latency.sh
#
# Uses the etcd harness of ../shared/bench/etcd-compare (built there on first use) and the
# etcd server on the PATH; skips, saying so, when either is missing.
set -u
cd "$(dirname "$0")/.."
HARNESS=../shared/bench/etcd-compare
B=${CHRONOS_BIN:-$PWD/target/release}
DUR=${DUR:-8}; ROUNDS=${ROUNDS:-1}
[ -x "$B/chronosd" ] && [ -x "$B/chronos" ] || { echo "no release binaries in $B: run cargo build --release first"; exit 2; }
command -v etcd >/dev/null || { echo "etcd_latency: etcd is not installed; skipping"; exit 0; }
export CARGO_TARGET_DIR=${ETCDBENCH_TARGET:-/tmp/etcdbench-target}
EB=$CARGO_TARGET_DIR/release/etcdbench
[ -x "$EB" ] || cargo build --release --quiet --manifest-path "$HARNESS/Cargo.toml" \
    || { echo "etcd_latency: could not build the etcd harness; skipping"; exit 0; }
W=$(mktemp -d)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/secret"
export CHRONOS_CLUSTER_SECRET_FILE="$W/secret"
PIDS=()
down() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait 2>/dev/null; PIDS=(); rm -rf "$W"/e? "$W"/c?; }
trap 'down; rm -rf "$W"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for r in $(seq 1 "$ROUNDS"); do
    cl=(); pe=(); init=""
    for i in 1 2 3; do cl[$i]=$(port); pe[$i]=$(port); init+="e$i=http://127.0.0.1:${pe[$i]},"; done
    for i in 1 2 3; do
        etcd --name e$i --data-dir "$W/e$i" --listen-client-urls "http://127.0.0.1:${cl[$i]}" \
            --advertise-client-urls "http://127.0.0.1:${cl[$i]}" --listen-peer-urls "http://127.0.0.1:${pe[$i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${pe[$i]}" --initial-cluster "${init%,}" \
            --initial-cluster-state new --log-level error > "$W/e$i.log" 2>&1 &
        PIDS+=($!)
    done
    EPS="http://127.0.0.1:${cl[1]},http://127.0.0.1:${cl[2]},http://127.0.0.1:${cl[3]}"
    for _ in $(seq 1 100); do etcdctl --endpoints="127.0.0.1:${cl[1]}" put warm 1 >/dev/null 2>&1 && break; sleep 0.2; done
    etcd=$("$EB" "$EPS" 1 "$DUR" put | sed -nE 's/.*p50 ([0-9.]+) ms, p99 ([0-9.]+) ms.*/\1 \2/p')
    down
    p=(); for i in 1 2 3; do p[$i]=$(port); done
    for i in 1 2 3; do
        peers=""; for j in 1 2 3; do [ $j != $i ] && peers+="$j=127.0.0.1:${p[$j]},"; done
        "$B/chronosd" --id $i --listen "127.0.0.1:${p[$i]}" --peers "${peers%,}" --data-dir "$W/c$i" > "$W/c$i.log" 2>&1 &
        PIDS+=($!)
    done
    ADDRS="127.0.0.1:${p[1]},127.0.0.1:${p[2]},127.0.0.1:${p[3]}"
    for _ in $(seq 1 150); do "$B/chronos" --addr "$ADDRS" exec "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
    chronos=$("$B/chronos" --addr "$ADDRS" bench --workload insert --clients 1 --duration-secs "$DUR" 2>/dev/null \
        | sed -nE 's/.*latency ms: p50 ([0-9.]+) +p90 [0-9.]+ +p99 ([0-9.]+).*/\1 \2/p' | head -1)
    down
    read -r cp50 cp99 <<< "$chronos"; read -r ep50 ep99 <<< "$etcd"
    printf 'round %s  1-client writes: chronos p50 %s ms p99 %s ms  etcd p50 %s ms p99 %s ms\n' \
        "$r" "${cp50:-?}" "${cp99:-?}" "${ep50:-?}" "${ep99:-?}"
done
