#!/usr/bin/env bash
# Create .venv and install the project with its test tools, pinned by the
# constraints file of its Python (constraints/constraints-3.X.txt; 3.11's is
# constraints.txt). Any supported Python will do; the machine's python3 first.
# Re-runs are instant while nothing changed.
#   --browser   also install Debian's chromium + chromedriver (the UI test)
#   --postgres  also install Debian's PostgreSQL server (the e2e tests' metadata DB)
set -euo pipefail
cd "$(dirname "$0")/.."

browser=false postgres=false
for arg in "$@"; do
  case $arg in
    --browser) browser=true ;;
    --postgres) postgres=true ;;
    *) echo "usage: $0 [--browser] [--postgres]" >&2; exit 2 ;;
  esac
done

if ! command -v java >/dev/null 2>&1; then
  echo "Java 17 is required by Spark: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)." >&2
  exit 1
fi

# The UI test drives Debian's Chromium (headless) through its chromedriver;
# only the test command asks for it (--browser), the demo does not need it.
if $browser && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
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

# The end-to-end tests keep Airflow's metadata in a PostgreSQL server of their own
# (dlflow_airflow/devtools/postgres.py): they need initdb and pg_ctl.
if $postgres && ! command -v initdb >/dev/null 2>&1 &&
   ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing postgresql (for the end-to-end tests)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql >/dev/null
  else
    echo "note: PostgreSQL's server programs are missing; the end-to-end tests will fail" \
      "(as root: apt-get install postgresql)." >&2
  fi
fi

# The Python versions with a constraints file are the supported ones.
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
supported=$(ls constraints/ | sed -n 's/^constraints-\(3\.[0-9]*\)\.txt$/\1/p' | tr '\n' ' ')
if [ -x .venv/bin/python ]; then
  PYTHON=.venv/bin/python  # an existing .venv keeps its Python
else
  PYTHON=${PYTHON:-}
  if [ -z "$PYTHON" ]; then
    for candidate in python3 python3.13 python3.12 python3.11; do
      if command -v "$candidate" >/dev/null 2>&1 &&
         [ -f "constraints/constraints-$(version_of "$candidate").txt" ]; then
        PYTHON=$candidate; break
      fi
    done
  fi
fi
version=$( [ -n "$PYTHON" ] && version_of "$PYTHON" || true)
constraints=constraints/constraints-$version.txt
if [ -z "$version" ] || [ ! -f "$constraints" ]; then
  echo "A supported Python (${supported% }) is required; found ${PYTHON:-none} ${version:-}" \
    "(set PYTHON=/path/to/python3.X, or remove a .venv made with another Python)." >&2
  exit 1
fi

extras='.[test,kubernetes,docker,postgres]'
stamp=.venv/.dlflow-installed
want=$( { echo "$extras $constraints"; cat pyproject.toml "$constraints"; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "Installing dlflow-airflow and its dependencies into .venv with Python $version," \
  "pinned by $constraints (first run: a few minutes)..."
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c "$constraints" -e "$extras"
echo "$want" > "$stamp"
