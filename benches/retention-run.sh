#!/usr/bin/env bash
# Spool retention under load: N messages (default 1,000,000) relayed through
# a Rackwave server with a short `[spool] retention_days` to `rackwave bench
# sink`, sampling the data directory every 10 s.
#
#   benches/retention-run.sh                   # 60 s retention, 1,000,000 messages
#   RETENTION_DAYS=0 benches/retention-run.sh  # the same with retention off
#
# Prints, every 10 s: seconds, data directory bytes, database bytes, body
# bytes, records pruned, recipients accepted, messages delivered and not yet
# pruned; then the bench's summary. Results are in docs/PERFORMANCE.md
# ("Spool retention: 1,000,000 messages").
#
# Environment: N [1000000] RETENTION_DAYS [0.000694] CONCURRENCY [50]
#   SIZE [2048] SETTLE [150] (s to keep sampling after the load)
#   BIN [target/release/rackwave] PORT_BASE [12000] WORK [mktemp]
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-1000000}
RETENTION_DAYS=${RETENTION_DAYS:-0.000694}
CONCURRENCY=${CONCURRENCY:-50}
SIZE=${SIZE:-2048}
SETTLE=${SETTLE:-150}
BIN=${BIN:-target/release/rackwave}
PORT_BASE=${PORT_BASE:-12000}
WORK=${WORK:-$(mktemp -d /var/tmp/rackwave-retention.XXXXXX)}
TOKEN=retention-run-admin-token-0123456789abcdef
SMTP=$((PORT_BASE + 525)) SMTPS=$((PORT_BASE + 465)) HTTP=$((PORT_BASE + 80)) SINK=$((PORT_BASE + 600))

[[ -x $BIN ]] || cargo build --release
cat >"$WORK/config.toml" <<C
# Written by benches/retention-run.sh.
[storage]
path = "data"
[spool]
retention_days = $RETENTION_DAYS
[smtp]
listen = "127.0.0.1:$SMTP"
listen_tls = "127.0.0.1:$SMTPS"
hostname = "retention-run.localdomain"
max_connections = 5000
max_connections_per_ip = 2000
[http]
listen = "127.0.0.1:$HTTP"
[admin]
token = "$TOKEN"
[delivery]
hostname = "retention-run.localdomain"
[delivery.shaping]
smarthost = "127.0.0.1:$SINK"
tls = "disabled"
max_connections = 20
messages_per_connection = 1000
C
"$BIN" serve --config "$WORK/config.toml" >"$WORK/rackwave.log" 2>&1 &
PID=$!
SAMPLER=
trap 'kill $PID ${SAMPLER:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
export RACKWAVE_ADMIN_TOKEN=$TOKEN
ws=$("$BIN" admin --config "$WORK/config.toml" workspaces create --name retention |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
"$BIN" admin --config "$WORK/config.toml" smtp-accounts create --workspace "$ws" \
    --username load --password 'a long password' --daily-quota 1000000000 >/dev/null

metric() { grep -E "^$1 " <<<"$2" | awk '{print $2}'; }
T0=$(date +%s)
(
    echo "secs data_bytes db_bytes bodies_bytes pruned accepted delivered_kept"
    while kill -0 $PID 2>/dev/null; do
        m=$(curl -s "127.0.0.1:$HTTP/metrics")
        echo "$(($(date +%s) - T0)) $(du -sb "$WORK/data" | cut -f1) $(du -sb "$WORK/data/db" | cut -f1)" \
            "$(du -sb "$WORK/data/bodies" | cut -f1) $(metric rackwave_spool_pruned_total "$m")" \
            "$(metric 'rackwave_recipients_accepted_total\{source="smtp"\}' "$m")" \
            "$(metric 'rackwave_spool_messages\{status="delivered"\}' "$m")"
        sleep 10
    done
) &
SAMPLER=$!
"$BIN" bench e2e --target "127.0.0.1:$SMTP" --sink-listen "127.0.0.1:$SINK" --messages "$N" \
    --concurrency "$CONCURRENCY" --size "$SIZE" --auth 'load:a long password' \
    --duration 3600 --wait 900 --json >"$WORK/e2e.json"
echo "load done after $(($(date +%s) - T0)) s"
sleep "$SETTLE"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("accepted %.0f msg/s, delivered %.0f msg/s" % (d["acceptance"]["messages_per_sec"], d["delivered_per_sec"]))' "$WORK/e2e.json"
