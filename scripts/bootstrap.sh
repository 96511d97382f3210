#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its test tools,
# pinned by constraints.txt. Re-runs are instant while nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  echo "Java 17 is required by Spark: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)." >&2
  exit 1
fi

# The UI test drives Debian's Chromium (headless) through its chromedriver;
# only the test command asks for it (--browser), the demo does not need it.
if [ "${1:-}" = --browser ] && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium and chromium-driver (for the browser test)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null
  else
    echo "note: chromium / chromium-driver missing; the browser test will fail" \
      "(as root: apt-get install chromium chromium-driver)." >&2
  fi
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi

stamp=.venv/.dlflow-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "Installing dlflow-airflow and its dependencies into .venv (first run: a few minutes)..."
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test,kubernetes,docker]'
echo "$want" > "$stamp"
