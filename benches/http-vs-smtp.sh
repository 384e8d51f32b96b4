#!/usr/bin/env bash
# The HTTP send API against SMTP acceptance, same server, same machine
# (issue 11): does a message cost about the same whichever way it comes in?
#
#   benches/http-vs-smtp.sh                 # 3 rounds of 20,000 x 2 KB
#   ROUNDS=1 MESSAGES=5000 benches/http-vs-smtp.sh
#
# Builds nothing: it runs target/release/rackwave (`cargo build --release`
# first). For each round, one after the other, never two at once:
#   1. SMTP:        rackwave bench smtp --auth, SMTP_CONCURRENCY connections;
#   2. HTTP single: rackwave bench http, one message a request
#                   (POST /migosmtp/v1/messages), HTTP_CONCURRENCY keep-alive
#                   connections;
#   3. HTTP batch:  rackwave bench http --batch BATCH
#                   (POST /migosmtp/v1/messages/batch), BATCH_CONCURRENCY
#                   connections;
# each against a freshly started `rackwave serve` with an empty data
# directory (so no load runs against a spool its predecessors filled, and
# the order within a round favours no one), loopback ports, `[delivery]
# enabled = false` (durable acceptance only: every phase stops at the
# spool's flushed group commit, nothing is relayed), the per-key rate limit
# off, one workspace without quota holding an SMTP account and a MigoSMTP
# API key. MESSAGES messages of SIZE octets in each phase: the SMTP message
# is SIZE octets headers included, the HTTP message has a text of SIZE
# octets, which the server composes into a MIME message a little larger.
#
# The server's CPU time (from /proc) and the load generator's (a reaped
# child's, from its parent shell) are recorded per phase: the client runs
# on the same two cores and its share is the server's loss.
#
# Prints one table: medians of the rounds, each ratio the median of the
# per-round ratios, against the issue's targets (HTTP single >= 80% of SMTP,
# HTTP p99 < 30 ms, batch >= 3x single).
#
# Environment (defaults in brackets):
#   ROUNDS [3] MESSAGES [20000] SIZE [2048] DURATION [60] (s, cap of a phase)
#   SMTP_CONCURRENCY [50] HTTP_CONCURRENCY [50] BATCH [100]
#   BATCH_CONCURRENCY [10] PORT_BASE [11000] (SMTP +25, TLS +465, HTTP +80)
#   RW_BIN [target/release/rackwave] (the server under test; the bench tools
#   are always this tree's build)
#   RW_HTTP ["rate_limit_per_second = 0"] (lines of the server's [http]
#   section, `\n`-separated; empty for a build without rate limits)
#   IDLE_WAIT [180] (s to wait for other builds to finish before a phase)
#   KEEP_WORK [0] (keep the temp dir)
#   PHASES ["smtp single batch"] (a subset for quick A/B runs of a change:
#   "single batch" gives the ratio the issue names)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-20000}
SIZE=${SIZE:-2048}
DURATION=${DURATION:-60}
SMTP_CONCURRENCY=${SMTP_CONCURRENCY:-50}
HTTP_CONCURRENCY=${HTTP_CONCURRENCY:-50}
BATCH=${BATCH:-100}
BATCH_CONCURRENCY=${BATCH_CONCURRENCY:-10}
PORT_BASE=${PORT_BASE:-11000}
RW_HTTP=${RW_HTTP-rate_limit_per_second = 0}
IDLE_WAIT=${IDLE_WAIT:-180}
KEEP_WORK=${KEEP_WORK:-0}
PHASES=${PHASES:-smtp single batch}

SMTP_PORT=$((PORT_BASE + 25))
TLS_PORT=$((PORT_BASE + 465))
HTTP_PORT=$((PORT_BASE + 80))
ADMIN_TOKEN=bench-admin-token-0123456789abcdef
RW_USER=bench
RW_PASS='bench password 0123456789'

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/rackwave
RW_BIN=${RW_BIN:-$BIN}
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

[[ -x $BIN ]] || die "$BIN is missing: cargo build --release"
[[ -x $RW_BIN ]] || die "$RW_BIN is missing"
command -v python3 >/dev/null || die "python3 is needed for the JSON and the table"

WORK=$(mktemp -d /var/tmp/rackwave-http-vs-smtp.XXXXXX)
RESULTS_TSV=$WORK/results.tsv
: >"$RESULTS_TSV"
RW_DIR=$WORK/rackwave
RW_PID=

