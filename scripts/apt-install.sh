#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet, with
# apt-get (as root, else with sudo). Used by every script that needs a Debian
# package (install-compat.sh, test-images.sh) and by .ci/run's prefetch, so:
#   - one `apt-get update` serves them all: it runs when this script has not
#     updated the package lists in the last hour (stamp in $RILL_CACHE), and
#     again if an install fails on lists that old;
#   - one apt-get at a time: a second run waits for the first (a lock in
#     $RILL_CACHE) instead of failing on dpkg's lock, then finds its packages
#     installed.
#
#   scripts/apt-install.sh kcat skopeo umoci
set -euo pipefail

[ $# -gt 0 ] || exit 0
CACHE="${RILL_CACHE:-$HOME/.cache/rill}"
mkdir -p "$CACHE"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
find_missing() { missing=(); local p; for p in "$@"; do installed "$p" || missing+=("$p"); done; [ ${#missing[@]} -gt 0 ]; }

find_missing "$@" || exit 0
exec 9>"$CACHE/apt.lock"
if ! flock -n 9; then
    echo "apt-install: waiting for another apt-install.sh to finish" >&2
    flock 9
fi
find_missing "$@" || exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
stamp="$CACHE/apt-lists-updated"
update() { "${sudo[@]}" apt-get update -qq && touch "$stamp"; }
install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

echo "apt-install: ${missing[*]}" >&2
if [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
    install "${missing[@]}" || { update && install "${missing[@]}"; }
else
    update && install "${missing[@]}"
fi
