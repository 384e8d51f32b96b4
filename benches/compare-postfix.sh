#!/usr/bin/env bash
# Races Rackwave against Postfix on this machine, durable to durable.
#
#   benches/compare-postfix.sh              # 3 rounds of 20,000 x 2 KB, 50 connections
#   DOMAINS=1000 benches/compare-postfix.sh # the same spread over 1,000 domains
#
# What it does:
#   1. installs Postfix from Debian's packages if it is missing (needs root);
#   2. builds Rackwave (`cargo build --release`);
#   3. sets up a private Postfix instance (`postfix -c DIR`, its own
#      config directory, queue directory and data directory under a temp
#      dir; the system's /etc/postfix is never touched, and the system
#      instance is never started), listening on a loopback port, with a
#      transport map sending the bench domains (RCPT_DOMAIN and its
#      subdomains) to `smtp:[127.0.0.1]:SINK`, Postfix's own defaults
#      otherwise. Postfix is spared DNS lookups: the bracketed next hop is
#      used as is. Its queue manager keys destinations by next hop, so all
#      the bench domains share one Postfix destination (one concurrency
#      limit) whatever DOMAINS is;
#   4. writes a Rackwave config.toml (temp data dir, loopback ports, no
#      smarthost: `[delivery] nameservers` = the bench's DNS server and
#      `smtp_port` = the sink's port, so Rackwave resolves the MX of every
#      destination domain and keeps one queue per domain as in production;
#      its shipped delivery shaping, plus RW_SHAPING if set; quotas far
#      above the run) and creates a workspace and an SMTP account through
#      the admin API;
#   5. for each round, Postfix then Rackwave, never both at once:
#        (a) acceptance with the queue held: Postfix with
#            `smtpd_end_of_data_restrictions = check_client_access static:HOLD`
#            (every accepted message goes to the hold queue, the queue
#            manager never touches it), Rackwave with `[delivery] enabled =
#            false`; `rackwave bench smtp`;
#        (b) end-to-end relay to a sink: `rackwave bench e2e`, which starts
#            the sink (and, for Rackwave, the DNS server on DNS_PORT giving
#            every destination domain an MX at the sink's address), submits
#            with the recipients spread round-robin over DOMAINS domains, and
#            waits for the last arrival; besides rates and latencies it
#            reports the longest stall: the longest time between two
#            consecutive arrivals at the sink;
#      each with a fresh, empty queue, and the MTA's CPU time (utime+stime
#      of all its processes, reaped children included, from /proc) read
#      before and after;
#      and, with PHASES=depth, the queue-depth run: accept DEPTH_BATCHES
#      loads of MESSAGES each into a held queue (the acceptance rate at each
#      depth), then restart the MTA relaying to a sink (`rackwave bench
#      sink`, with the same DNS for Rackwave, the same transport map for
#      Postfix) and time the drain of the whole queue;
#   6. the direct client-to-sink reference rates, no MTA in between:
#      smtp-source -> smtp-sink and rackwave bench smtp -> rackwave bench
#      sink, at 10 and 50 connections;
#   7. prints one table: figure, Postfix median, Rackwave median, ratio.
#
# Both MTAs fsync a message before acknowledging it: Postfix's cleanup
# fsyncs the queue file before smtpd answers 250, Rackwave answers 250 only
# after the spool's (group) commit is flushed.
#
# Every load is bounded by a message count and by --duration; every wait is
# bounded too. The default run takes about 10-15 minutes after the build.
#
# Environment (defaults in brackets):
#   ROUNDS [3] MESSAGES [20000] CONCURRENCY [50] SIZE [2048] (octets)
#   DOMAINS [1] (destination domains the recipients are spread over,
#   round-robin: RCPT_DOMAIN itself for 1, else d0.RCPT_DOMAIN to
#   d<N-1>.RCPT_DOMAIN)  RCPT_DOMAIN [sink.test]
#   RW_SHAPING [] (lines added to Rackwave's [delivery.shaping], separated
#   by newlines or `\n`, e.g. "max_connections = 20\nmessages_per_connection
#   = 1000"; empty: the shipped shaping)
#   DURATION [60] (s, cap of each load)  WAIT [180] (s, cap of each delivery)
#   ONLY [both] (postfix | rackwave)  PHASES ["accept e2e"], also "depth"
#   DEPTH_BATCHES [5] (loads into the held queue in the depth phase)  REFS [1] (direct
#   client->sink references: 0 to skip)  PIPELINING [0]
#   SKIP_BUILD [0]  KEEP_WORK [0] (keep the temp dir)  PF_LOG [0] (1: Postfix
#   writes maillog_file, which costs it CPU; off, Postfix logs to a syslog
#   socket that does not exist here, as cheap as logging gets)
#   IDLE_WAIT [180] (s to wait for other builds to finish before a round)
#   PORT_BASE [10000] (Postfix +25, sink +26, reference sink +27, bench DNS
#   +53 on UDP and TCP, Rackwave +125, +180 and +465)
#   RW_BIN [target/release/rackwave] (the Rackwave under test, e.g. an older
#   build to compare; the bench tools are always this tree's build)
#   RESULTS (file to append the raw results to)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-20000}
CONCURRENCY=${CONCURRENCY:-50}
SIZE=${SIZE:-2048}
DOMAINS=${DOMAINS:-1}
RCPT_DOMAIN=${RCPT_DOMAIN:-sink.test}
RW_SHAPING=${RW_SHAPING:-}
DURATION=${DURATION:-60}
WAIT=${WAIT:-180}
ONLY=${ONLY:-both}
PHASES=${PHASES-accept e2e}
DEPTH_BATCHES=${DEPTH_BATCHES:-5}
REFS=${REFS:-1}
PIPELINING=${PIPELINING:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
PF_LOG=${PF_LOG:-0}
IDLE_WAIT=${IDLE_WAIT:-180}
PORT_BASE=${PORT_BASE:-10000}

PF_PORT=$((PORT_BASE + 25))
RW_PORT=$((PORT_BASE + 125))
RW_TLS_PORT=$((PORT_BASE + 465))
RW_HTTP_PORT=$((PORT_BASE + 180))
SINK_PORT=$((PORT_BASE + 26))
REF_PORT=$((PORT_BASE + 27))
DNS_PORT=$((PORT_BASE + 53))
RW_USER=bench
RW_PASS='bench password 0123456789'
ADMIN_TOKEN=bench-admin-token-0123456789abcdef

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/rackwave
# The Rackwave under test (the bench tools are always $BIN).
RW_BIN=${RW_BIN:-$BIN}
CLK_TCK=$(getconf CLK_TCK)
export PATH=$PATH:/usr/sbin:/sbin

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (Postfix needs it to start its daemons)"

# --- prerequisites -----------------------------------------------------------

if ! command -v postfix >/dev/null || ! command -v smtp-source >/dev/null; then
    log "installing Postfix from Debian's packages"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
if ! command -v python3 >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-minimal >/dev/null
fi
PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo unknown)

