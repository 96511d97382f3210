#!/usr/bin/env bash
# Quick start, command 1: install, then run the demo pipeline end to end
# through Airflow (SQLite, Spark local mode) for one date.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dlflow-airflow demo "$@"
