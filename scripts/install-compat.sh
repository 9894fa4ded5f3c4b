#!/usr/bin/env bash
# Installs what Rill's client-compatibility tests (compat/) run, from package
# registries only, into ${RILL_CACHE:-$HOME/.cache/rill}/compat:
#   - kcat (Debian package, apt-get);
#   - openssl and curl (Debian packages, apt-get; usually already there);
#   - iptables (Debian package, as root; used by an e2e scenario);
#   - a Python venv with confluent-kafka (its wheel bundles librdkafka) and pytest;
#   - Apache Kafka's jars from Maven Central (the reference broker kafka_2.13,
#     kafka-tools, kafka-clients, kafka-streams, slf4j-simple) plus Rill's
#     compat programs (compat/java), built with Maven;
#   - Kafka Connect's worker, FileStream connectors and MirrorMaker 2 from
#     Maven Central (compat/connect), on a classpath of their own.
# Idempotent: each part is skipped when its stamp matches its inputs. Prints
# what it does, then the classpath and writes $RILL_CACHE/compat/env.sh, which
# compat/run.sh sources.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
COMPAT="$CACHE/compat"
mkdir -p "$COMPAT"
started=$(date +%s)
say() { echo "install-compat [+$(( $(date +%s) - started ))s]: $*"; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# One run at a time: a second one (a test stage while .ci/run's prefetch is
# still installing) waits, then finds everything stamped.
exec 9>"$COMPAT/.install.lock"
if ! flock -n 9; then
    say "waiting for another install-compat.sh to finish"
    flock 9
fi

# --- kcat --------------------------------------------------------------------
if command -v kcat >/dev/null 2>&1; then
    say "kcat present: $(command -v kcat)"
else
    say "apt-get install kcat"
    # apt-install.sh runs `apt-get update` first when the lists may be old.
    "$repo/scripts/apt-install.sh" kcat
    command -v kcat >/dev/null || { echo "install-compat: kcat did not install" >&2; exit 1; }
fi

# --- openssl (the secured compat clusters make their CA and certificates) ----
if ! command -v openssl >/dev/null 2>&1; then
    say "apt-get install openssl"
    "$repo/scripts/apt-install.sh" openssl
    command -v openssl >/dev/null || { echo "install-compat: openssl did not install" >&2; exit 1; }
fi

# --- curl (the Kafka Connect tests talk to the workers' REST API) ----------
if ! command -v curl >/dev/null 2>&1; then
    say "apt-get install curl"
    "$repo/scripts/apt-install.sh" curl
    command -v curl >/dev/null || { echo "install-compat: curl did not install" >&2; exit 1; }
fi

# --- iptables (the e2e scenario of a roll blocked by cut replication) --------
if command -v iptables >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    :
else
    say "apt-get install iptables"
    "$repo/scripts/apt-install.sh" iptables
fi

# --- Python venv ---------------------------------------------------------------
VENV="$COMPAT/venv"
PY_REQ="$repo/compat/python/requirements.txt"
py_stamp="$VENV/.stamp-$(hash_of "$PY_REQ")"
if [ -f "$py_stamp" ] && "$VENV/bin/python" -c 'import confluent_kafka, pytest' 2>/dev/null; then
    say "python venv present: $VENV"
else
    say "creating python venv $VENV (pip install -r compat/python/requirements.txt)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$PY_REQ"
    touch "$py_stamp"
fi
say "confluent-kafka $("$VENV/bin/python" -c 'import confluent_kafka as c; print(c.version(), "(librdkafka", c.libversion()[0] + ")")')"

# --- Apache Kafka jars and the compat programs ----------------------------------
POM="$repo/compat/java/pom.xml"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
LIB="$COMPAT/kafka-$KAFKA_VERSION/lib"
M2="$COMPAT/m2"
java_inputs=("$POM")
while IFS= read -r f; do java_inputs+=("$f"); done < <(find "$repo/compat/java/src" -type f | sort)
java_stamp="$LIB/.stamp-$(hash_of "${java_inputs[@]}")"
if [ -f "$java_stamp" ]; then
    say "Kafka $KAFKA_VERSION jars and compat programs present: $LIB"
else
    command -v mvn >/dev/null || { echo "install-compat: Maven (mvn) is needed" >&2; exit 1; }
    say "mvn package + dependency:copy-dependencies (Kafka $KAFKA_VERSION from Maven Central) into $LIB"
    rm -rf "$LIB" && mkdir -p "$LIB"
    mvn -B -q -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$M2" -Dcompat.build.dir="$COMPAT/build" \
        package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB" 2>&1 \
        | sed 's/\x1b\[[0-9;]*m//g'  # Maven prints colour resets even in batch mode
    cp "$COMPAT/build/rill-compat.jar" "$LIB/"
    touch "$java_stamp"
fi

# --- Kafka Connect (worker, FileStream connectors, MirrorMaker 2) ------------
CONNECT_POM="$repo/compat/connect/pom.xml"
CONNECT_LIB="$COMPAT/connect-$KAFKA_VERSION/lib"
connect_stamp="$CONNECT_LIB/.stamp-$(hash_of "$CONNECT_POM" "$POM")"
if [ -f "$connect_stamp" ]; then
    say "Kafka Connect $KAFKA_VERSION jars present: $CONNECT_LIB"
else
    command -v mvn >/dev/null || { echo "install-compat: Maven (mvn) is needed" >&2; exit 1; }
    say "mvn dependency:copy-dependencies (Kafka Connect $KAFKA_VERSION from Maven Central) into $CONNECT_LIB"
    rm -rf "$CONNECT_LIB" && mkdir -p "$CONNECT_LIB"
    mvn -B -q -Dstyle.color=never -f "$CONNECT_POM" -Dmaven.repo.local="$M2" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CONNECT_LIB" 2>&1 \
        | sed 's/\x1b\[[0-9;]*m//g'
    touch "$connect_stamp"
fi

cat >"$COMPAT/env.sh" <<ENV
# Written by scripts/install-compat.sh
export KAFKA_VERSION="$KAFKA_VERSION"
export COMPAT_LIB="$LIB"
export COMPAT_CLASSPATH="$LIB/*"
export COMPAT_VENV="$VENV"
export CONNECT_CLASSPATH="$CONNECT_LIB/*"
ENV
say "done in $(( $(date +%s) - started ))s"
echo "KAFKA_VERSION=$KAFKA_VERSION"
echo "COMPAT_CLASSPATH=$LIB/*"
echo "COMPAT_VENV=$VENV"
echo "CONNECT_CLASSPATH=$CONNECT_LIB/*"
echo "COMPAT_ENV=$COMPAT/env.sh"
