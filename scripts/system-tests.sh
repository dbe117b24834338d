#!/usr/bin/env bash
# Spate's system tests: the tests that run against real services this
# script starts on this machine (see scripts/services.sh), then stops.
#   scripts/system-tests.sh
# Today: cluster mode under a one-node Slurm cluster (`srun -n 3`). Needs
# root, to install and start Slurm.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --examples --bins
scripts/services.sh start slurm
trap 'scripts/services.sh stop slurm' EXIT
cargo test --test it -- --ignored --test-threads=1 slurm
