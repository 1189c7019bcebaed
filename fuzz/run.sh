#!/usr/bin/env sh
# Fuzzes the exports file reader for a fixed time (default 60 seconds): ./fuzz/run.sh [SECONDS]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Not part of CI; a crash
# leaves its input under fuzz/artifacts/exports_parse/ for `cargo +nightly fuzz run exports_parse <file>`.
set -eu
cd "$(dirname "$0")/.."
exec cargo +nightly fuzz run exports_parse -- -max_total_time="${1:-60}"
