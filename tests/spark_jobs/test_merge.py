from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import DEMO_TABLES
from spark_jobs import demo_data, merge
from spark_jobs.merge import ColumnConflictError, DuplicateKeyError, MergeError
from spark_jobs.paths import PartitionNotFoundError, PlaceholderError
from spark_jobs.read_errors import CorruptInputError

from .conftest import DATE, DEMO_ROWS, truncate_part_file

pytestmark = pytest.mark.spark

SEED_SCHEMA = "uid long, label int"


def options(*sources: tuple[str, str]) -> dict[str, Any]:
    return {
        "seed": {"path": "{workspace}/up/seed/dt={date}"},
        "sources": [{"name": name, "path": path} for name, path in sources],
    }


@pytest.fixture
def seeded(workspace: str, write_table: Any) -> str:
    write_table(f"{workspace}/up/seed/dt={DATE}", [(1, 0), (2, 1), (3, 0)], SEED_SCHEMA)
    return workspace


def test_demo_round_trip(pipeline: Any, spark: Any) -> None:
    result = pipeline.merge
    raw_uri = pipeline.job("encode").layout.raw("ctr", DATE)  # what encode reads
    assert result["output"] == raw_uri
    assert result["rows"] == DEMO_ROWS
    assert storage.is_complete(raw_uri)
    assert result["columns"] == [
        "uid",
        "label",
        "age",
        "income",
        "city",
        "device",
        "clicks_7d",
        "dwell_time",
        "channel",
    ]
    raw = spark.read.parquet(raw_uri)
    assert raw.count() == DEMO_ROWS == raw.select("uid").distinct().count()
    # ~5% of the seed is missing from each source: those rows are null there.
    no_profile = raw.where("device is null").count()
    no_behaviour = raw.where("clicks_7d is null").count()
    assert 0.02 * DEMO_ROWS < no_profile < 0.08 * DEMO_ROWS
    assert 0.02 * DEMO_ROWS < no_behaviour < 0.08 * DEMO_ROWS


def test_sources_join_on_their_keys(
    spark: Any, seeded: str, write_table: Any, make_job: Any
) -> None:
    write_table(f"{seeded}/up/a/dt={DATE}", [(1, 10.0), (3, 30.0), (9, 90.0)], "uid long, x double")
    write_table(f"{seeded}/up/b/dt=20260101", [(2, "b")], "uid long, y string")
    job = make_job(
        "merge",
        seeded,
        options=options(
            ("a", "{workspace}/up/a/dt={date}"), ("b", "{workspace}/up/b/dt={date_nodash}")
        ),
    )
    result = merge.run(spark, job)
    assert result["rows"] == 3 and result["columns"] == ["uid", "label", "x", "y"]
    rows = sorted(tuple(r) for r in spark.read.parquet(result["output"]).collect())
    assert rows == [(1, 0, 10.0, None), (2, 1, None, "b"), (3, 0, 30.0, None)]


def test_duplicate_keys_name_the_source_and_a_key(
    spark: Any, seeded: str, write_table: Any, make_job: Any
) -> None:
    write_table(f"{seeded}/up/a/dt={DATE}", [(1, 1.0), (2, 2.0), (2, 2.5)], "uid long, x double")
    job = make_job("merge", seeded, options=options(("clicks", "{workspace}/up/a/dt={date}")))
    with pytest.raises(DuplicateKeyError, match=r"source 'clicks' .*\{'uid': 2\} appears 2 times"):
        merge.run(spark, job)
    assert not storage.exists(job.layout.raw("ctr", DATE))


def test_missing_upstream_names_the_path(spark: Any, seeded: str, make_job: Any) -> None:
    job = make_job(
        "merge", seeded, options=options(("profile", "{workspace}/up/profile/dt={date}"))
    )
    expected = f"{seeded}/up/profile/dt={DATE}"
    with pytest.raises(PartitionNotFoundError, match=f"source 'profile'.*{expected}"):
        merge.run(spark, job)
    assert not storage.exists(job.layout.raw("ctr", DATE))


