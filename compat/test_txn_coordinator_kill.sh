#!/usr/bin/env bash
# The transaction coordinator's broker SIGKILLed while transactions run.
# TxnProducer commits transactions continuously, each RECORDS records over the
# 3 partitions of an RF=3, min.insync.replicas=2 topic, values
# "t<i>-r<j>", printing "COMMITTED t<i>" when commitTransaction returned.
# Once it has committed BEFORE_KILL transactions the test finds the
# coordinator of its transactional id (kafka-transactions describe:
# CoordinatorId, from Admin describeTransactions) and SIGKILLs that broker
# with $KILL_LEADER_CMD <broker-id>. The producer must recover and commit
# again (if it exits on a fatal error it is restarted with the same
# transactional.id, numbering its transactions on from a new base). The broker
# is restarted with $RESTART_BROKER_CMD; after AFTER_RESTART more commits the
# producer is stopped (SIGTERM ends its current transaction first). Then a
# read_committed read of the topic must find:
#   - every transaction wholly or not at all: each transaction present has
#     exactly its RECORDS records, each once;
#   - every transaction whose commit returned.
# It prints the transactions committed and how long after the kill the
# first commit came.
#
# Needs 3 brokers (COMPAT_BROKERS, COMPAT_RF = 3) and KILL_LEADER_CMD; exits
# 77 (skipped) otherwise.
# Timeouts: RUN_TIMEOUT (s), for the producer to reach each point;
# RECOVER_TIMEOUT (s), from the kill to the next commit; REJOIN_TIMEOUT (s),
# for the restarted broker to be back in every ISR of the topic;
# STABLE_TIMEOUT (s), for the last commit's markers to be written before the
# topic is read.
. "$(dirname "$0")/lib.sh"

if [ "$COMPAT_BROKERS" -lt 3 ] || [ "$COMPAT_RF" -lt 3 ] || [ -z "${KILL_LEADER_CMD:-}" ]; then
    echo "SKIP: needs 3 brokers, COMPAT_RF=3 and KILL_LEADER_CMD (have $COMPAT_BROKERS brokers, RF $COMPAT_RF)"
    exit 77
fi
RECORDS="${COMPAT_TXKILL_RECORDS:-6}"
BEFORE_KILL="${COMPAT_TXKILL_BEFORE:-30}"
AFTER_RESTART="${COMPAT_TXKILL_AFTER:-20}"
RUN_TIMEOUT="${COMPAT_TXKILL_RUN_TIMEOUT:-60}"
RECOVER_TIMEOUT="${COMPAT_TXKILL_RECOVER_TIMEOUT:-90}"
REJOIN_TIMEOUT="${COMPAT_TXKILL_REJOIN_TIMEOUT:-90}"
STABLE_TIMEOUT="${COMPAT_TXN_STABLE_TIMEOUT:-60}"

topic="compat-txkill-$RUN_ID"; tid="compat-txkill-$RUN_ID"
tc() { kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
tc --create --topic "$topic" --partitions 3 --replication-factor 3 --config min.insync.replicas=2 \
    || fail "creating $topic failed"

producer=""; run=0
trap '[ -z "$producer" ] || kill -KILL "$producer" 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_producer() {
    kjava_bg "$WORK/producer-$run.out" "$WORK/producer-$run.err" dev.rill.compat.TxnProducer --topic "$topic" \
        --transactional-id "$tid" --first-txn $((run * 1000000)) --txns 0 --records "$RECORDS" --partitions 3
    producer=$!
}
commits() { cat "$WORK"/producer-*.out 2>/dev/null | grep -c '^COMMITTED' || true; }
# running_until N: at least N commits in all, or the producer ended (it is
# restarted while the kill is recovered; otherwise the test fails).
running_until() { [ "$(commits)" -ge "$1" ] || ! kill -0 "$producer" 2>/dev/null; }
producer_alive() {
    kill -0 "$producer" 2>/dev/null && return 0
    wait "$producer" 2>/dev/null || true
    tail -10 "$WORK/producer-$run.err" >&2
    fail "the producer (run $run) exited: $(tail -2 "$WORK/producer-$run.out" | tr '\n' ' ')"
}

start_producer
wait_until "the producer to commit $BEFORE_KILL transactions" "$RUN_TIMEOUT" running_until "$BEFORE_KILL"
producer_alive

kjava org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" describe --transactional-id "$tid" \
    >"$WORK/describe" 2>"$WORK/describe.err" || { cat "$WORK/describe.err" >&2; fail "kafka-transactions describe failed"; }
cat "$WORK/describe"
coordinator=$(awk 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next } NF { print $h["CoordinatorId"]; exit }' "$WORK/describe")
[[ "$coordinator" =~ ^[0-9]+$ ]] || fail "kafka-transactions describe shows no coordinator id for $tid (got '$coordinator')"
before=$(commits)
say "$before transactions committed; the coordinator of $tid is broker $coordinator: killing it"
$KILL_LEADER_CMD "$coordinator" || fail "KILL_LEADER_CMD $coordinator failed"
killed_at=$SECONDS
killed_ms=$(date +%s%3N)

