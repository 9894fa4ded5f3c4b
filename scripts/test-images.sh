#!/usr/bin/env bash
# Image tests (`make test-images`): builds the broker and operator image
# archives from the debug binaries (the ones `make test` already built, so
# no release build), twice, and checks
# - that both builds are byte-identical (reproducible digests), and
# - each archive with images/verify.py: valid OCI layout and digests, numeric
#   non-root user, entrypoint, ports, labels, the layer's files, owners and
#   modes, and, as root, that the binaries run inside the unpacked image as
#   its user (the broker serves and stores data, the rill CLI round-trips
#   records). skopeo and umoci, when installed, read the archives too.
#
# As root on Debian, skopeo and umoci are installed with apt-get if missing.
# RILL_IMAGES_NO_BUILD=1 skips the cargo step and uses target/debug as it is.
# Prints "images: N passed, 0 failed" on success.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 \
  && ! { command -v skopeo && command -v umoci; } >/dev/null 2>&1; then
  echo "test-images: installing skopeo and umoci (apt-get)"
  scripts/apt-install.sh skopeo umoci >/dev/null 2>&1 \
    || echo "test-images: could not install skopeo and umoci; their checks are skipped"
fi

# The same invocation as `make test`: a no-op when its binaries are current.
# It runs before SOURCE_DATE_EPOCH is set: the C build scripts (ring, zstd-sys,
# lz4-sys, psm) watch that variable, and would rebuild with every crate above
# them, here and again in the next stage.
[ -n "${RILL_IMAGES_NO_BUILD:-}" ] || cargo test --workspace --all-targets --no-run

# Any fixed time: the two builds must agree with each other, not with HEAD.
export SOURCE_DATE_EPOCH=1700000000

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Hard links pin the binaries' contents: a concurrent cargo build replaces
# files in target/ rather than rewriting them.
mkdir "$work/bin"
for bin in rill-broker rill rill-operator; do
  ln "$target/debug/$bin" "$work/bin/$bin" 2>/dev/null || cp "$target/debug/$bin" "$work/bin/$bin"
done

version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])')
# Level 1: debug binaries are large; the level does not change what is checked.
for build in first second; do
  echo "test-images: $build build"
  scripts/build-images.sh --bin-dir "$work/bin" --out "$work/$build" --gzip-level 1
done

passed=0
failed=0
for image in broker operator; do
  archive="rill-$image-$version.oci.tar"
  a=$(sha256sum <"$work/first/$archive" | cut -d' ' -f1)
  b=$(sha256sum <"$work/second/$archive" | cut -d' ' -f1)
  if [ "$a" = "$b" ]; then
    passed=$((passed + 1))
    echo "ok   $image: two builds give the same archive ($a)"
  else
    failed=$((failed + 1))
    echo "FAIL $image: two builds differ ($a, $b)"
  fi
  # Only the archive is checked (it holds the same layout).
  rm -rf "$work/second/rill-$image-$version.oci" "$work/second/$archive" "$work/first/rill-$image-$version.oci"
  mkdir "$work/verify-$image"
  status=0
  python3 images/verify.py --archive "$work/first/$archive" --image "$image" \
    --bin-dir "$work/bin" --work "$work/verify-$image" | tee "$work/verify-$image.log" || status=$?
  passed=$((passed + $(grep -c '^ok ' "$work/verify-$image.log" || true)))
  fails=$(grep -c '^FAIL ' "$work/verify-$image.log" || true)
  if [ "$status" -ne 0 ] && [ "$fails" -eq 0 ]; then
    echo "FAIL $image: images/verify.py exited $status"
    fails=1
  fi
  failed=$((failed + fails))
  rm -rf "$work/verify-$image"
done

echo "images: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