if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "$BIN is missing"

WORK=$(mktemp -d /var/tmp/rackwave-vs-postfix.XXXXXX)
chmod 755 "$WORK" # Postfix's unprivileged daemons must reach their queue
RESULTS_TSV=$WORK/results.tsv
: >"$RESULTS_TSV"

PF_ETC=$WORK/postfix/etc
PF_QUEUE=$WORK/postfix/queue
PF_DATA=$WORK/postfix/data
RW_DIR=$WORK/rackwave
RW_PID=
SINK_PIDS=()

cleanup() {
    set +e
    [[ -n $RW_PID ]] && kill "$RW_PID" 2>/dev/null && wait "$RW_PID" 2>/dev/null
    if [[ -f $PF_QUEUE/pid/master.pid ]]; then postfix -c "$PF_ETC" stop >/dev/null 2>&1; fi
    for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- helpers -------------------------------------------------------------------

# CPU seconds (user + system) used so far by process $1 and all its
# descendants, including children that already exited and were reaped
# (their time is in the parent's cutime/cstime).
tree_cpu() {
    sed -E 's/^([0-9]+) \(.*\) /\1 /' /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" -v hz="$CLK_TCK" '
        { ppid[$1] = $3; t[$1] = $13 + $14 + $15 + $16 }
        END {
            s = 0
            for (p in t) {
                q = p; n = 0
                while (q != root && q in ppid && q > 1 && n < 64) { q = ppid[q]; n++ }
                if (q == root) s += t[p]
            }
            printf "%.3f\n", s / hz
        }'
}

# Percentage of CPU busy over one second, all cores.
cpu_busy() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); tot = 0
        for (i = 2; i <= n; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%d\n", (tot > 0 ? 100 * (tot - idle) / tot : 0) }'
}

