"""A tiny job program for runner tests: prints, reports a result, fails or sleeps on demand."""

from __future__ import annotations

import sys
import time

from dlflow_airflow.jobconf import emit_result

if __name__ == "__main__":
    mode = sys.argv[1]
    print("step 1 of 2")
    if mode == "fail":
        print("something went wrong: column 'x' missing", file=sys.stderr)
        raise SystemExit(3)
    if mode == "sleep":
        print("sleeping", flush=True)
        time.sleep(120)
    emit_result({"auc": 0.8, "mode": mode})
