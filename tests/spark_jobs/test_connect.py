"""A job's session in connect mode, against a real local Spark Connect server."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlflow_airflow.contract.spark_connect import ConnectSession
from spark_jobs import connect, session


@pytest.fixture(autouse=True)
def classic_afterwards() -> Iterator[None]:
    """A Connect session marks its process a Connect client for good (a job's process ends
    with its job); the other Spark tests of this pytest process need it classic again."""
    yield
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def test_sigterm_interrupts_first_then_unwinds():
    before = signal.getsignal(signal.SIGTERM)  # another test of the process may have set one
    called: list[str] = []
    with pytest.raises(connect.Terminated) as info:  # noqa: SIM117 - the handler is the subject
        with connect.stopping_on_sigterm(lambda: called.append("interrupt")):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert info.value.code == 128 + signal.SIGTERM
    assert called == ["interrupt"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_connect_session_in_the_environment_makes_the_job_a_client(monkeypatch):
    settings = ConnectSession(url="sc://h:1", session_id=str(uuid.uuid4()), tag="t")
    monkeypatch.setattr(os, "environ", {**os.environ, **settings.environ()})
    seen = {}
    monkeypatch.setattr(session, "remote_session", lambda s, d: seen.update(s=s, d=d) or "spark")
    assert session.build_session("dlflow-x") == "spark"
    assert seen["s"] == settings and seen["d"] is session.DEFAULT_CONF


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dlflow_airflow.devtools.connect_server import LocalConnectServer

    folder = tmp_path_factory.mktemp("connect-server")
    with LocalConnectServer(log_file=folder / "server.log") as started:
        yield started


def _settings(server, tmp_path: Path, **kwargs) -> ConnectSession:
    # A module no Python of this machine can import unless the session ships it.
    name = f"dlflow_probe_{uuid.uuid4().hex[:8]}"
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr(f"{name}.py", "ANSWER = 42\n")
    defaults = {"session_id": str(uuid.uuid4()), "tag": "dlflow-test-t-1", "shared": True}
    return ConnectSession(url=server.url, artifacts=(str(code),), **{**defaults, **kwargs})


def _probe(spark, module: str) -> int:
    from pyspark.sql import functions as F

    def answer(batches):
        import importlib

        import pyarrow as pa

        value = importlib.import_module(module).ANSWER
        for batch in batches:
            yield pa.RecordBatch.from_pydict({"a": [value] * batch.num_rows})

    return spark.range(1).select(F.lit(0).alias("a")).mapInArrow(answer, "a long").first()["a"]


@pytest.mark.spark
def test_the_session_has_the_code_settings_and_tag(server, tmp_path):
    settings = _settings(server, tmp_path, conf={"spark.sql.shuffle.partitions": "3"})
    spark = connect.remote_session(settings, {"spark.sql.session.timeZone": "UTC"})
    try:
        module = Path(settings.artifacts[0])
        with zipfile.ZipFile(module) as zf:
            name = zf.namelist()[0].removesuffix(".py")
        assert _probe(spark, name) == 42  # the server's Python workers import shipped code
        assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
        assert spark.getTags() == {settings.tag}
    finally:
        spark.stop()


@pytest.mark.spark
def test_a_shared_session_outlives_its_job_a_private_one_does_not(server, tmp_path):
    shared = _settings(server, tmp_path, conf={"spark.sql.shuffle.partitions": "5"})
    connect.remote_session(shared).stop()
    again = connect.remote_session(shared)  # the next task joins it, settings and all
    try:
        assert again.client._session_id == shared.session_id
        assert again.conf.get("spark.sql.shuffle.partitions") == "5"
    finally:
        again.stop()

    private = _settings(server, tmp_path, shared=False)
    connect.remote_session(private).stop()  # released: the server closes it
    # A shared id the server has closed (idle too long) gives a session of its own.
    closed = ConnectSession(**{**private.__dict__, "shared": True})
    spark = connect.remote_session(closed)
    try:
        assert spark.client._session_id != closed.session_id
        assert spark.range(3).count() == 3
    finally:
        spark.stop()


@pytest.mark.spark
def test_another_client_interrupts_the_tagged_operations(server, tmp_path):
    from pyspark.sql import functions as F

    settings = _settings(server, tmp_path)
    spark = connect.remote_session(settings)
    stopped: list[str] = []

    def slow(batches):
        import time

        for batch in batches:
            time.sleep(120)
            yield batch

    def interrupt():  # the operator's side: another process, another client
        deadline = time.monotonic() + 60
        while not stopped and time.monotonic() < deadline:  # once the query has started
            time.sleep(1)
            stopped.extend(connect.interrupt_session(settings))

    thread = threading.Thread(target=interrupt)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(Exception, match="OPERATION_CANCELED"):
            # The job's own thread: the tag applies to the operations of the thread that added it.
            spark.range(2).select(F.col("id")).mapInArrow(slow, "id long").collect()
        assert time.monotonic() - started < 100
        assert stopped
    finally:
        thread.join(timeout=60)
        spark.stop()


@pytest.mark.spark
def test_a_corrupt_file_is_named_by_partition_in_connect_mode_too(server, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spark_jobs.read_errors import CorruptInputError, naming_bad_files

    partition = tmp_path / "raw" / "dt=2026-01-01"
    partition.mkdir(parents=True)
    pq.write_table(pa.table({"a": list(range(100))}), partition / "part-0.parquet")
    whole = (partition / "part-0.parquet").read_bytes()
    (partition / "part-1.parquet").write_bytes(whole[: len(whole) // 2])
    spark = connect.remote_session(_settings(server, tmp_path))
    try:
        with pytest.raises(CorruptInputError) as info:  # noqa: SIM117
            with naming_bad_files({str(partition): "encode input (raw features)"}):
                spark.read.parquet(str(partition)).count()
    finally:
        spark.stop()
    message = str(info.value)
    assert message.startswith("encode input (raw features): cannot read file ")
    assert f"part-1.parquet of partition {partition}: " in message


@pytest.mark.spark
def test_a_later_job_of_the_shared_session_reads_a_rewritten_partition_afresh(
    server, tmp_path, monkeypatch
):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.connect.plan import LogicalPlan

    settings = _settings(server, tmp_path)
    partition = tmp_path / "encoded" / "dt=2026-01-01"
    counts = []
    for rows in (10, 20):  # a rerun commits the partition anew, under new file names
        shutil.rmtree(partition, ignore_errors=True)
        partition.mkdir(parents=True)
        pq.write_table(pa.table({"a": list(range(rows))}), partition / f"{uuid.uuid4()}.parquet")
        monkeypatch.setattr(LogicalPlan, "_nextPlanId", 0)  # a job's process numbers from 0
        spark = connect.remote_session(settings)
        try:
            counts.append(spark.read.parquet(str(partition)).count())
        finally:
            spark.stop()
    assert counts == [10, 20]


@pytest.mark.spark
def test_a_task_error_reaches_the_client_with_its_message(server, tmp_path):
    """Predict tells a task's file-read failure from its other errors by a marker in the
    message (then reads through Spark): the marker must survive the trip to the client."""
    from spark_jobs.parquet_units import UNIT_READ_MARKER

    message = f"{UNIT_READ_MARKER} row group 0 of file:///nowhere/part-0.parquet: gone"

    def failing(batches):
        for _ in batches:
            raise RuntimeError(message)
        yield from ()

    spark = connect.remote_session(_settings(server, tmp_path))
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - whatever Connect raises
            spark.range(1, numPartitions=1).mapInArrow(failing, "id long").collect()
    finally:
        spark.stop()
    assert message in str(info.value)
