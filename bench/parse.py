"""DAG-file parse time for 1, 10 and 100 pipelines (goal: <= 10 ms per pipeline).

Each measurement runs in a fresh interpreter, as Airflow's dag-processor
parses each file in a fresh child: Airflow and dlflow_airflow are imported
first (the dag-processor has them loaded already), then the clock covers
executing ``dags/dlflow_pipelines.py`` over a folder of N pipeline YAMLs
(validation, graph, DAG and operators). The baseline is the same file over an
empty folder. The first pipeline of a file pays one-time imports (the Spark
provider, pydantic models); the goal is about each further pipeline: the
marginal cost ``(t(N) - t(1)) / (N - 1)``. It also reports whether
tensorflow / pyspark / pandas / numpy / pyarrow got imported (they must not be).

    .venv/bin/python bench/parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HEAVY = ("tensorflow", "keras", "pyspark", "pandas", "numpy", "pyarrow")
COUNTS = (1, 10, 100)

_PROBE = """
import importlib.util, json, sys, time
# preloaded, as in Airflow
import airflow.sdk, dlflow_airflow.pipeline.factory, dlflow_airflow.pipeline.loader  # noqa: E401
spec = importlib.util.spec_from_file_location("dlflow_pipelines", sys.argv[1])
module = importlib.util.module_from_spec(spec)
start = time.perf_counter()
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
dags = sum(type(v).__name__ == "DAG" for v in vars(module).values())
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"seconds": seconds, "dags": dags, "heavy": heavy}))
"""


def measure(folder: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(folder / "dlflow_pipelines.py"), json.dumps(HEAVY)],
            capture_output=True,
            text=True,
            check=True,
            env={"AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"},
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "heavy": sorted({m for r in runs for m in r["heavy"]})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per size (best)")
    args = parser.parse_args()
    from tests.dags.test_load_at_scale import write_pipelines

    with tempfile.TemporaryDirectory(prefix="dlflow-parse-bench-") as tmp:
        empty = Path(tmp) / "empty"
        write_pipelines(empty, 0)
        base = measure(empty, args.repeat)
        print(f"baseline (0 pipelines): {base['seconds'] * 1000:7.1f} ms")
        print(f"{'pipelines':>9} {'DAGs':>5} {'total ms':>9} {'marginal ms/pipeline':>21}")
        ok = True
        first = None
        for count in COUNTS:
            folder = Path(tmp) / f"n{count}"
            write_pipelines(folder, count)
            result = measure(folder, args.repeat)
            ms = (result["seconds"] - base["seconds"]) * 1000
            if first is None:
                first, marginal = ms, "(one-time imports)"
            else:
                per = (ms - first) / (count - 1)
                ok &= per <= 10
                marginal = f"{per:.2f} ({per / 10:.2f}x goal)"
            ok &= result["dags"] == count and not result["heavy"]
            print(f"{count:>9} {result['dags']:>5} {ms:>9.1f} {marginal:>21}")
            if result["heavy"]:
                print(f"  heavy modules imported: {', '.join(result['heavy'])}")
        print("goal <= 10 ms per pipeline, no heavy import:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
