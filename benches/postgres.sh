#!/usr/bin/env bash
# Acceptance with the shared state on PostgreSQL against sled, and two
# nodes against one (issue 16). Same machine, same client, same run:
#
#   benches/postgres.sh                     # 20,000 x 2 KB a phase
#   MESSAGES=5000 benches/postgres.sh
#
# Builds nothing: it runs target/release/rackwave (`cargo build --release`
# first) and Debian's PostgreSQL (`postgresql`, the newest
# /usr/lib/postgresql/*/bin). Phases, one after the other, each on fresh
# data directories and a fresh database:
#   1. sled:     one node, [storage] backend = "sled" (the shipped default);
#   2. postgres: one node, backend = "postgres";
#   3. two:      two nodes on the one database, the load split between
#                them (two bench clients at once, half the messages each);
# `rackwave bench smtp --auth` over CONCURRENCY connections (split in two
# for `two`), `[delivery] enabled = false` (durable acceptance only: each
# message ends at its node's flushed spool commit), one workspace without
# a quota, one SMTP account whose daily quota is far away (1,000,000,000).
#
# The PostgreSQL server is a cluster of its own in the temp directory with
# its durable defaults (fsync, synchronous_commit on) and
# pg_stat_statements, which counts every statement the nodes send: one
# statement is one round trip, so "round trips per message" is the count
# over the phase divided by the messages accepted (start-up excluded: the
# counters are reset once the node is ready).
#
# Environment (defaults in brackets):
#   MESSAGES [20000] SIZE [2048] CONCURRENCY [50] DURATION [120] (s cap)
#   PORT_BASE [12000] (node a: SMTP +25, HTTP +80; node b: +1025, +1080;
#   PostgreSQL +432) IDLE_WAIT [180] KEEP_WORK [0]
#   SHOW_STATEMENTS [0] (1: print the statements sent most often, per phase)
set -euo pipefail

MESSAGES=${MESSAGES:-20000}
SIZE=${SIZE:-2048}
CONCURRENCY=${CONCURRENCY:-50}
DURATION=${DURATION:-120}
PORT_BASE=${PORT_BASE:-12000}
IDLE_WAIT=${IDLE_WAIT:-180}
KEEP_WORK=${KEEP_WORK:-0}
SHOW_STATEMENTS=${SHOW_STATEMENTS:-0}
PG_PORT=$((PORT_BASE + 432))
ADMIN_TOKEN=bench-admin-token-0123456789abcdef
RW_USER=bench
RW_PASS='bench password 0123456789'

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/rackwave
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
[[ -x $BIN ]] || die "$BIN is missing: cargo build --release"
command -v python3 >/dev/null || die "python3 is needed"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PG_BIN/initdb ]] || die "PostgreSQL is not installed (apt-get install postgresql)"

