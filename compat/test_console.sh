#!/usr/bin/env bash
# Kafka's console tools against Rill: TopicCommand creates a topic,
# ConsoleProducer writes keyed lines (acks=all), ConsoleConsumer (in a
# consumer group, from the beginning) reads them all back unchanged.
. "$(dirname "$0")/lib.sh"

N=2000
topic="compat-console-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$topic" \
    --partitions 3 --replication-factor "$COMPAT_RF" || fail "TopicCommand --create failed"
for ((i = 0; i < N; i++)); do printf 'k%d:console line %d with some text\n' "$((i % 97))" "$i"; done >"$WORK/in"
kjava org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --request-required-acks all --reader-property parse.key=true --reader-property key.separator=: \
    <"$WORK/in" 2>"$WORK/produce.err" || { cat "$WORK/produce.err" >&2; fail "ConsoleProducer failed"; }
grep -E 'ERROR|Exception' "$WORK/produce.err" && fail "ConsoleProducer reported errors (above)"
say "ConsoleProducer wrote $N lines"

kjava org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --group "compat-console-$RUN_ID" --from-beginning --max-messages "$N" --timeout-ms 30000 \
    --formatter-property print.key=true --formatter-property key.separator=: \
    >"$WORK/out" 2>"$WORK/consume.err" || { cat "$WORK/consume.err" >&2; fail "ConsoleConsumer failed"; }
sort "$WORK/in" >"$WORK/want"; sort "$WORK/out" >"$WORK/got"
if ! cmp -s "$WORK/want" "$WORK/got"; then
    show_diff "$WORK/want" "$WORK/got"
    fail "ConsoleConsumer read $(wc -l <"$WORK/out") lines, expected the $N produced (diff above)$(errors_in "$WORK/consume.err" | head -1 | sed 's/^/; client error: /')"
fi
say "ConsoleConsumer read all $N keyed lines back unchanged"
