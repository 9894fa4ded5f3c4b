#!/usr/bin/env bash
# Kafka Streams with processing.guarantee=exactly_once_v2 through failures:
# the WordCount app (compat/java, --eos true) counts words from an input
# topic while input is fed in ROUNDS rounds of generated text:
#   - while round 2 is fed (each round is paced over a few seconds), the
#     broker leading input partition 0 is SIGKILLed ($KILL_LEADER_CMD); once
#     the counts of rounds 1-2 are exact it is restarted
#     ($RESTART_BROKER_CMD);
#   - while round 3 is fed, the Streams instance is SIGKILLed and restarted
#     on the same state directory (same transactional id);
#   - round 4 is fed.
# Then the latest count of every word in the output, read with
# isolation.level=read_committed (LatestLongs), must equal the count
# computed with coreutils over all rounds; no other word may appear. A count
# processed twice (a lost offset commit or a zombie's write) or lost would
# show as a difference.
#
# Needs 3 brokers (COMPAT_BROKERS, COMPAT_RF = 3), KILL_LEADER_CMD and
# RESTART_BROKER_CMD; exits 77 (skipped) otherwise.
# Timeouts: STREAMS_START_TIMEOUT (s), for an instance to reach RUNNING;
# STREAMS_TIMEOUT (s), for the output to converge to the expected counts.
. "$(dirname "$0")/lib.sh"

if [ "$COMPAT_BROKERS" -lt 3 ] || [ "$COMPAT_RF" -lt 3 ] || [ -z "${KILL_LEADER_CMD:-}" ] || [ -z "${RESTART_BROKER_CMD:-}" ]; then
    echo "SKIP: needs 3 brokers, COMPAT_RF=3, KILL_LEADER_CMD and RESTART_BROKER_CMD (have $COMPAT_BROKERS brokers, RF $COMPAT_RF)"
    exit 77
fi
LINES="${COMPAT_EOS_LINES:-1000}"
# A round's lines are fed over about PACE_S seconds; a failure is injected
# INJECT_AFTER_S seconds after its feed starts (the producer tool's start
# takes about 1.5 s of that).
PACE_S=4
INJECT_AFTER_S=3
STREAMS_START_TIMEOUT="${COMPAT_EOS_START_TIMEOUT:-90}"
STREAMS_TIMEOUT="${COMPAT_STREAMS_TIMEOUT:-120}"

in="compat-eos-in-$RUN_ID"; out="compat-eos-out-$RUN_ID"; app="compat-eos-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$in" --partitions 3 --replication-factor 3 || fail "creating $in failed"
tc --create --topic "$out" --partitions 3 --replication-factor 3 || fail "creating $out failed"

app_pid=""; instance=0; killed_broker=""
cleanup() {
    [ -z "$app_pid" ] || { kill -TERM "$app_pid" 2>/dev/null; wait "$app_pid" 2>/dev/null; } || true
    [ -z "$killed_broker" ] || $RESTART_BROKER_CMD "$killed_broker" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
start_app() {
    instance=$((instance + 1))
    kjava_bg "$WORK/app-$instance.out" "$WORK/app-$instance.err" dev.rill.compat.WordCount --app-id "$app" \
        --input "$in" --output "$out" --replication-factor 3 --eos true --state-dir "$WORK/state"
    app_pid=$!
    local t=$SECONDS
    wait_until "Streams instance $instance to reach RUNNING" "$STREAMS_START_TIMEOUT" app_running
    say "Streams instance $instance (exactly_once_v2) running after $((SECONDS - t))s"
}
app_running() {
    kill -0 "$app_pid" 2>/dev/null || {
        tail -20 "$WORK/app-$instance.err" >&2
        fail "Streams instance $instance exited: $(tr '\n' ' ' <"$WORK/app-$instance.out")$(errors_in "$WORK/app-$instance.err" | head -1 | sed 's/^/; client error: /')"
    }
    grep -q 'STATE RUNNING' "$WORK/app-$instance.out"
}

gen() {
    awk -v seed="$1" -v lines="$2" 'BEGIN {
        srand(seed); n = split("Rill rill stream Stream log commit offset partition leader replica broker Kafka topic record batch the a of exactly once", w, " ")
        for (i = 0; i < lines; i++) { line = ""; k = 1 + int(rand() * 8)
            for (j = 0; j < k; j++) line = line w[1 + int(rand() * n)] (rand() < 0.2 ? ", " : " ")
            print line "." } }'
}
fed=()
feeder=""
# feed_start N: feeds round N's lines in the background, about PACE_S
# seconds for the whole round, so a failure can be injected while it runs.
feed_start() {
    gen "$1" "$LINES" >"$WORK/text$1"
    awk -v pause="$(awk -v p="$PACE_S" -v l="$LINES" 'BEGIN { print p / (l / 50) }')" \
        '{ print; fflush() } NR % 50 == 0 { system("sleep " pause) }' "$WORK/text$1" \
        | kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$in" \
            --request-required-acks all >"$WORK/feed$1.log" 2>&1 &
    feeder=$!
    fed+=("$WORK/text$1")
    feed_round=$1
}
feed_wait() {
    wait "$feeder" || { tail -5 "$WORK/feed$feed_round.log" >&2; fail "ConsoleProducer failed on round $feed_round"; }
    say "round $feed_round: $LINES lines fed"
}
expected() { cat "$@" | tr 'A-Z' 'a-z' | tr -cs 'a-z' '\n' | grep -v '^$' | sort | uniq -c | awk '{print $2"\t"$1}'; }
matches() {
    app_running || return 1
    kjava dev.rill.compat.LatestLongs --topic "$out" --isolation read_committed >"$WORK/got" 2>"$WORK/got.err" || return 1
    cmp -s "$WORK/want" "$WORK/got"
}
converge() {
    expected "${fed[@]}" >"$WORK/want"
    local t=$SECONDS
    if ! (wait_until "read_committed output counts to equal the counts of rounds 1-$1" "$STREAMS_TIMEOUT" matches); then
        show_diff "$WORK/want" "$WORK/got" 20
        fail "latest read_committed counts in $out differ from the expected ones after round $1 (diff above: < expected, > output)"
    fi
    say "after round $1: $(wc -l <"$WORK/want") distinct words, $(awk -F'\t' '{s+=$2} END {print s}' "$WORK/want") counted, all counts exact ($((SECONDS - t))s to converge)"
}
leader_of() {
    tc --describe --topic "$in" 2>/dev/null | sed -nE "s/.*Partition: $1[[:space:]]+Leader: (-?[0-9]+).*/\1/p"
}

start_app
feed_start 1; feed_wait
converge 1

killed_broker=$(leader_of 0)
[[ "$killed_broker" =~ ^[0-9]+$ ]] || fail "no leader for $in partition 0 (got '$killed_broker')"
feed_start 2
sleep "$INJECT_AFTER_S"
$KILL_LEADER_CMD "$killed_broker" || fail "KILL_LEADER_CMD $killed_broker failed"
say "broker $killed_broker (leader of $in partition 0) SIGKILLed while round 2 is fed"
feed_wait
converge 2
$RESTART_BROKER_CMD "$killed_broker" || fail "RESTART_BROKER_CMD $killed_broker failed"
say "broker $killed_broker restarted"
killed_broker=""

feed_start 3
sleep "$INJECT_AFTER_S"
kill -KILL "$app_pid"; wait "$app_pid" 2>/dev/null || true
app_pid=""
say "Streams instance $instance SIGKILLed while round 3 is fed"
start_app
feed_wait
feed_start 4; feed_wait
converge 4
