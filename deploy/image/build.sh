#!/bin/sh
# Builds the tracer-daemon runtime image from a binary built on this host: no container registry
# is needed (the image is FROM scratch).
#
#   deploy/image/build.sh [--check] [IMAGE]       IMAGE defaults to localhost/tracer-daemon:VERSION
#
# TRACER_BIN=path   use this daemon binary instead of running `cargo xtask build`
# BUILDER=podman    or buildah (default: the first one installed)
# --check           then run `tracer-daemon --help` from the image: with `podman run` (extra
#                   flags from PODMAN_RUN_FLAGS), else by mounting the image and chroot-ing
#                   into it (root only), and say which one was used.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
image=${1:-localhost/tracer-daemon:$version}

if [ -z "${BUILDER:-}" ]; then
    for b in podman buildah; do
        if command -v "$b" >/dev/null 2>&1; then BUILDER=$b; break; fi
    done
fi
if [ -z "${BUILDER:-}" ]; then
    echo "build.sh: neither podman nor buildah is installed (Debian: apt-get install podman)" >&2
    exit 1
fi

bin=${TRACER_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && cargo xtask build)
    bin=$root/target/release/tracer-daemon
fi
[ -x "$bin" ] || { echo "build.sh: $bin is not an executable" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/tracer"
install -m 0755 "$bin" "$ctx/rootfs/usr/bin/tracer-daemon"
# The shared libraries the binary links, and the loader, at the paths the binary names.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    cp --parents -L "$lib" "$ctx/rootfs"
done
cp "$here/Containerfile.prebuilt" "$ctx/Containerfile"

echo "build.sh: building $image with $BUILDER from $bin"
case "$BUILDER" in
    buildah) buildah bud -f "$ctx/Containerfile" -t "$image" "$ctx" ;;
    *) "$BUILDER" build -f "$ctx/Containerfile" -t "$image" "$ctx" ;;
esac

if [ "$check" = 1 ]; then
    out=$ctx/help.txt
    # shellcheck disable=SC2086
    if command -v podman >/dev/null 2>&1 && podman run --rm --network none ${PODMAN_RUN_FLAGS:-} "$image" --help >"$out" 2>&1; then
        how="podman run"
    else
        [ -s "$out" ] && sed 's/^/build.sh: podman run: /' "$out" >&2
        # Same file tree, no OCI runtime: proves the image holds everything the binary loads.
        mnt=$(podman image mount "$image")
        how="chroot into the image (podman image mount)"
        status=0
        chroot "$mnt" /usr/bin/tracer-daemon --help >"$out" 2>&1 || status=$?
        podman image unmount "$image" >/dev/null
        [ "$status" = 0 ] || { cat "$out" >&2; exit 1; }
    fi
    grep -q -- "--config" "$out" || { cat "$out" >&2; echo "build.sh: --help did not print the usage" >&2; exit 1; }
    size=$(podman image inspect --format '{{.Size}}' "$image")
    echo "build.sh: checked with $how: tracer-daemon --help works; image $image is $size bytes"
fi
