#!/usr/bin/env bash
# Spate's system tests: the tests that run against real services this
# script starts on this machine (see scripts/services.sh), then stops.
#   scripts/system-tests.sh
# Today: cluster mode under a one-node Slurm cluster (`srun -n 3`), and
# across simulated hosts (network namespaces and a veth pair, a link cut
# mid-job); the web UI in headless Chromium (screenshots of its pages in
# target/tmp/ui-screenshots/); Parquet files exchanged with pyarrow,
# pandas, DuckDB and Polars (installed from PyPI into
# ~/.cache/spate-test/pyenv, or SPATE_TEST_PYTHON) and with Spark (PySpark
# from PyPI in ~/.cache/spate-test/spark, or SPATE_TEST_SPARK_PYTHON; the
# machine's Java 17); every format read from
# and written to an S3-compatible server (moto, from PyPI), with the
# `object-store` feature, which these tests are built with. Needs root, to
# install and start Slurm and Chromium and to make namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
features=(--features object-store)
cargo build "${features[@]}" --examples --bins
py=${SPATE_TEST_PYTHON:-$HOME/.cache/spate-test/pyenv/bin/python}
if ! "$py" -c 'import pyarrow, pandas, duckdb, polars' 2>/dev/null; then
    echo "system-tests: installing pyarrow, pandas, duckdb and polars into $(dirname "$(dirname "$py")")" >&2
    python3 -m venv "$(dirname "$(dirname "$py")")"
    "$py" -m pip install -q pyarrow pandas duckdb polars
fi
export SPATE_TEST_PYTHON=$py
# PySpark (with the machine's Java 17), to exchange Parquet with Spark.
spark_py=${SPATE_TEST_SPARK_PYTHON:-$HOME/.cache/spate-test/spark/bin/python}
if ! "$spark_py" -c 'import pyspark' 2>/dev/null; then
    echo "system-tests: installing pyspark into $(dirname "$(dirname "$spark_py")")" >&2
    python3 -m venv "$(dirname "$(dirname "$spark_py")")"
    "$spark_py" -m pip install -q pyspark==4.3.0
fi
export SPATE_TEST_SPARK_PYTHON=$spark_py
trap 'scripts/services.sh stop slurm; scripts/services.sh stop chromium; scripts/services.sh stop s3' EXIT
scripts/services.sh start slurm
scripts/services.sh start chromium
scripts/services.sh start s3
eval "$(scripts/services.sh env s3)"
# The ignored tests that need these services, and with the feature on,
# the object store tests that need none (file URLs).
cargo test "${features[@]}" --test it -- --ignored --test-threads=1 \
    slurm netns chromium pyarrow pyspark object_store
cargo test "${features[@]}" --test it -- formats::file_urls
