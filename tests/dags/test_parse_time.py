"""Parse time is sacred: the DAG file must not pull in the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import DAGS_FOLDER

HEAVY = ("tensorflow", "keras", "pyspark", "pandas", "numpy", "pyarrow")

_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("dlflow_pipelines", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import importlib, pkgutil, dlflow_airflow  # noqa: E401
# Every module of the provider (contract, pipeline, stages, operators, runners...).
for info in pkgutil.walk_packages(dlflow_airflow.__path__, "dlflow_airflow."):
    importlib.import_module(info.name)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
dags = sorted(k for k, v in vars(module).items() if type(v).__name__ == "DAG")
print(json.dumps({"heavy": heavy, "dags": dags}))
"""


def test_dag_file_imports_no_heavy_library():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS_FOLDER / "dlflow_pipelines.py"), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "dlflow_demo_ctr" in result["dags"]
    assert result["heavy"] == []
