"""Provider metadata read by the ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from dlflow_airflow import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "dlflow-airflow",
        "name": "DLFlow",
        "description": "DLFlow's Spark + TensorFlow deep-learning pipeline "
        "(merge, encode, train, evaluate, predict) as Airflow operators built from YAML.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "DLFlow",
                "external-doc-url": "https://github.com/didi/dlflow",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "DLFlow",
                "python-modules": [
                    "dlflow_airflow.operators.spark",
                    "dlflow_airflow.runners.spark_connect",
                    "dlflow_airflow.runners.local",
                    "dlflow_airflow.runners.kubernetes",
                    "dlflow_airflow.runners.docker",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "DLFlow", "python-modules": ["dlflow_airflow.sensors.upstream"]}
        ],
        "triggers": [
            {"integration-name": "DLFlow", "python-modules": ["dlflow_airflow.triggers.upstream"]}
        ],
        "config": {
            "dlflow": {
                "description": "What pipeline YAML files may set (see docs/operations.md, "
                "'Who may write YAML').",
                "options": {
                    "allowed_spark_conf": {
                        "description": "Spark conf keys a pipeline's spark.conf may set although "
                        "they choose what runs on the Spark driver and executors (executables, "
                        "code and classpaths, JVM options, environment variables, images, "
                        "mounts, credentials). Comma-separated keys or globs "
                        "(spark.executorEnv.*); '*' allows every key. spark.python in YAML "
                        "needs spark.pyspark.python and spark.pyspark.driver.python. Checked "
                        "when a pipeline file is parsed; empty: none of them.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "spark.pyspark.python, spark.kubernetes.container.image",
                        "default": "",
                    }
                },
            }
        },
    }
