#!/usr/bin/env bash
# Builds the Rill container images without a container daemon: for each image
# it assembles the root filesystem with images/rootfs.sh from the binaries of
# a cargo build, and images/oci.py writes it as an OCI image layout plus an
# OCI archive, with the configuration from the final stage of
# images/<image>/Dockerfile. Prints each image's manifest and config digest.
#
#   scripts/build-images.sh                     # release build, both images
#   scripts/build-images.sh --profile debug     # debug binaries (tests)
#   scripts/build-images.sh --image broker --no-build --out /tmp/images
#
# Options:
#   --profile release|debug  which build's binaries (default release); built
#                            first unless --no-build
#   --bin-dir DIR            take the binaries from DIR instead (no build)
#   --no-build               use the binaries already in the profile's directory
#   --image broker|operator  only this image (repeatable; default both)
#   --out DIR                output directory (default $CARGO_TARGET_DIR/images,
#                            or target/images)
#   --gzip-level N           layer compression, 0-9 (default 6)
#
# Output, per image: OUT/rill-<image>-<version>.oci/ (OCI image layout) and
# OUT/rill-<image>-<version>.oci.tar (the same as one archive), tagged
# rill/<image>:<version> with the version from the workspace Cargo.toml.
# Reproducible: the same binaries and SOURCE_DATE_EPOCH (default: the time of
# the last commit) give the same digests.
#
# Needs Python 3.11+, a glibc system with dpkg (the images carry the build
# host's glibc), and root or fakeroot to give the data directory its owner.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

profile=release
bin_dir=
build=true
images=()
target="${CARGO_TARGET_DIR:-target}"
out="$target/images"
gzip_level=6
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?}"; build=false; shift 2 ;;
    --no-build) build=false; shift ;;
    --image) images+=("${2:?}"); shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    --gzip-level) gzip_level="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "build-images: unknown option $1" >&2; usage ;;
  esac
done
case "$profile" in release|debug) ;; *) echo "build-images: --profile is release or debug" >&2; exit 2 ;; esac
[ ${#images[@]} -gt 0 ] || images=(broker operator)
for image in "${images[@]}"; do
  case "$image" in broker|operator) ;; *) echo "build-images: no image $image (broker, operator)" >&2; exit 2 ;; esac
done
bin_dir="${bin_dir:-$target/$profile}"

version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

# rootfs.sh sets owners and oci.py reads them back: as another user both run
# in one fakeroot session.
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v fakeroot >/dev/null 2>&1 || {
    echo "build-images: run as root or install fakeroot (the data directory is owned by 65532)" >&2
    exit 1
  }
  as_root=(fakeroot --)
fi

if $build; then
  if [ "$profile" = release ]; then
    cargo build --release --locked -p rill-broker -p rill-client -p rill-operator --bins
  else
    # The invocation `make test` uses, so nothing is rebuilt with other
    # features; it leaves every binary in $target/debug.
    cargo test --workspace --all-targets --no-run
  fi
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for image in "${images[@]}"; do
  "${as_root[@]}" bash -c 'images/rootfs.sh "$1" "$2" "$3" && shift 3 && exec python3 images/oci.py "$@"' _ \
    "$image" "$bin_dir" "$stage/$image" --dockerfile "images/$image/Dockerfile" --rootfs "$stage/$image" \
    --name "rill/$image" --tag "$version" --build-arg "RILL_VERSION=$version" \
    --out "$out" --epoch "$epoch" --gzip-level "$gzip_level"
  rm -rf "${stage:?}/$image"
done
