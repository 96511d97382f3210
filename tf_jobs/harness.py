"""What every TensorFlow job shares: how it is run, configured and commits its output.

The TF counterpart of :mod:`spark_jobs.session`. Every job module ends with::

    def main(argv=None):
        run_job("train", run, argv)

so argument parsing, logging, the result line (and result file) and the
one-line report of a config or data error work the same in train and
evaluate. :func:`configure_tensorflow` is the one place TensorFlow's threads
and seeds are set, and :func:`committing` the one way a job commits a partition.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import ContractError
from dlflow_airflow.contract.fmap import FmapError
from dlflow_airflow.contract.jobconf import RESULT_FILE_ENV, JobConfig, emit_result
from dlflow_airflow.contract.layout import PartitionDateError
from dlflow_airflow.contract.model_resolution import ModelNotFoundError
from tf_jobs.gate import GateMissedError
from tf_jobs.inputs import EncodedDataError
from tf_jobs.models import ModelConfigError

# Errors caused by the job's config or data: reported as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ContractError,
    EncodedDataError,
    FmapError,
    GateMissedError,
    ModelConfigError,
    ModelNotFoundError,
    PartitionDateError,
    ValidationError,
)

JobRun = Callable[[JobConfig], dict[str, Any]]


def run_job(job_name: str, run: JobRun, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the job arguments, run ``run`` and print its result line.

    A user error (:data:`USER_ERRORS`, including an invalid job document)
    prints ``ERROR <type>: <message>`` on stderr and exits 1 without a traceback.

    :param job_name: the built-in job (``train``, ``evaluate``): names its options model.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        job = JobConfig.from_argv(argv, job=job_name)
        result = run(job)
    except USER_ERRORS as exc:
        print(f"ERROR {type(exc).__name__}: {one_line(exc)}", file=sys.stderr, flush=True)
        sys.exit(1)
    emit_result(result)
    write_result_file(result)
    return result


def one_line(exc: BaseException) -> str:
    """The error's message on one line (pydantic lists its errors over several)."""
    if isinstance(exc, ValidationError):
        details = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<document>'}: {error['msg']}"
            for error in exc.errors()
        )
        return f"{exc.title}: {details}"
    return " ".join(str(exc).splitlines())


def write_result_file(result: dict[str, Any]) -> None:
    """Write the result where a container runner reads it, when it asks (``RESULT_FILE_ENV``)."""
    result_file = os.environ.get(RESULT_FILE_ENV)
    if not result_file:
        return
    os.makedirs(os.path.dirname(result_file) or ".", exist_ok=True)
    with open(result_file, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def configure_tensorflow(threads: int | None, seed: int) -> Any:
    """Import TensorFlow with quiet logs, bounded threads and fixed seeds; returns ``tf``.

    :param threads: intra-op threads; None uses the CPUs this process may run on.
    """
    # Hides TF's C++ info and warning lines (errors stay) that would flood the
    # task log; TF 2.21 still prints a few lines at import whatever the level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    count = threads or available_cpus()
    try:
        # Without a cap TF sizes its pools by the host's cores, not the
        # container's share, and oversubscribes a 2-core worker.
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(min(count, 2))
    except RuntimeError:
        # TF already started in this interpreter (a second job in one test
        # process); its pools cannot be resized, the first setting stays.
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return tf


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def committing(final: str) -> Iterator[str]:
    """Yield a staging folder for ``final``; commit it on success, discard it on failure."""
    staging = storage.staging_uri(final)
    try:
        yield staging
        storage.commit(staging, final)
    except BaseException:
        discard(staging)
        raise


def discard(uri: str) -> None:
    """Remove a folder (staging, checkpoints); a leftover is harmless, so errors are ignored."""
    with contextlib.suppress(OSError):
        storage.discard(uri)
