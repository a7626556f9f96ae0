#!/usr/bin/env bash
# Makes a minimal base image for fedflow's binaries without pulling anything: a root file
# system assembled on this host, loaded with `docker import`. It holds only
#   - the shared libraries `ldd` lists for the given binaries, and the dynamic loader
#     (fedflow links glibc dynamically: libc, libm, libgcc_s);
#   - /etc/passwd, /etc/group (root and fedflow, uid/gid 10001), /etc/nsswitch.conf;
#   - /tmp (1777) and /var/lib/fedflow (owned by 10001).
# No shell, no package manager. Build fedflow's image on it with
#   docker build -f deploy/docker/Dockerfile --target runtime-prebuilt \
#       --build-arg BASE_IMAGE=fedflow-base:local ...
# (see the Dockerfile). The libraries come from this host, so the image runs binaries built on
# this host (or against an older glibc).
#
# Usage: deploy/docker/make-base-image.sh [-t TAG] [BINARY_DIR]
#   TAG         image to create (default fedflow-base:local)
#   BINARY_DIR  where the fedflow binaries are (default target/debug, relative to the repo)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="fedflow-base:local"
BINARIES=fedflow\ fedflow-scheduler\ fedflow-job-controller\ fedflow-task-controller\ fedflow-party-gateway\ fedflow-worker

die() {
    echo "make-base-image: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    -t | --tag)
        [ $# -ge 2 ] || die "$1 needs a value"
        TAG="$2"
        shift 2
        ;;
    -h | --help)
        sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $1" ;;
    *) break ;;
    esac
done
BIN_DIR="${1:-$ROOT/target/debug}"

command -v ldd >/dev/null 2>&1 || die "ldd not found"
command -v docker >/dev/null 2>&1 || die "docker not found"

WORK="$(mktemp -d -t fedflow-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{etc,tmp,var/lib/fedflow}
chmod 1777 "$ROOTFS/tmp"
chmod 0755 "$ROOTFS/var/lib/fedflow"

# Every file ldd names (libraries after "=>", the loader as an absolute path), copied
# dereferenced to the path ldd gave, which is where the loader looks.
libs=()
for bin in $BINARIES; do
    path="$BIN_DIR/$bin"
    [ -x "$path" ] || die "$path not found: run 'cargo build --workspace --bins' first (or pass the binaries' directory)"
    out="$(ldd "$path" 2>&1)" || die "ldd $path failed: $out"
    while read -r lib; do
        libs+=("$lib")
    done < <(printf '%s\n' "$out" | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }')
done
[ "${#libs[@]}" -gt 0 ] || die "ldd listed no libraries: are the binaries static? then any base image will do"
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
done
# The loader's cache, when ldconfig can write one for the tree (optional: the loader also
# searches its default directories).
for ldconfig in ldconfig /sbin/ldconfig; do
    if command -v "$ldconfig" >/dev/null 2>&1; then
        "$ldconfig" -r "$ROOTFS" 2>/dev/null || true
        break
    fi
done

cat >"$ROOTFS/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
fedflow:x:10001:10001:fedflow:/var/lib/fedflow:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$ROOTFS/etc/group" <<'EOF'
root:x:0:
fedflow:x:10001:
nogroup:x:65534:
EOF
cat >"$ROOTFS/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF
chmod 0644 "$ROOTFS"/etc/{passwd,group,nsswitch.conf}

# Owners are set in the archive, so this works without root: everything root's except the
# data directory.
TARBALL="$WORK/rootfs.tar"
tar --numeric-owner --owner=0 --group=0 --exclude=./var/lib/fedflow \
    -C "$ROOTFS" -cf "$TARBALL" .
tar --numeric-owner --owner=10001 --group=10001 --no-recursion \
    -C "$ROOTFS" -rf "$TARBALL" ./var/lib/fedflow

docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --message "fedflow base: $(printf '%s\n' "${libs[@]}" | sort -u | tr '\n' ' ')" \
    "$TARBALL" "$TAG" >/dev/null
echo "$TAG"
