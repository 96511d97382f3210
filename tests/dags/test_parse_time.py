"""Parse time is sacred: the DAG file and the provider's plugin must not pull in heavy libraries."""

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


_PLUGINS_PROBE = """
import json, sys
SECURITY = "airflow.api_fastapi.core_api.security"
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()  # what every Airflow component does
names = [p["name"] for p in plugins_manager.get_plugin_info(["name"])]
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
app = sorted(m for m in ("dlflow_airflow.ui.app", SECURITY) if m in sys.modules)
print(json.dumps({"plugins": names, "heavy": heavy, "app": app}))
"""


def test_loading_the_run_report_plugin_imports_no_heavy_library_nor_its_app():
    """The plugin loads in the scheduler, the dag-processor and every worker: its app
    (FastAPI, Airflow's security module) waits for the api-server's first request."""
    out = subprocess.run(
        [sys.executable, "-c", _PLUGINS_PROBE, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "dlflow_run_report" in result["plugins"]
    assert result["heavy"] == []
    assert result["app"] == []