def test_truncated_upstream_file_names_the_source_partition_and_file(
    spark: Any, seeded: str, write_table: Any, make_job: Any
) -> None:
    uri = write_table(f"{seeded}/up/a/dt={DATE}", [(1, 10.0), (3, 30.0)], "uid long, x double")
    part = truncate_part_file(uri)
    job = make_job("merge", seeded, options=options(("profile", "{workspace}/up/a/dt={date}")))
    with pytest.raises(CorruptInputError) as caught:
        merge.run(spark, job)
    message = str(caught.value)
    assert message.startswith(f"merge input (source 'profile'): cannot read file file://{part} ")
    assert f"of partition {uri}: the file is not a Parquet file" in message
    assert "org.apache" not in message and "\n" not in message
    assert not storage.exists(job.layout.raw("ctr", DATE))


def test_upstream_without_success_marker_is_refused(spark: Any, seeded: str, make_job: Any) -> None:
    uri = f"{seeded}/up/half/dt={DATE}"
    spark.createDataFrame([(1, 1.0)], "uid long, x double").write.parquet(uri)
    filesystem, marker = storage.resolve(f"{uri}/_SUCCESS")
    filesystem.delete_file(marker)  # as if the upstream writer were still running
    job = make_job("merge", seeded, options=options(("half", "{workspace}/up/half/dt={date}")))
    with pytest.raises(PartitionNotFoundError, match=f"source 'half'.*{uri} is incomplete"):
        merge.run(spark, job)


def test_a_column_in_two_sources_names_both(
    spark: Any, seeded: str, write_table: Any, make_job: Any
) -> None:
    write_table(f"{seeded}/up/a/dt={DATE}", [(1, 1.0)], "uid long, age double")
    write_table(f"{seeded}/up/b/dt={DATE}", [(1, 2.0)], "uid long, AGE double")
    job = make_job(
        "merge",
        seeded,
        options=options(
            ("first", "{workspace}/up/a/dt={date}"), ("second", "{workspace}/up/b/dt={date}")
        ),
    )
    with pytest.raises(ColumnConflictError, match="'AGE' appears in both source 'first'.*'second'"):
        merge.run(spark, job)


def test_seed_needs_keys_and_labels(spark: Any, workspace: str, write_table: Any, make_job: Any):
    write_table(f"{workspace}/up/seed/dt={DATE}", [(1, 0)], "uid long, clicked int")
    with pytest.raises(
        MergeError, match=r"the seed .* no primary key / label column\(s\) \['label'\]"
    ):
        merge.run(spark, make_job("merge", workspace, options=options()))


def test_bad_options_are_named(spark: Any, seeded: str, make_job: Any) -> None:
    with pytest.raises(PlaceholderError, match=r"\{ds\}"):
        merge.run(spark, make_job("merge", seeded, options=options(("a", "{workspace}/a/{ds}"))))
    # The options model refuses the rest when the job document is parsed, before any Spark work.
    bad = options()
    bad["sources"] = [{"name": "a", "path": "/x", "joinKeys": ["uid"]}]
    with pytest.raises(ValidationError, match=r"sources\.0\.joinKeys\s+Extra inputs"):
        make_job("merge", seeded, options=bad)
    with pytest.raises(ValidationError, match=r"seed\s+Field required"):
        make_job("merge", seeded, options={"sources": []})
    with pytest.raises(ValidationError, match="exactly one of 'path' or 'sql'"):
        make_job("merge", seeded, options={"seed": {"path": "/a", "sql": "/b.sql"}})


def test_a_source_named_like_another_input_is_refused(
    spark: Any, seeded: str, make_job: Any
) -> None:
    job = make_job("merge", seeded, options=options(("seed", "/a"), ("b", "/b")))
    with pytest.raises(MergeError, match=r"sources\[0\]: the name 'seed' is already used"):
        merge.run(spark, job)


def test_demo_merge_options_match_the_demo_tables() -> None:
    names = [s["name"] for s in demo_data.merge_options()["sources"]]
    assert names == list(DEMO_TABLES[1:])


def test_key_types_must_match(spark: Any, seeded: str, write_table: Any, make_job: Any) -> None:
    write_table(f"{seeded}/up/a/dt={DATE}", [("1", 1.0)], "uid string, x double")
    job = make_job("merge", seeded, options=options(("a", "{workspace}/up/a/dt={date}")))
    with pytest.raises(
        MergeError, match="source 'a' .*key 'uid' is string but the seed's is bigint"
    ):
        merge.run(spark, job)
    write_table(f"{seeded}/up/a/dt={DATE}", [(1, 1.0)], "uid int, x double")
    assert merge.run(spark, job)["rows"] == 3
