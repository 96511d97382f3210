"""Spark Connect mode's contract: which settings a session may set, and the session document."""

from __future__ import annotations

import uuid

import pytest

from dlflow_airflow.contract.spark_connect import (
    REMOTE_ENV,
    SESSION_ENV,
    STATIC_SQL_CONF,
    ConnectSession,
    connect_conf_error,
    connect_conf_refusal,
    shared_session_id,
)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("spark.sql.shuffle.partitions", None),
        ("spark.sql.session.timeZone", None),
        ("spark.sql.catalog.lake", None),  # catalogs are looked up at run time
        ("spark.executor.memory", "a launch setting"),
        ("spark.driver.memory", "a launch setting"),
        ("spark.ui.enabled", "a launch setting"),
        ("spark.jars.packages", "a launch setting"),
        ("fs.s3a.endpoint", "a launch setting"),
        ("spark.sql.warehouse.dir", "a static SQL setting"),
        ("spark.sql.extensions", "a static SQL setting"),
        ("spark.sql.hive.metastore.version", "a static SQL setting"),
        ("spark.sql.streaming.ui.enabled", "a static SQL setting"),
    ],
)
def test_a_session_sets_only_runtime_sql_settings(key, why):
    assert connect_conf_refusal(key) == why


def test_the_error_names_every_refused_key_and_where_it_belongs():
    error = connect_conf_error(
        ["spark.sql.shuffle.partitions", "spark.executor.memory", "spark.sql.warehouse.dir"]
    )
    assert error is not None
    assert "spark.executor.memory (a launch setting)" in error
    assert "spark.sql.warehouse.dir (a static SQL setting)" in error
    assert "spark.sql.shuffle.partitions" not in error
    assert "where the Connect server starts" in error
    assert connect_conf_error(["spark.sql.shuffle.partitions"]) is None


def test_the_session_document_round_trips_through_the_environment():
    session = ConnectSession(
        url="sc://spark.example:15002/;token=s3cret",
        session_id=str(uuid.uuid4()),
        tag="dlflow-d-t-run-1",
        shared=True,
        artifacts=("/tmp/code.zip",),
        conf={"spark.sql.shuffle.partitions": "4"},
    )
    env = session.environ()
    # The URL (and its token) only in its own variable, never in the JSON document.
    assert env[REMOTE_ENV] == session.url
    assert "s3cret" not in env[SESSION_ENV]
    assert ConnectSession.from_environ(env) == session
    assert ConnectSession.from_environ({}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sc://h:15002/", "sc://h:15002/;session_id=S"),
        ("sc://h:15002", "sc://h:15002/;session_id=S"),
        ("sc://h:15002/;user_id=u;token=t", "sc://h:15002/;user_id=u;token=t;session_id=S"),
    ],
)
def test_the_session_url_names_the_session(url, expected):
    session = ConnectSession(url=url, session_id="S", tag="t")
    assert session.session_url() == expected
    assert session.session_url("X") == expected.replace("=S", "=X")


def test_a_shared_session_id_is_a_stable_uuid():
    first = shared_session_id("dag", "sc://h:1/", "code.zip", "{}", "2026-01-01T10")
    assert first == shared_session_id("dag", "sc://h:1/", "code.zip", "{}", "2026-01-01T10")
    assert uuid.UUID(first).version == 4
    assert first != shared_session_id("dag", "sc://h:1/", "code.zip", "{}", "2026-01-01T11")


@pytest.mark.spark
def test_the_static_settings_are_sparks():
    """Every static SQL setting of this Spark is refused; every listed key is static."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[1]").getOrCreate()
    jvm = spark._jvm
    for holder in ("StaticSQLConf$", "SQLConf$"):
        jvm.java.lang.Class.forName(f"org.apache.spark.sql.internal.{holder}")
    sqlconf = jvm.java.lang.Class.forName("org.apache.spark.sql.internal.SQLConf$")
    field = sqlconf.getDeclaredField("staticConfKeys")
    field.setAccessible(True)
    static = {str(k) for k in field.get(sqlconf.getField("MODULE$").get(None))}
    static_sql = {k for k in static if k.startswith("spark.sql.")}
    assert static_sql, "no static SQL settings found"
    assert {k for k in static_sql if connect_conf_refusal(k) is None} == set()
    for key in (k for k in STATIC_SQL_CONF if "*" not in k):
        assert not spark.conf.isModifiable(key), key
    assert spark.conf.isModifiable("spark.sql.shuffle.partitions")
