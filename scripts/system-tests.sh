#!/usr/bin/env bash
# Spate's system tests: the tests that run against real services this
# script starts on this machine (see scripts/services.sh), then stops.
#   scripts/system-tests.sh
# Today: cluster mode under a one-node Slurm cluster (`srun -n 3`), and
# across simulated hosts (network namespaces and a veth pair, a link cut
# mid-job); the web UI in headless Chromium (screenshots of its pages in
# target/tmp/ui-screenshots/). Needs root, to install and start Slurm and
# Chromium and to make namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --examples --bins
trap 'scripts/services.sh stop slurm; scripts/services.sh stop chromium' EXIT
scripts/services.sh start slurm
scripts/services.sh start chromium
cargo test --test it -- --ignored --test-threads=1 slurm netns chromium
