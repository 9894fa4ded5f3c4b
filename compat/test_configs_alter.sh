#!/usr/bin/env bash
# ConfigCommand (kafka-configs.sh) against a cluster: --alter --add-config
# on a topic; --describe through every broker shows the new values within
# CONFIG_VISIBLE_TIMEOUT seconds; a bad value is refused and changes
# nothing; --delete-config sets a key back to its default.
. "$(dirname "$0")/lib.sh"

# The issue's target: a config change is visible on every broker in 10 s.
CONFIG_VISIBLE_TIMEOUT=${CONFIG_VISIBLE_TIMEOUT:-10}

topic="compat-configs-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
# cc BOOTSTRAP ARGS...: ConfigCommand through the given broker(s).
cc() { local at=$1; shift; kjava kafka.admin.ConfigCommand --bootstrap-server "$at" "$@"; }

tc --create --topic "$topic" --partitions 2 --replication-factor "$COMPAT_RF" \
    || fail "TopicCommand --create failed"

cc "$KAFKA_BOOTSTRAP" --alter --entity-type topics --entity-name "$topic" \
    --add-config retention.ms=3600000,max.message.bytes=2000000 >"$WORK/alter" 2>&1 \
    || { cat "$WORK/alter" >&2; fail "--alter --add-config failed"; }
errors="$(errors_in "$WORK/alter")"
[ -z "$errors" ] || { cat "$WORK/alter" >&2; fail "--alter reported: $errors"; }
say "--alter --add-config retention.ms=3600000,max.message.bytes=2000000 accepted"

# describes BROKER WANT [ABSENT]: --describe through BROKER lists every
# key=value of WANT (space-separated) and no line for the key ABSENT.
describes() {
    local at=$1 want=$2 absent=${3:-}
    cc "$at" --describe --entity-type topics --entity-name "$topic" >"$WORK/describe" 2>&1 || return 1
    for kv in $want; do grep -q -- " $kv " "$WORK/describe" || grep -q -- " $kv\$" "$WORK/describe" || return 1; done
    [ -z "$absent" ] || ! grep -q -- " $absent=" "$WORK/describe"
}

IFS=, read -r -a brokers <<<"$KAFKA_BOOTSTRAP"
for b in "${brokers[@]}"; do
    wait_until "--describe through $b to show the new values" "$CONFIG_VISIBLE_TIMEOUT" \
        describes "$b" "retention.ms=3600000 max.message.bytes=2000000"
done
cat "$WORK/describe"
say "--describe through each of ${#brokers[@]} broker(s) shows the new values"

# A bad value is refused, and the topic keeps its values.
if cc "$KAFKA_BOOTSTRAP" --alter --entity-type topics --entity-name "$topic" \
    --add-config retention.ms=soon >"$WORK/bad" 2>&1 && [ -z "$(errors_in "$WORK/bad")" ]; then
    cat "$WORK/bad" >&2; fail "retention.ms=soon was accepted"
fi
grep -qi "retention.ms" "$WORK/bad" || { cat "$WORK/bad" >&2; fail "the refusal does not name retention.ms"; }
describes "${brokers[0]}" "retention.ms=3600000" || { cat "$WORK/describe" >&2; fail "a refused change changed the topic"; }
say "retention.ms=soon refused: $(errors_in "$WORK/bad" | head -n 1)"

cc "$KAFKA_BOOTSTRAP" --alter --entity-type topics --entity-name "$topic" \
    --delete-config retention.ms >"$WORK/delete" 2>&1 \
    || { cat "$WORK/delete" >&2; fail "--alter --delete-config failed"; }
for b in "${brokers[@]}"; do
    wait_until "--describe through $b to drop retention.ms" "$CONFIG_VISIBLE_TIMEOUT" \
        describes "$b" "max.message.bytes=2000000" retention.ms
done
say "--delete-config retention.ms: back to the default on every broker"
