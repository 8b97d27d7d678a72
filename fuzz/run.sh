#!/usr/bin/env bash
# Fuzzes the trace-file reader for a bounded time: fuzz/run.sh [SECONDS] (default 60).
# Uses nightly when installed, else the stable toolchain with RUSTC_BOOTSTRAP
# (cargo-fuzz needs -Z flags). Installs cargo-fuzz from crates.io if missing.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
mkdir -p corpus/trace_reader
# No AddressSanitizer (-s none): the reader and everything it calls are safe
# Rust (no `unsafe` under src/tracefile/), so what the fuzzer hunts is a
# panic, an overflow or a hang, which need no sanitizer; without it the
# build takes a minute less in CI and each run goes several times faster.
exec cargo "${toolchain[@]}" fuzz run -s none trace_reader corpus/trace_reader -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
