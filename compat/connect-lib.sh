# Kafka Connect helpers for the compat shell tests; sourced after lib.sh.
# Runs distributed workers (org.apache.kafka.connect.cli.ConnectDistributed)
# from CONNECT_CLASSPATH (scripts/install-compat.sh, compat/connect/pom.xml)
# against KAFKA_BOOTSTRAP, and talks to their REST API with curl.
#
# Timeouts: CONNECT_START_TIMEOUT (s), for a worker's REST API to answer.

: "${CONNECT_CLASSPATH:?CONNECT_CLASSPATH is not set: run scripts/install-compat.sh}"
CONNECT_START_TIMEOUT="${CONNECT_START_TIMEOUT:-90}"
# One Connect cluster per test run: its group and internal topics.
CONNECT_GROUP="${CONNECT_GROUP:-compat-connect-$RUN_ID}"
connect_pids=()
# Worker logs: in compat/run.sh's log directory when it gives one.
CONNECT_LOGS="${COMPAT_LOGS:-$WORK}"
connect_names=()

# connect_worker NAME PORT [KEY=VALUE...]: starts a distributed worker whose
# REST API listens on 127.0.0.1:PORT, with the settings below plus the extra
# ones given; its log is connect-NAME-RUN_ID.log in CONNECT_LOGS and its pid
# ${NAME}_pid. Waits until
# the REST API answers.
connect_worker() {
    local name=$1 port=$2; shift 2
    local props="$WORK/$name.properties"
    cat >"$props" <<PROPS
bootstrap.servers=$KAFKA_BOOTSTRAP
group.id=$CONNECT_GROUP
config.storage.topic=$CONNECT_GROUP-configs
offset.storage.topic=$CONNECT_GROUP-offsets
status.storage.topic=$CONNECT_GROUP-status
config.storage.replication.factor=$COMPAT_RF
offset.storage.replication.factor=$COMPAT_RF
status.storage.replication.factor=$COMPAT_RF
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$port
offset.flush.interval.ms=1000
PROPS
    local kv
    for kv in "$@"; do echo "$kv" >>"$props"; done
    java -Xmx512m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel="${COMPAT_CONNECT_LOG:-info}" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$CONNECT_CLASSPATH" org.apache.kafka.connect.cli.ConnectDistributed "$props" >"$CONNECT_LOGS/connect-$name-$RUN_ID.log" 2>&1 &
    local pid=$!
    connect_pids+=("$pid")
    connect_names+=("$name")
    eval "${name}_pid=$pid"
    rest_up() { curl -fsS "http://127.0.0.1:$1/" >/dev/null 2>&1 || ! kill -0 "$2" 2>/dev/null; }
    wait_until "Connect worker $name's REST API on port $port" "$CONNECT_START_TIMEOUT" rest_up "$port" "$pid"
    kill -0 "$pid" 2>/dev/null || { connect_log_tail "$name"; fail "Connect worker $name exited"; }
}

# connect_log_tail NAME: the end of a worker's log and its errors, to stderr.
connect_log_tail() {
    local log="$CONNECT_LOGS/connect-$1-$RUN_ID.log"
    echo "--- Connect worker $1 ($log): errors and the last lines of its log" >&2
    errors_in "$log" | tail -n 20 >&2
    tail -n 20 "$log" >&2
}

# connect_stop_all: SIGKILLs every worker this test started (the EXIT trap);
# after a failure (a non-zero exit status), shows the end of each log first.
connect_stop_all() {
    local rc=$? p name
    if [ "$rc" -ne 0 ]; then
        for name in "${connect_names[@]}"; do connect_log_tail "$name"; done
    fi
    for p in "${connect_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}

# connect_rest PORT METHOD PATH [JSON]: one REST call; prints the body, fails
# on an HTTP error with the body shown.
connect_rest() {
    local port=$1 method=$2 path=$3 body=${4:-} out="$WORK/rest.out" code
    if [ -n "$body" ]; then
        code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data "$body" "http://127.0.0.1:$port$path") || fail "REST $method $path on port $port: no answer"
    else
        code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "http://127.0.0.1:$port$path") \
            || fail "REST $method $path on port $port: no answer"
    fi
    case $code in 2*) cat "$out" ;; *) fail "REST $method $path on port $port: HTTP $code $(cat "$out")" ;; esac
}

# connect_task_state PORT CONNECTOR: "STATE WORKER_ID" of the connector's
# task 0, or "NONE -" while it has none.
connect_task_state() {
    curl -fsS "http://127.0.0.1:$1/connectors/$2/status" 2>/dev/null | "$PY" -c '
import json, sys
tasks = json.load(sys.stdin).get("tasks") or []
print(" ".join([tasks[0]["state"], tasks[0]["worker_id"]]) if tasks else "NONE -")' 2>/dev/null || echo "NONE -"
}

# connect_wait_task PORT CONNECTOR TIMEOUT [NOT_WORKER]: waits until task 0
# runs (on a worker other than NOT_WORKER when given); prints its worker id.
connect_wait_task() {
    local port=$1 connector=$2 secs=$3 not=${4:-} deadline=$(( SECONDS + $3 )) state worker
    while :; do
        read -r state worker < <(connect_task_state "$port" "$connector")
        if [ "$state" = RUNNING ] && [ "$worker" != "$not" ]; then echo "$worker"; return 0; fi
        if [ "$state" = FAILED ]; then
            curl -sS "http://127.0.0.1:$port/connectors/$connector/status" >&2 || true
            fail "task 0 of $connector FAILED"
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for task 0 of $connector to run${not:+ on a worker other than $not} (last: $state on $worker)"
        sleep 0.5
    done
}

# connect_feed FILE PREFIX LINES RATE: appends LINES lines "PREFIX-NNNNNN"
# (from 1) to FILE at RATE lines/s, in chunks of RATE/10, in the
# background; $feeder_pid is its pid.
connect_feed() {
    "$PY" - "$@" <<'PY' &
import sys, time
path, prefix, lines, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = max(1, rate // 10)
start = time.monotonic()
with open(path, "a") as f:
    for first in range(1, lines + 1, chunk):
        f.write("".join(f"{prefix}-{i:06d}\n" for i in range(first, min(first + chunk, lines + 1))))
        f.flush()
        time.sleep(max(0.0, start + first / rate - time.monotonic()))
PY
    feeder_pid=$!
}
