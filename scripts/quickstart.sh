#!/usr/bin/env bash
# Rill quick start: builds the broker and the `rill` CLI, starts one broker on
# loopback (data under .rill/quickstart), creates a topic, produces ten keyed
# lines, consumes them back, shows a few metrics, and leaves the broker
# running until Ctrl-C.
#
#   scripts/quickstart.sh            # release build, keeps the broker running
#   scripts/quickstart.sh --smoke    # debug build, stops after the round trip (used by `make test`)
#
# Ports: RILL_QS_CLIENT_PORT (default 9093), RILL_QS_HTTP_PORT (default 9644),
# RILL_QS_KAFKA_PORT (default 9092, the Kafka protocol).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
profile=release
$smoke && profile=debug

client_port="${RILL_QS_CLIENT_PORT:-9093}"
http_port="${RILL_QS_HTTP_PORT:-9644}"
kafka_port="${RILL_QS_KAFKA_PORT:-9092}"
if $smoke; then
  # Smoke runs must not collide with a broker a developer left running.
  client_port=0 http_port=0 kafka_port=0
fi
target="${CARGO_TARGET_DIR:-target}"
bin="$target/$profile"
work=".rill/quickstart"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Building rill-broker and rill ($profile)"
if [ "$profile" = release ]; then
  cargo build --release -p rill-broker -p rill-client --bins
else
  # The same invocation as `make test`, so nothing is rebuilt with other
  # feature sets; it leaves every binary in $target/debug.
  cargo test --workspace --all-targets --no-run
fi

rm -rf "$work" && mkdir -p "$work"
say "Starting a broker (data in $work/data, log in $work/broker.log)"
"$bin/rill-broker" --data-dir "$work/data" \
  --listen-addr "127.0.0.1:$client_port" --http-addr "127.0.0.1:$http_port" \
  --kafka-addr "127.0.0.1:$kafka_port" \
  >"$work/ready" 2>"$work/broker.log" &
broker=$!
stop() {
  if kill -0 "$broker" 2>/dev/null; then
    kill -TERM "$broker" && wait "$broker" || true
    echo "broker stopped"
  fi
}
trap stop EXIT

for _ in $(seq 1 300); do
  grep -q '^RILL_READY' "$work/ready" 2>/dev/null && break
  kill -0 "$broker" 2>/dev/null || { cat "$work/broker.log"; echo "broker exited" >&2; exit 1; }
  sleep 0.1
done
ready=$(grep '^RILL_READY' "$work/ready") || { cat "$work/broker.log"; echo "broker did not become ready" >&2; exit 1; }
client=$(sed -E 's/.*client=([^ ]+).*/\1/' <<<"$ready")
http=$(sed -E 's/.*http=([^ ]+).*/\1/' <<<"$ready")
kafka=$(sed -E 's/.*kafka=([^ ]+).*/\1/' <<<"$ready")
export RILL_BROKER="$client"
echo "$ready"

say "rill topic create quickstart --partitions 3"
"$bin/rill" topic create quickstart --partitions 3

say "Producing 10 keyed lines (key:value) with rill produce"
input=$(for i in $(seq 1 10); do echo "user-$((i % 3)):hello number $i"; done)
echo "$input" | "$bin/rill" produce quickstart --key-separator :

say "Consuming them back with rill consume"
output=$("$bin/rill" consume quickstart --from earliest --max 10)
echo "$output"
expected=$(echo "$input" | cut -d: -f2- | sort)
if [ "$(echo "$output" | sort)" != "$expected" ]; then
  echo "round trip mismatch" >&2
  exit 1
fi
echo "round trip OK: 10 records produced and consumed"

say "rill offsets quickstart"
"$bin/rill" offsets quickstart

say "A few metrics from http://$http/metrics"
curl -fsS "http://$http/metrics" | grep -E '^rill_(records_appended|bytes_in)' | head -5 || true

if $smoke; then
  exit 0
fi
cat <<TXT

Rill is running. Try, in another terminal:
  export RILL_BROKER=$client
  $bin/rill topic list
  kcat -b $kafka -L                      # any Kafka client works too
  kcat -b $kafka -C -t quickstart -e
  seq 1 100000 | $bin/rill produce quickstart
  $bin/rill consume quickstart --from earliest --follow
  curl http://$http/metrics

Press Ctrl-C to stop the broker.
TXT
wait "$broker"
