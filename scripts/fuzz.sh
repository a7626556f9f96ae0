#!/usr/bin/env bash
# Fuzzes fedflow's parsers of untrusted input with cargo-fuzz (libFuzzer, AddressSanitizer):
# every target in fuzz/ runs for a bounded time, and the script fails on the first crash (a
# panic, a stack overflow, a sanitizer report), a slow input (-timeout) or an out-of-memory,
# leaving the input in fuzz/artifacts/<target>/ (replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`).
#
# Targets (fuzz/fuzz_targets/):
#   dsl       fedflow_core::dsl::parse on a DSL + runtime conf pair (split at the first 0xFF),
#             then what the services do with an accepted job;
#   envelope  a fedflow.gateway.v1.Envelope as a gateway receives it, the inner requests it may
#             carry, and the id checks on them.
#
# Each target starts from its checked-in seeds (fuzz/corpus/<target>/, read only) and keeps what
# it finds in fuzz/target/fuzz-corpus/<target>/ (not tracked), so later runs go further.
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer=address and coverage options); fedflow
# builds with stable Rust, so RUSTC_BOOTSTRAP=1 lets the stable compiler take them, for this
# build only. cargo-fuzz itself is installed from crates.io if missing (pinned version). The
# fuzz crate is not in the main workspace and builds in fuzz/target, so it never touches (or
# waits for) the main target directory. A cold run (install, build, 2 x 30 s) takes about 7
# minutes on 2 cores.
#
# Environment: FEDFLOW_FUZZ_SECONDS (30): time per target; FEDFLOW_FUZZ_TARGETS (all, space
# separated): which targets.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FEDFLOW_FUZZ_SECONDS:-30}"
targets="${FEDFLOW_FUZZ_TARGETS:-dsl envelope}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
cargo fuzz --version

export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR

start=$SECONDS
cargo fuzz build
echo "fuzz: built in $((SECONDS - start)) s"

for target in $targets; do
    corpus="fuzz/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    args=(
        "-max_total_time=$seconds"
        # An input that takes this long is a denial of service: report it as a failure.
        -timeout=10
        -rss_limit_mb=2048
        -print_final_stats=1
    )
    if [[ -f "fuzz/$target.dict" ]]; then
        args+=("-dict=fuzz/$target.dict")
    fi
    echo "fuzz: $target for $seconds s"
    # libFuzzer reports every new input; its log is kept whole in fuzz/target/ and only its end
    # is printed (all of it on a failure).
    log="fuzz/target/fuzz-$target.log"
    if ! cargo fuzz run "$target" "$corpus" "fuzz/corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/:" >&2
        ls -l "fuzz/artifacts/$target/" >&2 || true
        exit 1
    fi
    tail -n 12 "$log"
done
echo "fuzz: every target ran ${seconds} s without a crash ($((SECONDS - start)) s in all)"