# Other engineers build on this machine: wait (bounded) until no compiler
# runs and the CPU is mostly idle before measuring.
wait_idle() {
    local waited=0 busy
    while :; do
        busy=$(cpu_busy)
        if ! pgrep -x rustc >/dev/null && ((busy < 25)); then return 0; fi
        if ((waited == 0)); then log "machine busy (${busy}% CPU or rustc running); waiting up to ${IDLE_WAIT}s"; fi
        if ((waited >= IDLE_WAIT)); then
            log "warning: still busy after ${waited}s; measuring anyway"
            echo "busy" >>"$WORK/busy"
            return 0
        fi
        sleep 4
        waited=$((waited + 5))
    done
}

wait_port() { # host port seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

wait_port_free() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

jget() { # file python-expression-on-d
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}

record() { # round mta figure value
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS_TSV"
}

bench_flags() {
    local f=(--messages "$MESSAGES" --concurrency "$CONCURRENCY" --size "$SIZE" --duration "$DURATION"
        --domains "$DOMAINS" --to-domain "$RCPT_DOMAIN" --json)
    [[ $PIPELINING == 1 ]] && f+=(--pipelining)
    printf '%s\n' "${f[@]}"
}
mapfile -t BENCH_FLAGS < <(bench_flags)

# --- Postfix ---------------------------------------------------------------------

pf_setup() {
    mkdir -p "$PF_ETC" "$PF_QUEUE" "$PF_DATA"
    chown postfix "$PF_DATA"
    cat >"$PF_ETC/main.cf" <<EOF
# A private Postfix instance for benches/compare-postfix.sh.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# The bench domains go to the sink (see the transport file), routed by
# recipient domain as Rackwave routes them; no relayhost.
transport_maps = texthash:$PF_ETC/transport
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
biff = no
# Room for the scaling runs (500 connections); mynetworks is exempt from
# the per-client limits anyway.
default_process_limit = 600
smtpd_client_connection_count_limit = 0
message_size_limit = 26214400
# Set per phase by pf_start: HOLD for the acceptance runs.
smtpd_end_of_data_restrictions =
EOF
    if [[ $PF_LOG == 1 ]]; then echo "maillog_file = $WORK/postfix/maillog" >>"$PF_ETC/main.cf"; fi
    # `domain` matches the domain itself, `.domain` its subdomains
    # (transport(5)).
    printf '%s smtp:[127.0.0.1]:%s\n' "$RCPT_DOMAIN" "$SINK_PORT" ".$RCPT_DOMAIN" "$SINK_PORT" >"$PF_ETC/transport"
    # Upstream's services, none chrooted (the queue is in a temp dir).
    cat >"$PF_ETC/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    postfix -c "$PF_ETC" check
}

pf_start() { # hold | relay [keep: keep the queue, release what is held]
    if [[ $1 == hold ]]; then
        postconf -c "$PF_ETC" -e 'smtpd_end_of_data_restrictions = check_client_access static:HOLD'
    else
        postconf -c "$PF_ETC" -e 'smtpd_end_of_data_restrictions ='
    fi
    local d
    if [[ ${2:-} == keep ]]; then
        postsuper -c "$PF_ETC" -H ALL 2>/dev/null
    else
        # An empty queue (what `postsuper -d ALL` does, without its logging).
        for d in incoming active deferred defer hold bounce trace flush corrupt saved maildrop; do
            [[ -d $PF_QUEUE/$d ]] && find "$PF_QUEUE/$d" -type f -delete
        done
    fi
    [[ -f $WORK/postfix/maillog ]] && : >"$WORK/postfix/maillog"
    postfix -c "$PF_ETC" start >/dev/null 2>&1
    wait_port 127.0.0.1 "$PF_PORT" 20 || die "Postfix did not start"
    MTA_PID=$(tr -d ' \n' <"$PF_QUEUE/pid/master.pid")
}

pf_stop() {
    postfix -c "$PF_ETC" stop >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$MTA_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait_port_free "$PF_PORT" 10 || die "Postfix still listening"
}

# --- Rackwave ----------------------------------------------------------------------

rw_start() { # hold | relay [keep: keep the data directory]
    local enabled=true keep=${2:-}
    [[ $1 == hold ]] && enabled=false
    if [[ $keep != keep ]]; then
        rm -rf "$RW_DIR"
    fi
    mkdir -p "$RW_DIR"
    cat >"$RW_DIR/config.toml" <<EOF
# Written by benches/compare-postfix.sh.
[storage]
path = "data"

[smtp]
listen = "127.0.0.1:$RW_PORT"
listen_tls = "127.0.0.1:$RW_TLS_PORT"
hostname = "rackwave-bench.localdomain"
max_connections = 5000
max_connections_per_ip = 2000

[http]
listen = "127.0.0.1:$RW_HTTP_PORT"

[admin]
token = "$ADMIN_TOKEN"

[delivery]
enabled = $enabled
hostname = "rackwave-bench.localdomain"
# Every bench domain's MX is the sink, served by the bench's DNS server
# (rackwave bench e2e or sink --dns-listen). The shipped shaping applies,
# TLS included: the sink offers no STARTTLS, so opportunistic TLS sends in
# clear, as Postfix does here.
nameservers = ["127.0.0.1:$DNS_PORT"]
smtp_port = $SINK_PORT
EOF
    if [[ -n $RW_SHAPING ]]; then
        printf '\n[delivery.shaping]\n%b\n' "$RW_SHAPING" >>"$RW_DIR/config.toml"
    fi
    "$RW_BIN" serve --config "$RW_DIR/config.toml" >"$RW_DIR/rackwave.log" 2>&1 &
    RW_PID=$!
    MTA_PID=$RW_PID
    wait_port 127.0.0.1 "$RW_HTTP_PORT" 30 || die "Rackwave did not start: $(tail -3 "$RW_DIR/rackwave.log")"
    [[ $keep == keep ]] && return 0
    local ws
    ws=$(RACKWAVE_ADMIN_TOKEN=$ADMIN_TOKEN "$RW_BIN" admin --config "$RW_DIR/config.toml" workspaces create --name bench |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    RACKWAVE_ADMIN_TOKEN=$ADMIN_TOKEN "$RW_BIN" admin --config "$RW_DIR/config.toml" smtp-accounts create \
        --workspace "$ws" --username "$RW_USER" --password "$RW_PASS" --daily-quota 1000000000 >/dev/null
}

rw_stop() {
    kill "$RW_PID" 2>/dev/null || true
    wait "$RW_PID" 2>/dev/null || true
    RW_PID=
    wait_port_free "$RW_PORT" 10 || die "Rackwave still listening"
}

# --- one measurement ---------------------------------------------------------------

measure() { # round mta phase
    local round=$1 mta=$2 phase=$3 target auth=() dns=() out cpu0 cpu1 cpu ok
    if [[ $mta == postfix ]]; then
        target=127.0.0.1:$PF_PORT
    else
        target=127.0.0.1:$RW_PORT
        auth=(--auth "$RW_USER:$RW_PASS")
        dns=(--dns-listen "127.0.0.1:$DNS_PORT")
    fi
    out=$WORK/$round-$mta-$phase.json
    cpu0=$(tree_cpu "$MTA_PID")
    if [[ $phase == accept ]]; then
        "$BIN" bench smtp --target "$target" "${auth[@]}" "${BENCH_FLAGS[@]}" >"$out" ||
            log "warning: $mta accept run reported failure"
        cpu1=$(tree_cpu "$MTA_PID")
        ok=$(jget "$out" 'd["messages_ok"]')
        record "$round" "$mta" accept_rate "$(jget "$out" 'd["messages_per_sec"]')"
        record "$round" "$mta" accept_p50 "$(jget "$out" 'd["latency_ms_p50"]')"
        record "$round" "$mta" accept_p99 "$(jget "$out" 'd["latency_ms_p99"]')"
        log "$mta accept: $ok ok, $(jget "$out" 'round(d["messages_per_sec"])') msg/s, failed $(jget "$out" 'd["messages_failed"]')"
    else
        "$BIN" bench e2e --target "$target" --sink-listen "127.0.0.1:$SINK_PORT" --wait "$WAIT" \
            "${dns[@]}" "${auth[@]}" "${BENCH_FLAGS[@]}" >"$out" ||
            log "warning: $mta e2e run incomplete (see $out)"
        cpu1=$(tree_cpu "$MTA_PID")
        ok=$(jget "$out" 'd["acceptance"]["messages_ok"]')
        record "$round" "$mta" e2e_accept_rate "$(jget "$out" 'd["acceptance"]["messages_per_sec"]')"
        record "$round" "$mta" e2e_rate "$(jget "$out" 'd["delivered_per_sec"]')"
        record "$round" "$mta" e2e_p50 "$(jget "$out" 'd["latency_ms_p50"]')"
        record "$round" "$mta" e2e_p99 "$(jget "$out" 'd["latency_ms_p99"]')"
        record "$round" "$mta" e2e_max_gap "$(jget "$out" 'd["max_gap_ms"]')"
        log "$mta e2e: $(jget "$out" 'd["delivered"]')/$(jget "$out" 'd["expected"]') delivered, $(jget "$out" 'round(d["delivered_per_sec"])') msg/s, p50 $(jget "$out" 'round(d["latency_ms_p50"])') ms, longest stall $(jget "$out" 'round(d["max_gap_ms"])') ms, DNS queries $(jget "$out" 'd["dns_queries"]')"
    fi
    cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$ok" 'BEGIN { printf "%.4f", (n > 0 ? (b - a) * 1000 / n : 0) }')
    record "$round" "$mta" "${phase}_cpu" "$cpu"
}

# Acceptance as the held queue grows, then the drain of the whole queue.
measure_depth() { # round mta
    local round=$1 mta=$2 target auth=() dns=() out b depth=0 cpu0 cpu1 total sinkpid
    if [[ $mta == postfix ]]; then
        target=127.0.0.1:$PF_PORT
        pf_start hold
    else
        target=127.0.0.1:$RW_PORT
        auth=(--auth "$RW_USER:$RW_PASS")
        dns=(--dns-listen "127.0.0.1:$DNS_PORT" --domains "$DOMAINS" --to-domain "$RCPT_DOMAIN")
        rw_start hold
    fi
    for ((b = 1; b <= DEPTH_BATCHES; b++)); do
        out=$WORK/$round-$mta-depth-$b.json
        "$BIN" bench smtp --target "$target" "${auth[@]}" "${BENCH_FLAGS[@]}" >"$out" || true
        # Labelled by the nominal depth, so the two MTAs' rows line up.
        record "$round" "$mta" "depth_accept_at_$(((b - 1) * MESSAGES))" "$(jget "$out" 'd["messages_per_sec"]')"
        log "$mta: $(jget "$out" 'round(d["messages_per_sec"])') msg/s accepted with $depth held"
        depth=$((depth + $(jget "$out" 'd["messages_ok"]')))
    done
    if [[ $mta == postfix ]]; then pf_stop; else rw_stop; fi
    total=$depth
    out=$WORK/$round-$mta-drain.json
    "$BIN" bench sink --listen "127.0.0.1:$SINK_PORT" "${dns[@]}" --expect "$total" --timeout "$WAIT" --json >"$out" 2>/dev/null &
    sinkpid=$!
    SINK_PIDS=($sinkpid)
    wait_port 127.0.0.1 "$SINK_PORT" 10 || die "rackwave bench sink did not start"
    if [[ $mta == postfix ]]; then pf_start relay keep; else rw_start relay keep; fi
    cpu0=$(tree_cpu "$MTA_PID")
    wait "$sinkpid" || log "warning: $mta drained only part of the queue in ${WAIT}s"
    SINK_PIDS=()
    cpu1=$(tree_cpu "$MTA_PID")
    if [[ $mta == postfix ]]; then pf_stop; else rw_stop; fi
    record "$round" "$mta" "depth_drain_rate_$((DEPTH_BATCHES * MESSAGES))" "$(jget "$out" 'd["arrival_rate"]')"
    record "$round" "$mta" "depth_drain_max_gap_$((DEPTH_BATCHES * MESSAGES))" "$(jget "$out" 'd["max_gap_ms"]')"
    record "$round" "$mta" "depth_drain_cpu_$((DEPTH_BATCHES * MESSAGES))" "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$total" 'BEGIN { printf "%.4f", (n > 0 ? (b - a) * 1000 / n : 0) }')"
    log "$mta: drained $(jget "$out" 'd["messages"]') of $total at $(jget "$out" 'round(d["arrival_rate"])') msg/s"
}

run_mta() { # round mta
    local phase
    for phase in $PHASES; do
        if [[ $phase == depth ]]; then
            wait_idle
            measure_depth "$1" "$2"
            continue
        fi
        local mode=hold
        [[ $phase == e2e ]] && mode=relay
        wait_idle
        if [[ $2 == postfix ]]; then pf_start $mode; else rw_start $mode; fi
        measure "$1" "$2" "$phase"
        if [[ $2 == postfix ]]; then pf_stop; else rw_stop; fi
    done
}

# Direct client -> sink, no MTA: what the load tools themselves can do here.
references() { # round
    local c t0 t1 out n=$((MESSAGES * 2))
    for c in 10 50; do
        smtp-sink -u postfix "127.0.0.1:$REF_PORT" 1000 >/dev/null 2>&1 &
        SINK_PIDS=($!)
        wait_port 127.0.0.1 "$REF_PORT" 10 || die "smtp-sink did not start"
        t0=$(date +%s.%N)
        timeout "$DURATION" smtp-source -s "$c" -m "$n" -l "$SIZE" -f bench@rackwave.test -t dest@sink.test "127.0.0.1:$REF_PORT" ||
            log "warning: smtp-source did not finish"
        t1=$(date +%s.%N)
        kill "${SINK_PIDS[0]}" 2>/dev/null || true
        wait "${SINK_PIDS[0]}" 2>/dev/null || true
        SINK_PIDS=()
        record "$1" ref "smtp_source_${c}" "$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.1f", n / (b - a) }')"

        "$BIN" bench sink --listen "127.0.0.1:$REF_PORT" --timeout "$DURATION" >/dev/null 2>&1 &
        SINK_PIDS=($!)
        wait_port 127.0.0.1 "$REF_PORT" 10 || die "rackwave bench sink did not start"
        out=$WORK/$1-ref-$c.json
        "$BIN" bench smtp --target "127.0.0.1:$REF_PORT" --messages "$n" --concurrency "$c" --size "$SIZE" \
            --duration "$DURATION" --json >"$out" || true
        kill "${SINK_PIDS[0]}" 2>/dev/null || true
        wait "${SINK_PIDS[0]}" 2>/dev/null || true
        SINK_PIDS=()
        record "$1" ref "rackwave_bench_${c}" "$(jget "$out" 'd["messages_per_sec"]')"
    done
}

