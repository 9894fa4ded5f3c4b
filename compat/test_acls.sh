#!/usr/bin/env bash
# Kafka ACLs against a cluster started with --security sasl_ssl (ACLs
# enforced, User:admin a super user), with users that start with no rights
# (carol, dave; compat/security-lib.sh):
#   - a produce without WRITE gets TOPIC_AUTHORIZATION_FAILED;
#   - an ACL added at run time with Kafka's AclCommand takes effect: the
#     seconds until carol's produce is accepted are printed;
#   - a consumer with READ on the topic but not on its group gets
#     GROUP_AUTHORIZATION_FAILED, then reads once the group is granted;
#   - AclCommand --list shows the ACLs; dave's metadata does not show the
#     topic; AclCommand --remove takes the right away again;
#   - kafka-transactions list as carol shows a transactional id only once
#     carol may DESCRIBE it.
. "$(dirname "$0")/lib.sh"
# shellcheck source=compat/security-lib.sh
. "$COMPAT_DIR/security-lib.sh"

[ "${KAFKA_SECURITY:-plaintext}" = sasl_ssl ] || { echo "SKIP: the cluster is not started with --security sasl_ssl"; exit 77; }
: "${KAFKA_CA_FILE:?}"
# Java client settings of each user who runs Kafka's tools here.
for user in admin carol; do
    cat >"$WORK/$user.properties" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$user-secret";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_CA_FILE
CONF
done
acls() { kjava org.apache.kafka.tools.AclCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" "$@"; }
client() { "$PY" "$COMPAT_DIR/sasl_client.py" "$@"; }

topic="compat-acl-$RUN_ID"
group="compat-acl-group-$RUN_ID"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$WORK/admin.properties" \
    --create --topic "$topic" --partitions 2 --replication-factor "$COMPAT_RF" >"$WORK/create.log" 2>&1 \
    || { cat "$WORK/create.log" >&2; fail "TopicCommand --create as admin failed"; }

# expect_refusal WHAT ERROR CMD...: CMD exits 4 naming ERROR.
expect_refusal() {
    local what=$1 error=$2 rc=0; shift 2
    "$@" >"$WORK/refusal" 2>"$WORK/refusal.err" || rc=$?
    [ "$rc" -eq 4 ] && grep -qx "$error" "$WORK/refusal" \
        || { cat "$WORK/refusal" "$WORK/refusal.err" >&2; fail "$what: expected $error (exit 4), got exit $rc"; }
    say "$what: refused with $error"
}
expect_refusal "carol's produce without an ACL" TOPIC_AUTHORIZATION_FAILED client produce carol "$topic"

acls --add --allow-principal User:carol --operation Write --topic "$topic" >"$WORK/add.log" 2>&1 \
    || { cat "$WORK/add.log" >&2; fail "AclCommand --add (WRITE) failed"; }
added=$(date +%s%N)
produced() { client produce carol "$topic" >/dev/null 2>&1; }
wait_until "carol's produce to be accepted after the ACL was added" 30 produced
took_ms=$(( ($(date +%s%N) - added) / 1000000 ))
say "ACL added at run time: carol's produce accepted ${took_ms} ms after AclCommand returned"

acls --add --allow-principal User:carol --operation Read --topic "$topic" >"$WORK/add-read.log" 2>&1 \
    || { cat "$WORK/add-read.log" >&2; fail "AclCommand --add (READ topic) failed"; }
expect_refusal "carol's consume without READ on the group" GROUP_AUTHORIZATION_FAILED client consume carol "$topic" "$group"
acls --add --allow-principal User:carol --operation Read --group "$group" >"$WORK/add-group.log" 2>&1 \
    || { cat "$WORK/add-group.log" >&2; fail "AclCommand --add (READ group) failed"; }
consumed() { client consume carol "$topic" "$group" >"$WORK/consumed" 2>&1; }
wait_until "carol's consume to be accepted after the group ACL was added" 30 consumed
say "carol reads in $group once the group is granted: $(cat "$WORK/consumed")"

acls --list --topic "$topic" >"$WORK/list" 2>&1 || { cat "$WORK/list" >&2; fail "AclCommand --list failed"; }
for op in WRITE READ; do
    grep -q "principal=User:carol.*operation=$op" "$WORK/list" || { cat "$WORK/list" >&2; fail "AclCommand --list does not show carol's $op"; }
done
say "AclCommand --list shows carol's WRITE and READ on $topic"

client topics dave >"$WORK/dave-topics" 2>"$WORK/dave.err" || { cat "$WORK/dave.err" >&2; fail "dave's metadata request failed"; }
! grep -qx "$topic" "$WORK/dave-topics" || fail "dave, with no ACL, sees $topic in metadata"
client topics carol >"$WORK/carol-topics" 2>/dev/null
grep -qx "$topic" "$WORK/carol-topics" || fail "carol does not see $topic in metadata"
say "metadata: carol sees $topic, dave (no ACL) does not"

acls --remove --force --allow-principal User:carol --operation Write --topic "$topic" >"$WORK/remove.log" 2>&1 \
    || { cat "$WORK/remove.log" >&2; fail "AclCommand --remove failed"; }
refused_again() {
    local rc=0
    client produce carol "$topic" >"$WORK/again" 2>/dev/null || rc=$?
    [ "$rc" -eq 4 ] && grep -qx TOPIC_AUTHORIZATION_FAILED "$WORK/again"
}
wait_until "carol's produce to be refused after the ACL was removed" 30 refused_again
say "AclCommand --remove: carol's produce refused again"

txn_id="compat-acl-txn-$RUN_ID"
client init-txn admin "$txn_id" >"$WORK/init-txn" 2>&1 || { cat "$WORK/init-txn" >&2; fail "admin's InitProducerId for $txn_id failed"; }
carol_lists() {
    kjava org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --command-config "$WORK/carol.properties" list >"$WORK/txn-list" 2>"$WORK/txn-list.err" \
        || { cat "$WORK/txn-list.err" >&2; fail "kafka-transactions list as carol failed"; }
    grep -q "^$txn_id[[:space:]]" "$WORK/txn-list"
}
! carol_lists || { cat "$WORK/txn-list" >&2; fail "carol lists $txn_id without DESCRIBE on it"; }
acls --add --allow-principal User:carol --operation Describe --transactional-id "$txn_id" >"$WORK/add-txn.log" 2>&1 \
    || { cat "$WORK/add-txn.log" >&2; fail "AclCommand --add (DESCRIBE transactional id) failed"; }
wait_until "carol to list $txn_id once she may describe it" 30 carol_lists
say "kafka-transactions list: carol sees $txn_id only with DESCRIBE on it"
