#!/usr/bin/env bash
# Assembles the root filesystem of a Rill image in ROOTFS. The Dockerfiles
# run it in their build stage and copy ROOTFS into a `scratch` image;
# scripts/build-images.sh runs it too and packs ROOTFS as the image's single
# layer, so both builds produce the same files, modes and owners.
#
#   images/rootfs.sh broker|operator BIN_DIR ROOTFS
#
# What goes in:
# - the binaries from BIN_DIR, in /usr/local/bin, mode 0755 (broker image:
#   rill-broker and the rill CLI; operator image: rill-operator);
# - the shared libraries they load (glibc's loader, libc, libm, libgcc_s;
#   `ldd` says which), each at the path ldd reports, plus the Debian
#   copyright file of every package they come from;
# - /etc/passwd and /etc/group with root and the `rill` user 65532:65532,
#   /etc/nsswitch.conf (users, groups and hosts from files, then DNS);
# - /tmp (1777); in the broker image /var/lib/rill, the data directory,
#   owned by 65532:65532, mode 0750.
#
# Needs a glibc system with dpkg (Debian, Ubuntu), and root to give the data
# directory its owner (scripts/build-images.sh runs under fakeroot when it
# is not root).
set -euo pipefail
umask 022

usage() { echo "usage: $0 broker|operator BIN_DIR ROOTFS" >&2; exit 2; }
[ $# -eq 3 ] || usage
image=$1 bin_dir=$2 rootfs=$3

RILL_UID=65532
RILL_GID=65532
case "$image" in
  broker) bins=(rill-broker rill) data_dir=/var/lib/rill ;;
  operator) bins=(rill-operator) data_dir= ;;
  *) usage ;;
esac

if [ -e "$rootfs" ] && [ -n "$(ls -A "$rootfs")" ]; then
  echo "rootfs.sh: $rootfs is not empty" >&2
  exit 1
fi
install -d -m 0755 "$rootfs" "$rootfs/etc" "$rootfs/usr/local/bin"
install -d -m 1777 "$rootfs/tmp"

for bin in "${bins[@]}"; do
  [ -x "$bin_dir/$bin" ] || { echo "rootfs.sh: $bin_dir/$bin is missing (build it first)" >&2; exit 1; }
  install -m 0755 "$bin_dir/$bin" "$rootfs/usr/local/bin/$bin"
done

# Shared libraries, at the paths the dynamic loader looks them up by: the
# loader's own path is written into each binary (PT_INTERP), the libraries
# are found in the loader's default directories (/lib/<triplet>), which is
# where ldd resolves them on Debian. A static binary needs none.
libs=$(
  for bin in "${bins[@]}"; do
    # Without LD_PRELOAD: under fakeroot ldd would list libfakeroot too.
    out=$(env -u LD_PRELOAD ldd "$bin_dir/$bin" 2>&1) || { grep -q 'not a dynamic executable' <<<"$out" && continue; echo "$out" >&2; exit 1; }
    if grep -q 'not found' <<<"$out"; then
      echo "rootfs.sh: $bin needs libraries that are not installed:" >&2
      echo "$out" >&2
      exit 1
    fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
  done | sort -u
)
packages=()
for lib in $libs; do
  install -d -m 0755 "$rootfs$(dirname "$lib")"
  # -L: the file itself, not the symlink chain of the build system.
  cp -L "$lib" "$rootfs$lib"
  chmod 0755 "$rootfs$lib"
  owner=$(dpkg -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1) || true
  if [ -z "$owner" ]; then
    echo "rootfs.sh: no Debian package owns $lib; cannot ship its copyright file" >&2
    exit 1
  fi
  packages+=("$owner")
done
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/copyright"
done

cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
rill:x:$RILL_UID:$RILL_GID:Rill:/nonexistent:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
rill:x:$RILL_GID:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<EOF
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"

if [ -n "$data_dir" ]; then
  install -d -m 0755 "$rootfs$(dirname "$data_dir")"
  install -d -m 0750 "$rootfs$data_dir"
  if [ "$(id -u)" -ne 0 ]; then
    echo "rootfs.sh: must run as root (or under fakeroot) to give $data_dir to $RILL_UID:$RILL_GID" >&2
    exit 1
  fi
  chown "$RILL_UID:$RILL_GID" "$rootfs$data_dir"
fi
