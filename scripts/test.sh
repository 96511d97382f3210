#!/usr/bin/env bash
# Quick start, command 2: install, lint, then run the whole test suite
# (unit, Spark, TensorFlow and the end-to-end Airflow run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --browser --postgres
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