# --- the race ------------------------------------------------------------------------

[[ $ONLY != rackwave ]] && pf_setup
log "work dir $WORK; $ROUNDS rounds of $MESSAGES messages, $CONCURRENCY connections, $SIZE octets, $DOMAINS destination domain(s)"
if [[ -n $RW_SHAPING ]]; then log "Rackwave [delivery.shaping] adds: $(printf '%b' "$RW_SHAPING" | paste -sd ';')"; fi
START=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    [[ $ONLY != rackwave ]] && run_mta "$round" postfix
    [[ $ONLY != postfix ]] && run_mta "$round" rackwave
    if [[ $REFS == 1 ]]; then
        wait_idle
        references "$round"
    fi
done
ELAPSED=$(($(date +%s) - START))
if [[ -n ${RESULTS:-} ]]; then
    sed "s/^/$CONCURRENCY\t$SIZE\t/" "$RESULTS_TSV" >>"$RESULTS"
fi

# --- the table ----------------------------------------------------------------------

DISK=$(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')
# Passed through the environment, not pasted into the program: it may hold quotes.
SHAPING_NOTE=$(printf '%b' "$RW_SHAPING" | paste -sd ';') python3 - "$RESULTS_TSV" <<EOF
import os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
vals = {}
for rnd, mta, fig, v in rows:
    vals.setdefault((mta, fig), []).append(float(v))

def med(mta, fig):
    v = vals.get((mta, fig))
    return statistics.median(v) if v else None

c, s, n = "$CONCURRENCY", "$SIZE", "$MESSAGES"
size = f"{int(s) // 1024} KB" if int(s) >= 1024 else f"{s} B"
figures = [
    ("accept_rate", f"acceptance, queue held (msg/s)", True),
    ("accept_cpu", "  MTA CPU s per 1000 msg accepted", False),
    ("accept_p50", "  latency p50, MAIL to 250 (ms)", False),
    ("accept_p99", "  latency p99, MAIL to 250 (ms)", False),
    ("e2e_rate", "end-to-end relay, delivered (msg/s)", True),
    ("e2e_accept_rate", "  acceptance while relaying (msg/s)", True),
    ("e2e_cpu", "  MTA CPU s per 1000 msg relayed", False),
    ("e2e_p50", "  latency p50, submitted to arrived (ms)", False),
    ("e2e_p99", "  latency p99, submitted to arrived (ms)", False),
    ("e2e_max_gap", "  longest stall between arrivals (ms)", False),
]
print()
domains = int("$DOMAINS")
shaping = os.environ.get("SHAPING_NOTE", "")
print(f"Rackwave vs Postfix $PF_VERSION: {c} connections, {size} messages, {n} messages a run "
      f"to {domains:,} domain{'s' if domains != 1 else ''}, "
      f"medians of $ROUNDS rounds (alternating, Postfix first), $ELAPSED s")
print("routing: Rackwave resolves each domain's MX through the bench's DNS, delivery shaping "
      + (f"as shipped plus {shaping}" if shaping else "as shipped")
      + "; Postfix: transport map to [127.0.0.1] (no DNS), its defaults otherwise")
print(f"machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), disk $DISK")
print()
print(f"| {'figure':<42} | {'Postfix':>9} | {'Rackwave':>9} | {'ratio':>6} | better |")
print(f"|{'-' * 44}|{'-' * 10}:|{'-' * 10}:|{'-' * 7}:|--------|")
for fig, label, higher in figures:
    p, r = med("postfix", fig), med("rackwave", fig)
    if p is None and r is None:
        continue
    ps = f"{p:.4g}" if p is not None else "–"
    rs = f"{r:.4g}" if r is not None else "–"
    ratio = "–"
    if p and r:
        ratio = f"{(r / p if higher else p / r):.2f}x"
    print(f"| {label:<42} | {ps:>9} | {rs:>9} | {ratio:>6} | {'higher' if higher else 'lower':<6} |")
order = {"depth_accept_at": 0, "depth_drain_rate": 1, "depth_drain_cpu": 2, "depth_drain_max_gap": 3}
depth = sorted({f for (_, f) in vals if f.startswith("depth_")},
               key=lambda f: (order[f.rsplit("_", 1)[0]], int(f.rsplit("_", 1)[1])))
for fig in depth:
    kind, n = fig.rsplit("_", 1)
    label = {"depth_accept_at": f"acceptance with {int(n):,} held (msg/s)",
             "depth_drain_rate": f"drain of {int(n):,} queued (msg/s)",
             "depth_drain_cpu": f"  MTA CPU s per 1000 msg drained",
             "depth_drain_max_gap": f"  longest stall between arrivals (ms)"}[kind]
    higher = kind not in ("depth_drain_cpu", "depth_drain_max_gap")
    p, r = med("postfix", fig), med("rackwave", fig)
    ps = f"{p:.4g}" if p is not None else "–"
    rs = f"{r:.4g}" if r is not None else "–"
    ratio = f"{(r / p if higher else p / r):.2f}x" if p and r else "–"
    print(f"| {label:<42} | {ps:>9} | {rs:>9} | {ratio:>6} | {'higher' if higher else 'lower':<6} |")
print()
print("ratio: how many times better Rackwave is (Rackwave/Postfix for rates, Postfix/Rackwave for CPU, latency and stalls).")
print("durable to durable: both fsync before acknowledging (Postfix: cleanup fsyncs the queue file;")
print("Rackwave: the spool's group commit is flushed before the 250).")
refs = [("smtp_source", "smtp-source -> smtp-sink"), ("rackwave_bench", "rackwave bench smtp -> rackwave bench sink")]
lines = []
for key, label in refs:
    parts = [f"{cc} conn {med('ref', f'{key}_{cc}'):.0f} msg/s" for cc in (10, 50) if med("ref", f"{key}_{cc}")]
    if parts:
        lines.append(f"  {label}: " + ", ".join(parts))
if lines:
    print(f"direct client -> sink, no MTA ({size}, medians):")
    print("\n".join(lines))
print()
print("per round:")
for (mta, fig), v in sorted(vals.items()):
    print(f"  {mta:<9} {fig:<22} " + "  ".join(f"{x:.4g}" for x in v))
EOF
if [[ -f $WORK/busy ]]; then
    echo "note: $(wc -l <"$WORK/busy") measurement(s) started while the machine was busy with other work."
fi
