# Shell helpers the benchmark scripts share (sourced, not run): logging,
# waiting for a port, reading the bench tools' JSON, and waiting until no
# compiler runs on the machine before measuring.
#
# Expects WORK (the run's temp dir) and IDLE_WAIT (s) to be set by the
# script that sources it.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

jget() { # file python-expression-on-d
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}

# Other engineers build on this machine: wait (bounded) until no compiler
# runs before measuring.
wait_idle() {
    local waited=0
    while pgrep -x rustc >/dev/null; do
        if ((waited == 0)); then log "rustc is running; waiting up to ${IDLE_WAIT}s"; fi
        if ((waited >= IDLE_WAIT)); then
            log "warning: still busy after ${waited}s; measuring anyway"
            echo busy >>"$WORK/busy"
            return 0
        fi
        sleep 5
        waited=$((waited + 5))
    done
}
