#!/usr/bin/env bash
# The ports brokers and controllers use among themselves, against a cluster
# started with a launcher's --security sasl_ssl or mtls (Rill: the
# replication, gRPC client API and controller ports with --internal-tls-*;
# Kafka: the INTERNAL inter-broker listeners and the CONTROLLER listener,
# SSL with ssl.client.auth=required). On every one of them:
#   - a peer with the cluster's certificate gets in;
#   - a plaintext peer, a peer without a certificate and a peer with a
#     certificate from another CA are refused, quickly.
. "$(dirname "$0")/lib.sh"
# shellcheck source=compat/security-lib.sh
. "$COMPAT_DIR/security-lib.sh"

case "${KAFKA_SECURITY:-plaintext}" in
    sasl_ssl|mtls) ;;
    *) echo "SKIP: the cluster is not started with --security"; exit 77 ;;
esac
: "${INTERNAL_ADDRS:?the launcher exports the internal ports}" "${INTERNAL_CERT:?}" "${INTERNAL_KEY:?}" "${KAFKA_CA_FILE:?}"
make_pki "$WORK/foreign" mallory

probe() { timeout 30 python3 "$COMPAT_DIR/tls_probe.py" "$@"; }
# expect WANT WHAT ARGS...: the probe's verdict starts with WANT.
expect() {
    local want=$1 what=$2 t0=$SECONDS answer; shift 2
    answer=$(probe "$@") || fail "$what: the probe failed ($answer)"
    [[ "$answer" == "$want"* ]] || fail "$what: $answer"
    say "$what: $answer ($((SECONDS - t0))s)"
}
n=0
for addr in $INTERNAL_ADDRS; do
    expect accepted "$addr, the cluster's certificate" "$addr" tls "$KAFKA_CA_FILE" "$INTERNAL_CERT" "$INTERNAL_KEY"
    expect refused "$addr, plaintext" "$addr" plaintext
    expect refused "$addr, no certificate" "$addr" tls "$KAFKA_CA_FILE"
    expect refused "$addr, a certificate from another CA" "$addr" tls "$KAFKA_CA_FILE" "$WORK/foreign/mallory.crt" "$WORK/foreign/mallory.key"
    n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "only $n internal ports to check"
say "$n internal ports refuse plaintext, missing and foreign certificates"
