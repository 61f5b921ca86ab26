#!/usr/bin/env bash
# Runs the same single-node SQL workloads on SQLite (the sqlite3 command) and on Chronos (a
# one-node chronosd from a release build, through `chronos exec`), and prints the times and
# their ratios:
#   - a bulk insert of ROWS rows (default 1,000,000) as 1,000-row INSERT statements, each its
#     own durable transaction on both;
#   - SELECT COUNT(*), and SUM with a filter, over those rows (best of 3);
#   - LOOKUPS point SELECTs by primary key (default 10,000), as one script.
# Usage: benches/compare.sh            (ROWS=100000 LOOKUPS=1000 benches/compare.sh is quicker)
# Skips, saying so, when sqlite3 is not installed.
set -euo pipefail

ROWS=${ROWS:-1000000}
LOOKUPS=${LOOKUPS:-10000}
BATCH=1000
cd "$(dirname "$0")/.."

if ! command -v sqlite3 >/dev/null; then
    echo "compare: sqlite3 is not installed; skipping the comparison"
    exit 0
fi

cargo build --release --quiet --bin chronos --bin chronosd
CHRONOS=target/release/chronos
CHRONOSD=target/release/chronosd

WORK=$(mktemp -d)
NODE_PID=
cleanup() {
    if [ -n "$NODE_PID" ]; then kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# The shortest of three runs of a command (its output discarded), in seconds.
best_of_three() {
    local best=
    for _ in 1 2 3; do
        local s; s=$(now); "$@" > /dev/null; local t; t=$(elapsed "$s" "$(now)")
        best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (a == "" || b < a) ? b : a }')
    done
    echo "$best"
}

# The workload files: one INSERT of BATCH rows per line, split into chunks that fit one
# request; the queries; the lookups.
mkdir -p "$WORK/insert"
awk -v rows="$ROWS" -v batch="$BATCH" 'BEGIN {
    for (first = 0; first < rows; first += batch) {
        line = "INSERT INTO users VALUES ";
        last = first + batch; if (last > rows) last = rows;
        for (id = first; id < last; id++) {
            line = line sprintf("(%d, %cuser %d%c, %d.5)", id, 39, id, 39, id % 1000);
            if (id < last - 1) line = line ", ";
        }
        print line ";";
    }
}' | split -l 50 - "$WORK/insert/chunk-"
COUNT_SQL="SELECT COUNT(*) FROM users;"
SUM_SQL="SELECT SUM(balance) FROM users WHERE balance >= 500;"
awk -v rows="$ROWS" -v n="$LOOKUPS" 'BEGIN {
    srand(42);
    for (i = 0; i < n; i++) printf "SELECT name, balance FROM users WHERE id = %d;\n", int(rand() * rows);
}' > "$WORK/lookups.sql"

# SQLite: a database file with its default durability (rollback journal, synchronous=FULL).
DB="$WORK/sqlite.db"
sqlite3 "$DB" "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, balance REAL);"
start=$(now)
for chunk in "$WORK"/insert/chunk-*; do sqlite3 "$DB" < "$chunk"; done
SQLITE_INSERT=$(elapsed "$start" "$(now)")
sqlite_query() { sqlite3 "$DB" "$1"; }
SQLITE_COUNT=$(best_of_three sqlite_query "$COUNT_SQL")
SQLITE_SUM=$(best_of_three sqlite_query "$SUM_SQL")
start=$(now)
sqlite3 "$DB" < "$WORK/lookups.sql" > /dev/null
SQLITE_LOOKUPS=$(elapsed "$start" "$(now)")
SQLITE_ROWS=$(sqlite3 "$DB" "$COUNT_SQL")

# Chronos: a one-node cluster on a free port of 127.0.0.1.
PORT=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
ADDR=127.0.0.1:$PORT
"$CHRONOSD" --id 1 --listen "$ADDR" --data-dir "$WORK/chronos" > "$WORK/chronosd.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 100); do
    if "$CHRONOS" --addr "$ADDR" --timeout-ms 500 exec "SELECT 1" > /dev/null 2>&1; then break; fi
    sleep 0.1
done
run() { "$CHRONOS" --addr "$ADDR" --timeout-ms 600000 exec --format csv "$@"; }
run "CREATE TABLE users (id INT PRIMARY KEY, name STRING, balance FLOAT)" > /dev/null
start=$(now)
for chunk in "$WORK"/insert/chunk-*; do run --file "$chunk" > /dev/null; done
CHRONOS_INSERT=$(elapsed "$start" "$(now)")
CHRONOS_COUNT=$(best_of_three run "$COUNT_SQL")
CHRONOS_SUM=$(best_of_three run "$SUM_SQL")
start=$(now)
run --file "$WORK/lookups.sql" > /dev/null
CHRONOS_LOOKUPS=$(elapsed "$start" "$(now)")
CHRONOS_ROWS=$(run "$COUNT_SQL" | tail -n 1)

if [ "$SQLITE_ROWS" != "$ROWS" ] || [ "$CHRONOS_ROWS" != "$ROWS" ]; then
    echo "compare: row counts differ: sqlite $SQLITE_ROWS, chronos $CHRONOS_ROWS, expected $ROWS" >&2
    exit 1
fi

echo "$ROWS rows, $LOOKUPS lookups; $(sqlite3 --version | cut -d' ' -f1) vs chronos (one node, release)"
printf '%-34s %12s %12s %10s\n' workload "sqlite s" "chronos s" ratio
line() { printf '%-34s %12s %12s %9sx\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", (a > 0) ? b / a : 0 }')"; }
line "bulk insert ($BATCH-row statements)" "$SQLITE_INSERT" "$CHRONOS_INSERT"
line "SELECT COUNT(*)" "$SQLITE_COUNT" "$CHRONOS_COUNT"
line "SELECT SUM(balance) WHERE ..." "$SQLITE_SUM" "$CHRONOS_SUM"
line "$LOOKUPS point lookups" "$SQLITE_LOOKUPS" "$CHRONOS_LOOKUPS"
