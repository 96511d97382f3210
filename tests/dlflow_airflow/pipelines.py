"""Pipeline documents for tests: a valid base to mutate."""

from __future__ import annotations

import copy
from typing import Any


def base_pipeline() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "dag_id": "t_pipeline",
            "start_date": "2026-01-01",
            "workspace": "/tmp/dlflow-test-ws",
            "feature": {"tag": "f1", "primary_keys": ["uid"], "labels": ["label"]},
            "model": {"tag": "m1", "name": "dnn_binary_classifier"},
            "buckets": {"user": {"features": ["age", "city"]}},
            "stages": {
                "merge": {"seed": {"path": "{workspace}/seed/dt={date}"}},
                "encode": {},
                "train": {},
                "evaluate": {},
                "predict": {},
            },
        }
    )
