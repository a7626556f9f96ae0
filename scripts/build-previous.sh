#!/usr/bin/env bash
# Builds the service binaries of the previous landed version (the commit named in
# tests/compat/previous) for the mixed-version tests, once, and prints the directory that holds
# them: target/previous/<commit>/bin. The source comes from this clone's history (git archive);
# it is built in this checkout's target directory, so the dependencies both versions share are
# compiled once. That build leaves the previous version's binaries in target/debug: build this
# version afterwards (`cargo build --workspace --bins`, which scripts/test.sh does) so that
# target/debug holds this version's again.
set -euo pipefail
cd "$(dirname "$0")/.."
commit="$(grep -v '^#' tests/compat/previous | grep -v '^[[:space:]]*$' | head -n 1)"
out="$PWD/target/previous/$commit"
bins=(fedflow fedflow-scheduler fedflow-job-controller fedflow-task-controller fedflow-party-gateway fedflow-worker)
have=1
for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || have=0; done
if [ "$have" = 1 ]; then
    echo "$out/bin"
    exit 0
fi
git cat-file -e "$commit^{commit}" 2>/dev/null || {
    echo "build-previous: commit $commit (tests/compat/previous) is not in this clone's history; a shallow clone needs 'git fetch --unshallow'" >&2
    exit 1
}
echo "build-previous: building $commit (about as long as a cold build of this version)" >&2
src="$out/src"
rm -rf "$src"
mkdir -p "$src"
git archive "$commit" | tar -x -C "$src"
(cd "$src" && CARGO_TARGET_DIR="$PWD/../../.." cargo build --workspace --bins >&2)
mkdir -p "$out/bin"
for b in "${bins[@]}"; do
    cp "target/debug/$b" "$out/bin/$b"
    # Not this version's binary: removed so that nothing runs it by mistake; the next build of
    # this version puts its own back.
    rm -f "target/debug/$b"
done
rm -rf "$src"
echo "$out/bin"
