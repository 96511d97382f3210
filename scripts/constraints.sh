#!/usr/bin/env bash
# Regenerate the pinned constraints, one file per supported Python as Airflow
# publishes its own: constraints/constraints-3.X.txt (3.11's is constraints.txt,
# which constraints/constraints-3.11.txt links to). Each is resolved by uv for
# that Python version and Linux x86_64, with every extra, without needing that
# interpreter; like pip freeze, they leave setuptools and wheel to the venv.
# Pins already in a file are kept wherever they still resolve;
# --upgrade takes the newest versions pyproject.toml allows instead. A new
# Python version: copy the newest file to constraints/constraints-3.Y.txt (its
# pins are the starting point), add 3.Y to requires-python, then run this.
#   bash scripts/constraints.sh [--upgrade] [3.X ...]   (default: every file)
# Then run bash scripts/test.sh (bootstrap reinstalls: the stamp holds the file).
set -euo pipefail
cd "$(dirname "$0")/.."

upgrade=() files=()
for arg in "$@"; do
  case $arg in
    --upgrade) upgrade=(--upgrade) ;;
    3.*) files+=("constraints/constraints-$arg.txt") ;;
    *) echo "usage: $0 [--upgrade] [3.X ...]" >&2; exit 2 ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=(constraints/constraints-3.*.txt)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
UV=${UV:-$(command -v uv || true)}
if [ -z "$UV" ]; then  # a throwaway uv, never in the project's .venv
  python3 -m venv "$work/uv"
  "$work/uv/bin/pip" install --quiet uv
  UV=$work/uv/bin/uv
fi

for file in "${files[@]}"; do
  version=${file#constraints/constraints-}
  version=${version%.txt}
  target=$(readlink -f "$file")
  # uv keeps the pins of its output file where they still resolve.
  grep -v '^#' "$target" > "$work/pins.txt" || true
  "$UV" pip compile --quiet pyproject.toml --all-extras \
    --python-version "$version" --python-platform x86_64-manylinux_2_28 \
    --no-emit-package setuptools --no-emit-package wheel \
    --no-header --no-annotate "${upgrade[@]}" --output-file "$work/pins.txt"
  {
    echo "# Pinned versions for Python $version, Airflow's way (one file per Python version):"
    echo "#   pip install -c $file -e '.[test,kubernetes,docker,postgres]'"
    echo "# Regenerate: bash scripts/constraints.sh (uv pip compile for each supported Python)."
    cat "$work/pins.txt"
  } > "$target"
  echo "wrote $file ($(grep -vc '^#' "$target") pins)"
done