WORK=$(mktemp -d /var/tmp/rackwave-postgres.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    pg stop -m fast >/dev/null 2>&1
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- PostgreSQL -------------------------------------------------------------------

# PostgreSQL refuses to run as root: then its commands run as `postgres`.
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg() { as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w "$@"; }
psql_admin() { as_pg "$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres_admin "$@"; }

mkdir "$WORK/pg"
[[ $(id -u) == 0 ]] && chown postgres "$WORK/pg"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres_admin -A trust --no-locale -E UTF8 >/dev/null
cat >>"$WORK/pg/postgresql.conf" <<EOF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = on
max_connections = 200
EOF
pg start >/dev/null
psql_admin -d postgres -c "CREATE ROLE rackwave LOGIN"

fresh_database() {
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS rackwave WITH (FORCE)"
    psql_admin -d postgres -c "CREATE DATABASE rackwave OWNER rackwave"
    psql_admin -d rackwave -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
}

statements() {
    psql_admin -d rackwave -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid WHERE r.rolname = 'rackwave' AND d.datname = 'rackwave'"
}

# --- the nodes -------------------------------------------------------------------

node_start() { # name backend smtp-port http-port
    local dir=$WORK/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    local storage="path = \"data\""
    if [[ $2 == postgres ]]; then
        local url="postgres://rackwave@127.0.0.1:$PG_PORT/rackwave?sslmode=disable"
        storage+=$'\nbackend = "postgres"\n\n[storage.postgres]\n'
        storage+="portal_url = \"$url\""$'\n'"migosmtp_url = \"$url\""$'\n'"telnxo_url = \"$url\""
    fi
    cat >"$dir/config.toml" <<EOF
# Written by benches/postgres.sh.
[node]
id = "$1"

[storage]
$storage

[smtp]
listen = "127.0.0.1:$3"
listen_tls = "127.0.0.1:$(($3 + 440))"
hostname = "rackwave-bench.localdomain"
max_connections = 5000
max_connections_per_ip = 2000

[http]
listen = "127.0.0.1:$4"
rate_limit_per_second = 0

[admin]
token = "$ADMIN_TOKEN"

[billing]
cycle_secs = 0

[delivery]
enabled = false
hostname = "rackwave-bench.localdomain"
EOF
    "$BIN" serve --config "$dir/config.toml" >"$dir/rackwave.log" 2>&1 &
    PIDS+=($!)
    wait_port "$4" 30 || die "node $1 did not start: $(tail -3 "$dir/rackwave.log")"
    wait_port "$3" 30 || die "node $1's SMTP did not start"
}

nodes_stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# The workspace and the SMTP account, made through the first node.
account() { # http-port config
    local admin=("$BIN" admin --config "$2") ws
    export RACKWAVE_ADMIN_TOKEN=$ADMIN_TOKEN
    ws=$("${admin[@]}" workspaces create --name bench | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    "${admin[@]}" smtp-accounts create --workspace "$ws" --username "$RW_USER" --password "$RW_PASS" \
        --daily-quota 1000000000 >/dev/null
}

bench() { # smtp-port messages concurrency out
    "$BIN" bench smtp --target "127.0.0.1:$1" --auth "$RW_USER:$RW_PASS" --concurrency "$3" \
        --messages "$2" --size "$SIZE" --duration "$DURATION" --json >"$4" ||
        log "warning: the bench against port $1 reported failure (see $4)"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
A_SMTP=$((PORT_BASE + 25)) A_HTTP=$((PORT_BASE + 80))
B_SMTP=$((PORT_BASE + 1025)) B_HTTP=$((PORT_BASE + 1080))

phase() { # name
    local name=$1 before after ok rate p99
    wait_idle
    fresh_database
    case $name in
    sled)
        node_start node-a sled "$A_SMTP" "$A_HTTP"
        account "$A_HTTP" "$WORK/node-a/config.toml"
        before=$(statements)
        bench "$A_SMTP" "$MESSAGES" "$CONCURRENCY" "$WORK/$name-a.json" ;;
    postgres)
        node_start node-a postgres "$A_SMTP" "$A_HTTP"
        account "$A_HTTP" "$WORK/node-a/config.toml"
        before=$(statements)
        bench "$A_SMTP" "$MESSAGES" "$CONCURRENCY" "$WORK/$name-a.json" ;;
    two)
        node_start node-a postgres "$A_SMTP" "$A_HTTP"
        node_start node-b postgres "$B_SMTP" "$B_HTTP"
        account "$A_HTTP" "$WORK/node-a/config.toml"
        before=$(statements)
        bench "$A_SMTP" $((MESSAGES / 2)) $((CONCURRENCY / 2)) "$WORK/$name-a.json" &
        local first=$!
        bench "$B_SMTP" $((MESSAGES / 2)) $((CONCURRENCY / 2)) "$WORK/$name-b.json"
        wait "$first" ;;
    esac
    after=$(statements)
    if [[ $SHOW_STATEMENTS == 1 ]]; then
        log "$name: the statements sent most often"
        psql_admin -d rackwave -c "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid WHERE r.rolname = 'rackwave' AND d.datname = 'rackwave' ORDER BY calls DESC LIMIT 15" >&2
    fi
    nodes_stop
    python3 - "$WORK" "$name" "$before" "$after" >>"$RESULTS" <<'PY'
import glob, json, sys
work, name, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
runs = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/{name}-*.json"))]
ok = sum(r["messages_ok"] for r in runs)
failed = sum(r["messages_failed"] for r in runs)
elapsed = max(r["elapsed_secs"] for r in runs)
p99 = max(r["latency_ms_p99"] for r in runs)
print(f"{name}\t{ok}\t{failed}\t{ok / elapsed:.0f}\t{p99:.1f}\t{(after - before) / max(ok, 1):.3f}")
PY
    log "$name: $(tail -1 "$RESULTS")"
}

log "work dir $WORK; $MESSAGES messages of $SIZE octets a phase, $CONCURRENCY connections"
for name in sled postgres two; do
    phase "$name"
done

python3 - "$RESULTS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, ok, failed, rate, p99, trips = line.rstrip("\n").split("\t")
    rows[name] = (int(ok), int(failed), float(rate), float(p99), float(trips))
print()
print("| phase | accepted | failed | msg/s | p99 (ms) | PostgreSQL round trips / msg |")
print("|---|---:|---:|---:|---:|---:|")
for name, (ok, failed, rate, p99, trips) in rows.items():
    print(f"| {name} | {ok:,} | {failed:,} | {rate:,.0f} | {p99:.1f} | {trips:.3f} |")
sled, pg, two = rows["sled"][2], rows["postgres"][2], rows["two"][2]
print()
print(f"PostgreSQL against sled, one node: {pg / sled:.2f} (target >= 0.70)")
print(f"two nodes against one (PostgreSQL): {two / pg:.2f}")
PY