cleanup() {
    set +e
    [[ -n $RW_PID ]] && kill "$RW_PID" 2>/dev/null && wait "$RW_PID" 2>/dev/null
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- helpers -------------------------------------------------------------------

record() { # round figure value
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS_TSV"
}

# CPU seconds (user + system) of the running process $1.
proc_cpu() {
    awk -v hz="$CLK_TCK" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

# Runs a command (stdout to the caller), writing its CPU seconds to file $1:
# the command is the only child of a shell that reads, once it has reaped
# it, its own children's times (cutime + cstime).
timed() { # cpu-file command...
    local f=$1
    shift
    sh -c '"$@"; rc=$?; awk -v hz="'"$CLK_TCK"'" "{ printf \"%.3f\\n\", (\$16 + \$17) / hz }" /proc/$$/stat >"$0"; exit $rc' "$f" "$@"
}

# --- the server -------------------------------------------------------------------

# A fresh server on an empty data directory; sets RW_PID and API_KEY.
rw_start() {
    rm -rf "$RW_DIR"
    mkdir -p "$RW_DIR"
    cat >"$RW_DIR/config.toml" <<EOF
# Written by benches/http-vs-smtp.sh.
[storage]
path = "data"

[smtp]
listen = "127.0.0.1:$SMTP_PORT"
listen_tls = "127.0.0.1:$TLS_PORT"
hostname = "rackwave-bench.localdomain"
max_connections = 5000
max_connections_per_ip = 2000

[http]
listen = "127.0.0.1:$HTTP_PORT"
$(printf '%b' "$RW_HTTP")

[admin]
token = "$ADMIN_TOKEN"

[delivery]
# Durable acceptance only: what is accepted stays in the spool.
enabled = false
hostname = "rackwave-bench.localdomain"
EOF
    "$RW_BIN" serve --config "$RW_DIR/config.toml" >"$RW_DIR/rackwave.log" 2>&1 &
    RW_PID=$!
    wait_port "$HTTP_PORT" 30 || die "Rackwave did not start: $(tail -3 "$RW_DIR/rackwave.log")"
    wait_port "$SMTP_PORT" 30 || die "Rackwave's SMTP did not start"
    local admin=("$RW_BIN" admin --config "$RW_DIR/config.toml") ws
    export RACKWAVE_ADMIN_TOKEN=$ADMIN_TOKEN
    ws=$("${admin[@]}" workspaces create --name bench | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    "${admin[@]}" smtp-accounts create --workspace "$ws" --username "$RW_USER" --password "$RW_PASS" \
        --daily-quota 1000000000 >/dev/null
    API_KEY=$("${admin[@]}" api-keys create --workspace "$ws" --platform migosmtp |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
}

rw_stop() {
    kill "$RW_PID" 2>/dev/null || true
    wait "$RW_PID" 2>/dev/null || true
    RW_PID=
}

# --- one phase ----------------------------------------------------------------------

measure() { # round phase
    local round=$1 phase=$2 out cpu0 cpu1 client ok cmd
    out=$WORK/$round-$phase.json
    case $phase in
    smtp)
        cmd=("$BIN" bench smtp --target "127.0.0.1:$SMTP_PORT" --auth "$RW_USER:$RW_PASS"
            --concurrency "$SMTP_CONCURRENCY") ;;
    single)
        cmd=("$BIN" bench http --target "http://127.0.0.1:$HTTP_PORT"
            --concurrency "$HTTP_CONCURRENCY") ;;
    batch)
        cmd=("$BIN" bench http --target "http://127.0.0.1:$HTTP_PORT"
            --concurrency "$BATCH_CONCURRENCY" --batch "$BATCH") ;;
    esac
    cmd+=(--messages "$MESSAGES" --size "$SIZE" --duration "$DURATION" --json)
    wait_idle
    rw_start
    cpu0=$(proc_cpu "$RW_PID")
    # The key through the environment, not the command line.
    RACKWAVE_API_KEY=$API_KEY timed "$WORK/client-cpu" "${cmd[@]}" >"$out" ||
        log "warning: $phase reported failure (see $out)"
    cpu1=$(proc_cpu "$RW_PID")
    client=$(cat "$WORK/client-cpu")
    # The spool's group commits: how many messages each made durable, and
    # how long its two syncs took (what a message waits for beyond CPU).
    curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" >"$WORK/$round-$phase.metrics" || true
    rw_stop
    ok=$(jget "$out" 'd["messages_ok"]')
    record "$round" "${phase}_rate" "$(jget "$out" 'd["messages_per_sec"]')"
    record "$round" "${phase}_p50" "$(jget "$out" 'd["latency_ms_p50"]')"
    record "$round" "${phase}_p99" "$(jget "$out" 'd["latency_ms_p99"]')"
    record "$round" "${phase}_failed" "$(jget "$out" 'd["messages_failed"]')"
    record "$round" "${phase}_server_cpu" "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$ok" 'BEGIN { printf "%.4f", (n > 0 ? (b - a) * 1000 / n : 0) }')"
    record "$round" "${phase}_commit_msgs" "$(awk -v n="$ok" '/^rackwave_spool_commits_total/ { c = $2 } END { printf "%.1f", (c > 0 ? n / c : 0) }' "$WORK/$round-$phase.metrics")"
    record "$round" "${phase}_flush_ms" "$(awk '/^rackwave_spool_flushes_total/ { f = $2 } /^rackwave_spool_flush_seconds_total/ { s = $2 } END { printf "%.2f", (f > 0 ? s * 1000 / f : 0) }' "$WORK/$round-$phase.metrics")"
    record "$round" "${phase}_client_cpu" "$(awk -v c="$client" -v n="$ok" 'BEGIN { printf "%.4f", (n > 0 ? c * 1000 / n : 0) }')"
    log "$phase: $ok ok, $(jget "$out" 'round(d["messages_per_sec"])') msg/s, p99 $(jget "$out" 'd["latency_ms_p99"]') ms, failed $(jget "$out" 'd["messages_failed"]')$(jget "$out" '"; first error: " + d["first_error"] if d.get("first_error") else ""')"
}

