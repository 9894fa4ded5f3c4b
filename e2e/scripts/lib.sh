# Shared by apiserver.sh and cluster.sh (sourced; each defines `log` and
# `RUN` first): process liveness by pid file, and waiting on a condition.

# alive NAME: the process of $RUN/NAME.pid is running.
alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_for WHAT PIDNAME TIMEOUT_S COMMAND...: until COMMAND succeeds; fails
# when the process PIDNAME exits or TIMEOUT_S seconds pass.
wait_for() {
    local what="$1" pidname="$2" timeout="$3"; shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$pidname"; then log "$pidname exited while waiting for $what"; return 1; fi
        if (( SECONDS >= deadline )); then log "timed out after ${timeout}s waiting for $what"; return 1; fi
        sleep 0.5
    done
}
