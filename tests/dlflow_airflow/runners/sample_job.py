"""A tiny job program for runner tests: prints, reports a result, fails or sleeps on demand."""

from __future__ import annotations

import json
import os
import sys
import time

from dlflow_airflow.contract.jobconf import emit_result

if __name__ == "__main__":
    mode = sys.argv[1]
    print("step 1 of 2")
    if mode == "fail":
        print("something went wrong: column 'x' missing", file=sys.stderr)
        raise SystemExit(3)
    if mode == "sleep":
        print("sleeping", flush=True)
        time.sleep(120)
    if mode == "cluster":
        config = json.loads(os.environ["TF_CONFIG"])
        index = config["task"]["index"]
        if index == 1 and len(sys.argv) > 2 and sys.argv[2] == "fail_worker_1":
            print("worker 1 cannot reach the chief", file=sys.stderr)
            raise SystemExit(4)
        if index == 0 and len(sys.argv) > 2:
            time.sleep(120)  # a chief that would wait forever for its peer
        emit_result({"index": index, "cluster": config["cluster"]["worker"]})
        raise SystemExit(0)
    emit_result({"auc": 0.8, "mode": mode})
