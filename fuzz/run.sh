#!/usr/bin/env sh
# Fuzzes a target for a fixed time (default 60 seconds): ./fuzz/run.sh [SECONDS] [TARGET]
# Targets: exports_parse (the exports file reader, the default), helper_request (the exports
# helper's request parser).
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Not part of CI; a crash
# leaves its input under fuzz/artifacts/<target>/ for `cargo +nightly fuzz run <target> <file>`.
set -eu
cd "$(dirname "$0")/.."
exec cargo +nightly fuzz run "${2:-exports_parse}" -- -max_total_time="${1:-60}"
