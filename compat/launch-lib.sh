# Process helpers shared by compat/rill-launch.sh and compat/kafka-launch.sh
# (sourced; the caller defines log()). A node is known by its pid file.

# pid_alive PIDFILE: whether the process in PIDFILE runs.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_ready WHAT PIDFILE LOGFILE TIMEOUT_VAR CHECK...: polls until the
# command CHECK... succeeds. Fails (printing the log's tail) when the process
# exits first or after ${!TIMEOUT_VAR} seconds.
wait_ready() {
    local what=$1 pidfile=$2 logfile=$3 timeout_var=$4; shift 4
    local timeout=${!timeout_var}
    local deadline=$(( $(date +%s) + timeout ))
    until "$@"; do
        if ! pid_alive "$pidfile"; then
            tail -30 "$logfile" >&2
            log "$what exited during startup (log: $logfile)"
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            tail -30 "$logfile" >&2
            log "$what not ready within $timeout_var=${timeout}s (log: $logfile)"
            return 1
        fi
        sleep 0.1
    done
}

# term_and_wait SECS PIDFILE...: SIGTERM to every process, then waits for
# each; SIGKILL to what still runs SECS seconds after the SIGTERM.
term_and_wait() {
    local secs=$1 f; shift
    for f in "$@"; do
        pid_alive "$f" && kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    local deadline=$(( $(date +%s) + secs ))
    for f in "$@"; do
        while pid_alive "$f"; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                log "pid $(cat "$f") ($f) still running ${secs}s after SIGTERM: SIGKILL"
                kill -KILL "$(cat "$f")" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    done
}
