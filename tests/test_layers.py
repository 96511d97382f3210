"""The package layout holds: who may import whom, no cycles, light parse-time imports.

- ``lint-imports`` checks the contracts in pyproject.toml (``[tool.importlinter]``).
- grimp proves there is no import cycle at all, package ``__init__`` modules included
  (import-linter's ``acyclic_siblings`` only compares siblings, so a cycle through a
  package's own ``__init__`` would slip past it).
- That parse time loads no heavy library is ``tests/dags/test_parse_time.py``'s job
  (it imports the DAG file and every module of the provider in one fresh
  interpreter): import-linter also sees imports inside functions, and
  ``contract.storage`` rightly imports pyarrow there.
"""

from __future__ import annotations

import graphlib
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import REPO

ROOT_PACKAGES = ("dlflow_airflow", "spark_jobs", "tf_jobs")


def test_import_contracts_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"lint-imports failed:\n{out.stdout}\n{out.stderr}"


def test_no_import_cycles():
    graph = grimp.build_graph(*ROOT_PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    # Imports inside functions count too: a cycle hidden in a function is still a cycle.
    # A module importing itself by name (``spark_jobs.predict`` under ``__main__``) is not.
    sorter = graphlib.TopologicalSorter(
        {m: graph.find_modules_directly_imported_by(m) - {m} for m in graph.modules}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = error.args[1]  # [a, b, ..., a]: each module imports the one before it
        lines = []
        for imported, importer in zip(cycle, cycle[1:], strict=False):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"{importer}:{detail['line_number']}: {detail['line_contents']}")
        pytest.fail("import cycle:\n" + "\n".join(lines))
