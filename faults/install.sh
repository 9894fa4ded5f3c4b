#!/usr/bin/env bash
# Installs what faults/run.sh needs: everything scripts/install-compat.sh
# installs (kcat, the Python venv with confluent-kafka and pytest, Apache
# Kafka's jars), plus strace and iproute2 from Debian, plus
# faults/requirements.txt into the same venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../scripts/install-compat.sh"
missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    echo "faults/install: apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
# shellcheck disable=SC1091
. "$CACHE/compat/env.sh"
if grep -qv '^\s*\(#\|$\)' "$here/requirements.txt" 2>/dev/null; then
    "$COMPAT_VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
echo "faults/install: ready (strace $(strace -V | head -1 | awk '{print $NF}'), $(ip -V))"
