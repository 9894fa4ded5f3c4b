#!/usr/bin/env bash
# A replicated Rill cluster on loopback, without Kubernetes: one metadata
# controller (file store) and three brokers, data under .rill/cluster. Creates
# a topic with replication factor 3 and min.insync.replicas=2, produces and
# consumes through it, then leaves everything running until Ctrl-C.
#
#   scripts/local-cluster.sh            # release build, keeps running
#   scripts/local-cluster.sh --smoke    # debug build, port 0, stops after the round trip (make test)
#
# Ports (without --smoke): controller 9095 (http 9645); broker N: Kafka
# 9092+N*10000, client 9093+N*10000, replication 9094+N*10000, http
# 9644+N*10000. With --smoke every port is 0 (picked by the OS). It prints
# the Kafka bootstrap servers as one line, KAFKA_BOOTSTRAP=host:port,...,
# for Kafka clients (kcat -b, bootstrap.servers).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
profile=release
$smoke && profile=debug
target="${CARGO_TARGET_DIR:-target}"
bin="$target/$profile"
work=".rill/cluster"
$smoke && work=".rill/cluster-smoke"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
port() { if $smoke; then echo 0; else echo "$1"; fi; }

say "Building rill-controller, rill-broker and rill ($profile)"
if [ "$profile" = release ]; then
  cargo build --release -p rill-broker -p rill-client --bins -p rill-controller
else
  # The same invocation as `make test`, so nothing is rebuilt with other
  # feature sets; it leaves every binary in $target/debug.
  cargo test --workspace --all-targets --no-run
fi

rm -rf "$work" && mkdir -p "$work"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "cluster stopped"
}
trap stop EXIT

# Starts a process whose stdout goes to $1.ready and waits for RILL_READY.
launch() {
  local name=$1; shift
  "$@" >"$work/$name.ready" 2>"$work/$name.log" &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 300); do
    grep -q '^RILL_READY' "$work/$name.ready" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log"; echo "$name exited" >&2; exit 1; }
    sleep 0.1
  done
  grep '^RILL_READY' "$work/$name.ready" || { cat "$work/$name.log"; echo "$name did not become ready" >&2; exit 1; }
}
field() { sed -E "s/.*$2=([^ ]+).*/\1/" "$work/$1.ready"; }

say "Starting the controller"
launch controller "$bin/rill-controller" --metadata-file "$work/controller/metadata.json" \
  --listen-addr "127.0.0.1:$(port 9095)" --http-addr "127.0.0.1:$(port 9645)"
controller=$(field controller controller)

for id in 0 1 2; do
  say "Starting broker $id"
  launch "broker-$id" "$bin/rill-broker" --broker-id "$id" --data-dir "$work/broker-$id" \
    --controller-addr "$controller" \
    --listen-addr "127.0.0.1:$(port $((9093 + id * 10000)))" \
    --http-addr "127.0.0.1:$(port $((9644 + id * 10000)))" \
    --replication-addr "127.0.0.1:$(port $((9094 + id * 10000)))" \
    --kafka-addr "127.0.0.1:$(port $((9092 + id * 10000)))"
done
export RILL_BROKER=$(field broker-0 client)
bootstrap="$(field broker-0 kafka),$(field broker-1 kafka),$(field broker-2 kafka)"
say "Kafka bootstrap servers"
echo "KAFKA_BOOTSTRAP=$bootstrap"
echo "KAFKA_BOOTSTRAP=$bootstrap" >"$work/kafka-bootstrap"

say "rill topic create events --partitions 3 --replication-factor 3 --config min.insync.replicas=2"
"$bin/rill" topic create events --partitions 3 --replication-factor 3 --config min.insync.replicas=2

say "Producing 1000 keyed records with acks=all"
seq 1 1000 | sed 's/^/key-/; s/$/:value/' | awk -F: '{print $1":"$1"-"$2}' \
  | "$bin/rill" produce events --key-separator : --acks all

say "Consuming them back (from each partition's leader)"
count=$("$bin/rill" consume events --from earliest --max 1000 | wc -l)
echo "consumed $count records"
[ "$count" -eq 1000 ] || { echo "expected 1000 records" >&2; exit 1; }

say "rill topic describe events"
"$bin/rill" topic describe events

# The same through the Kafka protocol, when kcat is installed.
if command -v kcat >/dev/null 2>&1; then
  say "kcat -b \$KAFKA_BOOTSTRAP -L -t events; consuming with kcat"
  kcat -b "$bootstrap" -L -t events | tee "$work/kcat-metadata.txt"
  grep -q 'topic "events" with 3 partitions' "$work/kcat-metadata.txt" \
    || { echo "kcat does not see the topic" >&2; exit 1; }
  count=$(kcat -b "$bootstrap" -C -t events -e -q | wc -l)
  echo "kcat consumed $count records"
  [ "$count" -eq 1000 ] || { echo "expected 1000 records through Kafka" >&2; exit 1; }
fi

if $smoke; then
  exit 0
fi
cat <<TXT

The cluster is running (logs in $work/*.log). Try, in another terminal:
  export RILL_BROKER=$RILL_BROKER
  $bin/rill topic describe events          # leaders, replicas, ISR
  kcat -b $bootstrap -L                     # the same through the Kafka protocol
  kcat -b $bootstrap -C -t events -e        # consume with any Kafka client
  kill -9 \$(pgrep -f 'broker-id 0')          # kill a broker; leadership moves within ~2 s
  $bin/rill topic describe events
  seq 1 100000 | $bin/rill produce events --acks all

Press Ctrl-C to stop the cluster.
TXT
wait