# Recovery: the first commit of a transaction begun after the kill,
# restarting the producer with the same transactional.id if it exits.
restarts=0
recovered() { cat "$WORK"/producer-*.out | awk -v k="$killed_ms" '$1 == "COMMITTED" { sub("began=", "", $3); if ($3 + 0 >= k) f = 1 } END { exit !f }'; }
deadline=$((SECONDS + RECOVER_TIMEOUT))
until recovered; do
    if ! kill -0 "$producer" 2>/dev/null; then
        wait "$producer" 2>/dev/null || true
        say "producer run $run exited: $(grep -m1 -E '^FATAL' "$WORK/producer-$run.out" || tail -1 "$WORK/producer-$run.out"); restarting it"
        run=$((run + 1)); restarts=$((restarts + 1))
        start_producer
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "no transaction begun after the coordinator's kill committed within ${RECOVER_TIMEOUT}s (RECOVER_TIMEOUT)"
    sleep 0.2
done
# The commits' return times around the kill: the first one of a
# transaction begun after it, and the longest pause between two commits.
recovery=$(cat "$WORK"/producer-*.out | awk -v k="$killed_ms" '$1 == "COMMITTED" {
        b = $3; e = $4; sub("began=", "", b); sub("ended=", "", e)
        if (b + 0 >= k && (first == "" || e + 0 < first)) first = e + 0
        if (last != "" && e - last > gap) gap = e - last; last = e }
    END { printf "%.1fs after the kill; longest pause between two commits %.1fs", (first - k) / 1000, gap / 1000 }')
say "first commit of a transaction begun after the kill: $recovery ($restarts producer restart(s), $(cat "$WORK"/producer-*.out | grep -c '^RETRY' || true) commit/abort retries, $(cat "$WORK"/producer-*.out | grep -c '^ABORTED' || true) transactions aborted on errors)"

if [ -n "${RESTART_BROKER_CMD:-}" ]; then
    $RESTART_BROKER_CMD "$coordinator" || fail "RESTART_BROKER_CMD $coordinator failed"
    say "broker $coordinator restarted $((SECONDS - killed_at))s after the kill"
    isr_full() {
        [ "$(tc --describe --topic "$topic" 2>/dev/null | sed -nE 's/.*Isr: ([0-9,]+).*/\1/p' | tr ',' '\n' | grep -c .)" -eq 9 ]
    }
    wait_until "broker $coordinator to rejoin every ISR of $topic" "$REJOIN_TIMEOUT" isr_full
fi
target=$(( $(commits) + AFTER_RESTART ))
wait_until "$AFTER_RESTART more commits after the restart" "$RUN_TIMEOUT" running_until "$target"
producer_alive
kill -TERM "$producer"
wait "$producer" 2>/dev/null || true
producer=""
grep -h '^RESULT' "$WORK"/producer-*.out || true
grep -h -E '^(ABORTED|FATAL|RETRY)' "$WORK"/producer-*.out | head -5 || true

kjava dev.rill.compat.TopicDump --topic "$topic" --isolation read_committed --wait-stable-s "$STABLE_TIMEOUT" >"$WORK/rc" 2>"$WORK/rc.err" \
    || { tail -5 "$WORK/rc.err" >&2; fail "TopicDump of $topic failed"; }
cat "$WORK"/producer-*.out | awk '$1 == "COMMITTED" { print $2 }' >"$WORK/committed"
"$PY" - "$WORK/rc" "$WORK/committed" "$RECORDS" <<'PY' || fail "read_committed found partial or missing transactions (above)"
import sys
from collections import Counter, defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
committed = [l.strip() for l in open(sys.argv[2]) if l.strip()]
k = int(sys.argv[3])
per_txn = defaultdict(Counter)
for part, off, key, value in rows:
    txn, rec = value.rsplit("-r", 1)
    per_txn[txn][int(rec)] += 1
partial = {t: dict(c) for t, c in per_txn.items() if sorted(c) != list(range(k)) or any(n != 1 for n in c.values())}
missing = [t for t in committed if t not in per_txn]
print(f"read_committed: {len(rows)} records in {len(per_txn)} transactions; "
      f"{len(committed)} commits returned; {len(per_txn) - len(set(committed) & set(per_txn))} visible transactions "
      f"whose commit did not return to the producer")
for t, c in list(partial.items())[:10]:
    print(f"transaction {t} is partial or duplicated: records {c} (expected r0..r{k - 1} once each)")
for t in missing[:10]:
    print(f"transaction {t}: commitTransaction returned but it is not visible")
if partial or missing:
    print(f"{len(partial)} partial or duplicated, {len(missing)} committed but missing")
    sys.exit(1)
PY
say "every transaction visible wholly or not at all, every returned commit visible"
