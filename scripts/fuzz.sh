#!/usr/bin/env bash
# Long mutation-fuzzing runs of every reader of untrusted input (tests/it/fuzz.rs): the zip reader,
# the layer applier, OCI layouts and docker archives, each case run through the release binary
# with a 60 s limit and a 512 MB peak-RSS limit. The suite runs 40 fixed-seed cases per target;
# this runs FUZZ_CASES (default 2000) per target from FUZZ_SEED (default: now, printed so that a
# failure can be replayed). Failing inputs are kept under target/tmp/fuzz-failures/.
#
# Usage: scripts/fuzz.sh [FILTER]     e.g. scripts/fuzz.sh fuzz_layer_applier
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES=${FUZZ_CASES:-2000}
export FUZZ_SEED=${FUZZ_SEED:-$(date +%s)}
echo "fuzzing: FUZZ_CASES=$FUZZ_CASES FUZZ_SEED=$FUZZ_SEED" >&2
exec cargo test --release --test it "${1:-fuzz::}" -- --test-threads 2