# --- the run -------------------------------------------------------------------------

for phase in $PHASES; do
    case $phase in smtp | single | batch) ;; *) die "unknown phase $phase (smtp, single, batch)" ;; esac
done
log "work dir $WORK; $ROUNDS rounds ($PHASES) of $MESSAGES messages of $SIZE octets: SMTP $SMTP_CONCURRENCY conn, HTTP $HTTP_CONCURRENCY conn, batch $BATCH x $BATCH_CONCURRENCY conn"
START=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    for phase in $PHASES; do
        measure "$round" "$phase"
    done
done
ELAPSED=$(($(date +%s) - START))

DISK=$(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')
python3 - "$RESULTS_TSV" <<EOF
import statistics, sys
vals, rounds = {}, {}
for line in open(sys.argv[1]):
    if line.strip():
        rnd, fig, v = line.rstrip("\n").split("\t")
        vals.setdefault(fig, []).append(float(v))
        rounds.setdefault(int(rnd), {})[fig] = float(v)

def med(fig):
    v = vals.get(fig)
    return statistics.median(v) if v else None

def ratio(a, b):
    v = [r[a] / r[b] for r in rounds.values() if r.get(a) and r.get(b)]
    return statistics.median(v) if v else None

n, s = int("$MESSAGES"), int("$SIZE")
print()
print(f"HTTP send API vs SMTP acceptance: {n:,} messages of {s:,} octets a phase, medians of $ROUNDS rounds "
      f"(SMTP, HTTP single, HTTP batch, each on a fresh server), $ELAPSED s")
print(f"SMTP: $SMTP_CONCURRENCY connections, AUTH PLAIN; HTTP single: $HTTP_CONCURRENCY keep-alive connections; "
      f"HTTP batch: $BATCH messages a request, $BATCH_CONCURRENCY connections; [delivery] enabled = false")
print(f"machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), disk $DISK")
print()
rows = [
    ("SMTP acceptance (msg/s)", med("smtp_rate"), "", None),
    ("HTTP single (msg/s)", med("single_rate"), "", None),
    ("  ratio to SMTP", ratio("single_rate", "smtp_rate"), ">= 0.80", lambda v: v >= 0.80),
    ("  request latency p99 (ms)", med("single_p99"), "< 30", lambda v: v < 30),
    ("HTTP batch (msg/s)", med("batch_rate"), "", None),
    ("  ratio to HTTP single", ratio("batch_rate", "single_rate"), ">= 3", lambda v: v >= 3),
]
print(f"| {'figure':<30} | {'median':>9} | {'target':>7} | met |")
print(f"|{'-' * 32}|{'-' * 10}:|{'-' * 8}:|-----|")
for label, v, target, ok in rows:
    vs = f"{v:.4g}" if v is not None else "–"
    met = ("yes" if ok(v) else "**no**") if ok and v is not None else ""
    print(f"| {label:<30} | {vs:>9} | {target:>7} | {met} |")
print()
print("also (medians):")
for phase, label in (("smtp", "SMTP"), ("single", "HTTP single"), ("batch", "HTTP batch")):
    def f(k, fmt="{:.3g}"):
        v = med(f"{phase}_{k}")
        return fmt.format(v) if v is not None else "–"
    print(f"  {label:<12} p50 {f('p50')} ms, p99 {f('p99')} ms (per {'request' if phase != 'smtp' else 'message'}), "
          f"CPU ms/msg: server {f('server_cpu')}, client {f('client_cpu')}, failed {f('failed', '{:.0f}')}; "
          f"spool: {f('commit_msgs')} msg a group commit, its syncs {f('flush_ms')} ms")
print()
print("per round:")
for fig, v in sorted(vals.items()):
    print(f"  {fig:<18} " + "  ".join(f"{x:.4g}" for x in v))
EOF
if [[ -f $WORK/busy ]]; then
    echo "note: $(wc -l <"$WORK/busy") phase(s) started while a compiler was running."
fi
