#!/usr/bin/env bash
# Kafka Streams against Rill: the WordCount app (compat/java) reads lines from
# an input topic, repartitions by word through a topic it creates itself,
# keeps counts in a changelogged store and writes word -> count to an output
# topic. The test feeds generated text in two rounds and waits until the
# latest count of every word in the output equals the count computed here
# with coreutils; no other word may appear.
. "$(dirname "$0")/lib.sh"

in="compat-wc-in-$RUN_ID"; out="compat-wc-out-$RUN_ID"; app="compat-wc-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$in" --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $in failed"
tc --create --topic "$out" --partitions 3 --replication-factor "$COMPAT_RF" || fail "creating $out failed"

# kjava_bg: $! is the JVM itself, so stopping it does not leave the app running.
COMPAT_JAVA_LOG=warn kjava_bg "$WORK/app.out" "$WORK/app.err" dev.rill.compat.WordCount --app-id "$app" \
    --input "$in" --output "$out" --replication-factor "$COMPAT_RF"
app_pid=$!
stop_app() { kill -TERM "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; }
trap 'stop_app; rm -rf "$WORK"' EXIT
app_running() {
    kill -0 "$app_pid" 2>/dev/null || {
        tail -20 "$WORK/app.err" >&2
        fail "the Streams app exited: $(tr '\n' ' ' <"$WORK/app.out")$(errors_in "$WORK/app.err" | head -1 | sed 's/^/; client error: /')"
    }
    grep -q 'STATE RUNNING' "$WORK/app.out"
}
wait_until "the Streams app to reach RUNNING" 90 app_running
say "Streams app running"

# Generated text: words from a small vocabulary in varying case with
# punctuation, a deterministic pseudo-random mix per round.
gen() {
    awk -v seed="$1" -v lines="$2" 'BEGIN {
        srand(seed); n = split("Rill rill stream Stream log commit offset partition leader replica broker Kafka topic record batch the a of", w, " ")
        for (i = 0; i < lines; i++) { line = ""; k = 1 + int(rand() * 8)
            for (j = 0; j < k; j++) line = line w[1 + int(rand() * n)] (rand() < 0.2 ? ", " : " ")
            print line "." } }'
}
produce() {
    kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$in" \
        --request-required-acks all <"$1" || fail "ConsoleProducer failed"
}
expected() { cat "$@" | tr 'A-Z' 'a-z' | tr -cs 'a-z' '\n' | grep -v '^$' | sort | uniq -c | awk '{print $2"\t"$1}'; }
matches() {
    app_running || return 1
    kjava dev.rill.compat.LatestLongs --topic "$out" >"$WORK/got" 2>"$WORK/got.err" || return 1
    cmp -s "$WORK/want" "$WORK/got"
}

# round NAME FILES...: the output must converge to the counts of FILES.
round() {
    local name=$1; shift
    expected "$@" >"$WORK/want"
    if ! (wait_until "output counts to equal the $name word counts" "${COMPAT_STREAMS_TIMEOUT:-120}" matches); then
        show_diff "$WORK/want" "$WORK/got" 20
        fail "latest counts in $out differ from the expected ones (diff above: < expected, > output)"
    fi
    say "$name: $(wc -l <"$WORK/want") distinct words, $(awk -F'\t' '{s+=$2} END {print s}' "$WORK/want") counted, all counts match"
}
gen 7 1500 >"$WORK/text1"
produce "$WORK/text1"
round "first round's" "$WORK/text1"
gen 11 1500 >"$WORK/text2"
produce "$WORK/text2"
round "both rounds'" "$WORK/text1" "$WORK/text2"
