#!/usr/bin/env bash
# Builds rill-load (bench/load/rill-load.c) into ${RILL_CACHE:-~/.cache/rill}/bench/rill-load,
# installing gcc and librdkafka-dev from Debian first when they are missing.
# Prints the binary's path. Rebuilds only when the source is newer.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
out="$CACHE/bench/rill-load"
mkdir -p "$CACHE/bench"
"$here/../../scripts/apt-install.sh" gcc librdkafka-dev
if [ ! -x "$out" ] || [ "$here/rill-load.c" -nt "$out" ]; then
    gcc -O2 -Wall -Wextra -Werror -pthread -o "$out.tmp" "$here/rill-load.c" -lrdkafka
    mv "$out.tmp" "$out"
fi
echo "$out"
