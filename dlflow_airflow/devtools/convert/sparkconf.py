"""DLFlow's ``SPARK { ... }`` block (spark-submit flags and native conf) as ``spark.conf``."""

from __future__ import annotations

from typing import Any

from dlflow_airflow.devtools.convert.context import Json, Key, Source
from dlflow_airflow.devtools.convert.hocon import flatten

SUBMIT_FLAGS = {
    "driver-memory": "spark.driver.memory",
    "driver-cores": "spark.driver.cores",
    "executor-memory": "spark.executor.memory",
    "executor-cores": "spark.executor.cores",
    "num-executors": "spark.executor.instances",
    "queue": "spark.yarn.queue",
}
"""spark-submit flags DLFlow passes as ``--flag value`` -> the Spark conf they stand for."""
CONNECTION_KEYS = ("master", "deploy-mode", "spark.master", "spark.submit.deployMode")


def convert_spark(src: Source, raw: Json, extra: Json) -> Json:
    """The conf of ``raw`` (nested HOCON keys joined again), then ``extra`` where unset."""
    conf: Json = {}
    for path, value in flatten(raw).items():
        spark_entry(src, ".".join(path), value, conf, ("SPARK", *path))
    for name, value in extra.items():
        conf.setdefault(name, value)
    return conf


def spark_entry(src: Source, name: str, value: Any, conf: Json, key: Key) -> None:
    if name in CONNECTION_KEYS:
        src.unmapped(
            key,
            f"{name} {value!r}: the Airflow Spark connection (spark.conn_id, default "
            "spark_default) chooses the master and deploy mode; set it there",
        )
    elif name in SUBMIT_FLAGS:
        conf[SUBMIT_FLAGS[name]] = value
        src.note(key, f"--{name} -> spark.conf {SUBMIT_FLAGS[name]}")
    elif name == "spark.jars" and "spark-tensorflow-connector" in str(value):
        src.unmapped(
            key,
            "the spark-tensorflow-connector jar is not needed: TFRecords are written "
            "without a JVM jar here",
        )
    elif not name.startswith("spark."):
        src.unmapped(key, f"spark-submit flag --{name}: no equivalent in spark.conf")
    elif isinstance(value, str | int | float | bool):
        conf[name] = value
    else:
        src.unmapped(key, f"{value!r} is not a single value")
