"""The fit's profile and the drift of every encode with a reused fmap, against numpy.

The fit day has ``x ~ N(0, 1)``, five categories in ``s``, a map with two keys
and an array of two numbers. The next day shifts ``x`` to ``N(0.5, 1)`` with
20% nulls, gives 30% of the non-null ``s`` values a category never seen, and
adds a key to the map. Every figure is recomputed here with numpy from the
raw rows and the profile's stored bin edges.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import DRIFT_FILE
from dlflow_airflow.contract.drift import PROFILE_FILE, PSI_FLOOR, DriftBreachError, Profile
from dlflow_airflow.contract.jobconf import NO_RETRY_EXIT_CODE
from dlflow_airflow.contract.layout import local_path
from spark_jobs import drift as drift_module
from spark_jobs import encode, session
from spark_jobs import fit_profile as profile_module

from .conftest import DATE, NEXT_DATE, job_body, parse_job

pytestmark = pytest.mark.spark

ROWS = 4000
SCHEMA = "uid long, label int, x double, s string, m map<string,double>, v array<double>, n int"
CATEGORIES = ["a", "b", "c", "d", "e"]
WEIGHTS = [0.4, 0.25, 0.15, 0.12, 0.08]


def _fit_day(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "x": rng.normal(0.0, 1.0, ROWS),
        "s": list(rng.choice(CATEGORIES, ROWS, p=WEIGHTS)),
        "keys": [("k1", "k2")] * ROWS,
    }


def _next_day(rng: np.random.Generator) -> dict[str, Any]:
    x = rng.normal(0.5, 1.0, ROWS)
    x[::5] = np.nan  # 20% nulls
    s: list[str | None] = list(rng.choice(CATEGORIES, ROWS, p=WEIGHTS))
    for i in range(ROWS):
        if i % 10 == 1:
            s[i] = None  # 10% nulls
        elif i % 10 in (2, 4, 6):
            s[i] = f"new{i % 7}"  # 3 in 9 non-null values unseen
    keys = [("k1", "k2", "k3") if i % 4 == 0 else ("k1",) for i in range(ROWS)]
    return {"x": x, "s": s, "keys": keys}


def _rows(day: dict[str, Any]) -> list[tuple]:
    rows = []
    for i in range(ROWS):
        x = None if np.isnan(day["x"][i]) else float(day["x"][i])
        m = {k: float(i % 13) for k in day["keys"][i]}
        rows.append((i, i % 2, x, day["s"][i], m, [float(i % 7), float(i % 3)], i % 11))
    return rows


@pytest.fixture(scope="module")
def days() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(11)
    return {DATE: _fit_day(rng), NEXT_DATE: _next_day(rng)}


@pytest.fixture
def ws(workspace: str, write_table: Any, days: dict[str, dict[str, Any]]) -> str:
    """A workspace with both raw days written."""
    for date, day in days.items():
        write_table(f"{workspace}/raw/TAG=ctr/dt={date}", _rows(day), SCHEMA)
    return workspace


def _job(ws: str, date: str, drift: dict[str, Any] | None = None) -> Any:
    options = {"drift": drift} if drift else {}
    return parse_job("encode", date, job_body(ws, model_date=DATE, options=options))


def _femodel(ws: str) -> str:
    return f"{ws}/femodel/TAG=ctr/dt={DATE}"


def _encoded(ws: str, date: str = NEXT_DATE) -> str:
    return f"{ws}/encoded/TAG=ctr/dt={date}"


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    p = np.maximum(expected / expected.sum(), PSI_FLOOR)
    q = np.maximum(actual / actual.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def _category_buckets(values: list[str | None], top: list[str], vocab: list[str]) -> np.ndarray:
    present = [v for v in values if v is not None]
    counts = [sum(v == t for v in present) for t in top]
    unseen = sum(v not in vocab for v in present)
    return np.array([*counts, len(present) - sum(counts) - unseen, unseen], dtype=float)


def _by_feature(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["feature"]: f for f in report["features"]}


def test_the_fit_writes_a_profile_beside_the_fmap(
    spark: Any, ws: str, days: dict[str, dict[str, Any]]
) -> None:
    result = encode.run(spark, _job(ws, DATE))
    assert result["drift"] == {"skipped": "the fmap was fitted by this run"}
    assert storage.exists(f"{_femodel(ws)}/{PROFILE_FILE}")
    profile = Profile.load(_femodel(ws))
    assert profile is not None and profile.rows == ROWS and profile.model_date == DATE
    assert profile.fmap_checksum == result["fmap_checksum"]
    assert set(profile.columns) == {"x", "s", "m", "v", "n"}

    x = profile.feature("x")
    assert x is not None and x.kind == "scalar" and x.nulls == 0
    (bins,) = x.positions
    edges = np.array(bins.edges)
    assert 1 <= len(edges) <= 9 and np.all(np.diff(edges) > 0)
    deciles = np.quantile(days[DATE]["x"], np.arange(1, 10) / 10)
    assert np.allclose(edges, deciles, atol=0.05)
    expected = np.bincount(np.digitize(days[DATE]["x"], edges), minlength=len(edges) + 1)
    assert list(bins.counts) == expected.tolist()

    s = profile.feature("s")
    assert s is not None and s.kind == "string" and s.categories is not None
    values, counts = np.unique(days[DATE]["s"], return_counts=True)
    assert s.categories.counts == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert list(s.categories.counts) == sorted(
        s.categories.counts, key=lambda k: -s.categories.counts[k]
    )
    assert (s.categories.other, s.categories.unseen, s.null_rate) == (0, 0, 0.0)

    m = profile.feature("m")
    assert m is not None and m.categories is not None
    assert m.categories.counts == {"k1": ROWS, "k2": ROWS}
    v = profile.feature("v")
    assert v is not None and v.size == 2 and len(v.positions) == 2
    n = profile.feature("n")
    assert n is not None and sum(n.positions[0].counts) == ROWS


@pytest.mark.parametrize("top", [50, 1], ids=["every-category-counted", "others-in-vocabulary"])
def test_drift_figures_match_numpy(
    spark: Any,
    ws: str,
    days: dict[str, dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    top: int,
) -> None:
    # Fewer categories counted one by one than the vocabulary holds: the rest of the
    # vocabulary is "other".
    monkeypatch.setattr(profile_module, "TOP_CATEGORIES", top)
    encode.run(spark, _job(ws, DATE))
    with caplog.at_level(logging.INFO, logger="spark_jobs.drift"):
        result = encode.run(spark, _job(ws, NEXT_DATE))
    assert result["fmap_reused"]
    report_uri = f"{_encoded(ws)}/{DRIFT_FILE}"
    summary = result["drift"]
    assert summary["report"] == report_uri and summary["features"] == 5
    assert summary["breaches"] == []
    report = json.loads(storage.read_text(report_uri))
    drift = _by_feature(report)
    profile = Profile.load(_femodel(ws))
    assert profile is not None
    fit, now = days[DATE], days[NEXT_DATE]

    # x: null rate exact; PSI over the profile's own edges within 0.01.
    assert drift["x"]["null_rate"] == pytest.approx(np.isnan(now["x"]).mean(), abs=1e-12)
    assert drift["x"]["null_rate_fit"] == 0.0
    assert drift["x"]["null_rate_change"] == pytest.approx(0.2, abs=1e-12)
    edges = np.array(profile.feature("x").positions[0].edges)
    present = now["x"][~np.isnan(now["x"])]
    expected = np.bincount(np.digitize(fit["x"], edges), minlength=len(edges) + 1)
    actual = np.bincount(np.digitize(present, edges), minlength=len(edges) + 1)
    assert drift["x"]["psi"] == pytest.approx(_psi(expected, actual), abs=0.01)
    assert drift["x"]["psi"] > 0.1  # half a standard deviation is a real shift

    # s: unseen rate exact; PSI over the categories, other and unseen within 0.01.
    present_s = [v for v in now["s"] if v is not None]
    unseen = sum(v not in CATEGORIES for v in present_s) / len(present_s)
    assert drift["s"]["unseen_rate"] == pytest.approx(unseen, abs=1e-6)
    assert drift["s"]["unseen_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert drift["s"]["null_rate"] == pytest.approx(0.1, abs=1e-12)
    top = list(profile.feature("s").categories.counts)
    fit_s, now_s = (_category_buckets(d["s"], top, CATEGORIES) for d in (fit, now))
    assert fit_s.tolist() == profile.feature("s").categories.buckets()
    psi_s = _psi(fit_s, now_s)
    assert drift["s"]["psi"] == pytest.approx(psi_s, abs=0.01)

    # m: k3 is an unseen key in a quarter of the rows (and k2 is gone from the others).
    entries = sum(len(k) for k in now["keys"])
    assert drift["m"]["unseen_rate"] == pytest.approx((ROWS / 4) / entries, abs=1e-6)
    # n (integers, same on both days) does not drift.
    assert drift["n"]["psi"] == pytest.approx(0.0, abs=1e-9)

    # Worst first, in the report, the summary and the logged table.
    assert [f["feature"] for f in report["features"]][:3] == ["s", "m", "x"]
    assert [f["feature"] for f in summary["worst"]][:3] == ["s", "m", "x"]
    table = next(r.getMessage() for r in caplog.records if "drift of" in r.getMessage())
    assert table.index("\ns ") < table.index("\nx ") < table.index("\nn ")


def test_an_fmap_without_profile_encodes_as_before_without_drift(
    spark: Any, ws: str, caplog: pytest.LogCaptureFixture
) -> None:
    encode.run(spark, _job(ws, DATE))
    with_profile = encode.run(spark, _job(ws, NEXT_DATE))
    before = spark.read.parquet(_encoded(ws)).orderBy("uid").collect()
    Path(local_path(f"{_femodel(ws)}/{PROFILE_FILE}")).unlink()  # fitted before profiles
    with caplog.at_level(logging.INFO, logger="spark_jobs.drift"):
        result = encode.run(spark, _job(ws, NEXT_DATE))
    assert "no profile" in result["drift"]["skipped"]
    assert [r for r in caplog.records if "drift not measured" in r.getMessage()]
    assert not storage.exists(f"{_encoded(ws)}/{DRIFT_FILE}")
    assert spark.read.parquet(_encoded(ws)).orderBy("uid").collect() == before
    assert result["fmap_checksum"] == with_profile["fmap_checksum"]


GATE = {"psi_max": 0.1, "null_rate_increase_max": 0.1, "unseen_rate_max": 0.2}


@pytest.mark.parametrize("day", ["small", "large"])
def test_a_failing_gate_commits_nothing_and_names_every_breach(
    spark: Any, ws: str, day: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode.run(spark, _job(ws, DATE))
    encoded: list[Any] = []
    frame = encode.encode_frame
    monkeypatch.setattr(encode, "encode_frame", lambda *a: encoded.append(a) or frame(*a))
    if day == "large":  # counted by Spark tasks and gated before the encoded table is written
        monkeypatch.setattr(drift_module, "DRIVER_COUNT_BYTES", 0)
    with pytest.raises(DriftBreachError) as caught:
        encode.run(spark, _job(ws, NEXT_DATE, {**GATE, "on_breach": "fail"}))
    # A small day is counted by the driver while the table is written into staging.
    assert len(encoded) == (1 if day == "small" else 0)
    message = str(caught.value)
    assert "'x': psi" in message and "null_rate_increase 0.2000 > 0.1" in message
    assert "'s': psi" in message and "unseen_rate 0.3333 > 0.2" in message
    assert "'n'" not in message
    assert not storage.exists(_encoded(ws))
    staging = f"{ws}/encoded/TAG=ctr/_staging"
    assert not storage.exists(staging) or not storage.list_names(staging)


def test_a_day_the_driver_cannot_read_is_counted_by_spark_after_the_write(
    spark: Any, ws: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    encode.run(spark, _job(ws, DATE))
    expected = encode.run(spark, _job(ws, NEXT_DATE))["drift"]
    report = storage.read_text(f"{_encoded(ws)}/{DRIFT_FILE}")

    def no_libhdfs(*args: Any) -> Any:
        raise OSError("Unable to load libhdfs")

    monkeypatch.setattr(drift_module, "count_on_driver", no_libhdfs)
    with caplog.at_level(logging.WARNING, logger=drift_module.__name__):
        assert encode.run(spark, _job(ws, NEXT_DATE))["drift"] == expected
    assert storage.read_text(f"{_encoded(ws)}/{DRIFT_FILE}") == report
    assert [r for r in caplog.records if "in Spark tasks instead" in r.getMessage()]


def test_a_warning_gate_commits_and_lists_the_breaches(spark: Any, ws: str) -> None:
    encode.run(spark, _job(ws, DATE))
    result = encode.run(spark, _job(ws, NEXT_DATE, {**GATE, "on_breach": "warn"}))
    assert storage.is_complete(_encoded(ws))
    breaches = result["drift"]["breaches"]
    assert {line.split(":")[0] for line in breaches} == {"'x'", "'s'", "'m'"}
    report = json.loads(storage.read_text(f"{_encoded(ws)}/{DRIFT_FILE}"))
    assert report["breaches"] == breaches and report["on_breach"] == "warn"
    # The encoded table reads as before: Spark and pyarrow skip _DRIFT.json.
    assert spark.read.parquet(_encoded(ws)).count() == ROWS


def test_a_no_retry_error_exits_with_its_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = []
    fake = SimpleNamespace(stop=lambda: stopped.append(True))
    monkeypatch.setattr(session, "build_session", lambda *a, **k: fake)

    def breach(spark: Any, job: Any) -> dict[str, Any]:
        raise DriftBreachError("drift beyond encode.drift: 'x': psi 0.3 > 0.1")

    argv = ["--date", DATE, "--job", json.dumps(job_body("file:///tmp/ws"))]
    with pytest.raises(SystemExit) as exited:
        session.run_job("encode", breach, argv)
    assert exited.value.code == NO_RETRY_EXIT_CODE
    assert stopped  # the session is stopped all the same


COUNTED_SCHEMA = "x double, v array<double>, s string, m map<string,double>"


def _counted_rows() -> list[tuple]:
    """Nulls everywhere (a null array element too), values on the edges, unseen values."""
    rows = []
    for i in range(240):
        x = None if i % 7 == 0 else float(i % 5) - 1.0  # -1..3, edges 0, 1, 2
        v = None if i % 11 == 0 else [None if i % 13 == 0 else (i % 4) / 4, float(i % 3)]
        s = None if i % 6 == 0 else "abcdz"[i % 5]  # z: unseen
        m = None if i % 9 == 0 else {k: 1.0 for k in ("k1", "k2", "k9")[: i % 3 + 1]}
        rows.append((x, v, s, m))
    return rows


def _bins(values: list[float | None], edges: tuple[float, ...]) -> list[int]:
    present = np.array([v for v in values if v is not None])
    return np.bincount(np.digitize(present, edges), minlength=len(edges) + 1).tolist()


@pytest.mark.parametrize("read", ["handed-over", "driver", "tasks"])
@pytest.mark.parametrize("partitions", [1, 3])
def test_count_features_counts_exactly(
    spark: Any, tmp_path: Path, read: str, partitions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import types as T

    rows = _counted_rows()
    frame = spark.createDataFrame(rows, COUNTED_SCHEMA).repartition(partitions)
    assert drift_module.parquet_files(frame) is None
    ways: list[str] = []
    for way in ("count_on_driver", "count_in_tasks", "count_handed_over"):
        counter = getattr(drift_module, way)

        def spy(*args: Any, _counter: Any = counter, _way: str = way) -> Any:
            ways.append(_way)
            return _counter(*args)

        monkeypatch.setattr(drift_module, way, spy)
    if read != "handed-over":  # a plain Parquet read: counted from the files with pyarrow
        frame.write.parquet(str(tmp_path / "t"))
        frame = spark.read.parquet(str(tmp_path / "t"))
        files = drift_module.parquet_files(frame)
        assert files is not None and len(files.uris) == partitions
        sizes = sum(p.stat().st_size for p in (tmp_path / "t").glob("part-*"))
        assert files.size == sizes and files.small
        assert drift_module.parquet_files(frame.where("x > 0")) is None
    if read == "tasks":  # a partition too large for the driver to count
        monkeypatch.setattr(drift_module, "DRIVER_COUNT_BYTES", files.size - 1)
    types = {f.name: f.dataType for f in frame.schema.fields}
    Target = drift_module.Target
    targets = [
        Target("x", "scalar", types["x"], ((0.0, 1.0, 2.0),)),
        Target("x", "scalar", types["x"], ((),)),
        Target("v", "array", types["v"], ((0.5,), (1.0, 2.0)), size=2),
        Target("s", "string", types["s"], vocab=("a", "b", "c", "d"), top=("a", "b")),
        Target("s", "string", types["s"], vocab=("a", "b"), top=("a", "b")),
        Target("m", "map", types["m"], vocab=("k1", "k2"), top=("k1",)),
        Target("m", "map", types["m"], vocab=("k1",), top=("k1",)),
        Target("s", "string", T.StringType()),  # nulls only
    ]
    counted, profiles = drift_module.count_features(frame, targets)
    assert ways == [
        {"driver": "count_on_driver", "tasks": "count_in_tasks"}.get(read, "count_handed_over")
    ]
    assert counted == len(rows)
    x, x_none, v, s, s_all, m, m_all, s_nulls = profiles
    xs = [r[0] for r in rows]
    assert x.nulls == xs.count(None) and x_none.nulls == xs.count(None)
    assert list(x.positions[0].counts) == _bins(xs, (0.0, 1.0, 2.0))
    assert list(x_none.positions[0].counts) == [len(rows) - xs.count(None)]
    vs = [r[1] for r in rows]
    assert v.nulls == vs.count(None) and v.size == 2
    for k, edges in enumerate(((0.5,), (1.0, 2.0))):
        values = [None if a is None else a[k] for a in vs]
        assert list(v.positions[k].counts) == _bins(values, edges)
    ss = [r[2] for r in rows]
    present = [a for a in ss if a is not None]
    assert s.nulls == s_all.nulls == s_nulls.nulls == ss.count(None)
    assert s.categories is not None and s_all.categories is not None
    assert s.categories.counts == {"a": present.count("a"), "b": present.count("b")}
    assert (s.categories.other, s.categories.unseen) == (
        present.count("c") + present.count("d"),
        present.count("z"),
    )
    assert s_all.categories.counts == s.categories.counts
    unseen = sum(a not in ("a", "b") for a in present)
    assert (s_all.categories.other, s_all.categories.unseen) == (0, unseen)
    assert s_nulls.categories is None and s_nulls.positions == ()
    ms = [r[3] for r in rows]
    entries = [k for a in ms if a is not None for k in a]
    assert m.nulls == m_all.nulls == ms.count(None)
    assert m.categories is not None and m_all.categories is not None
    assert m.categories.counts == {"k1": entries.count("k1")}
    assert (m.categories.other, m.categories.unseen) == (entries.count("k2"), entries.count("k9"))
    assert m_all.categories.counts == {"k1": entries.count("k1")}
    assert (m_all.categories.other, m_all.categories.unseen) == (
        0,
        len(entries) - entries.count("k1"),
    )


def test_a_driver_that_cannot_read_the_files_counts_in_spark_tasks(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _counted_rows()
    spark.createDataFrame(rows, COUNTED_SCHEMA).write.parquet(str(tmp_path / "t"))
    frame = spark.read.parquet(str(tmp_path / "t"))
    types = {f.name: f.dataType for f in frame.schema.fields}
    target = drift_module.Target("x", "scalar", types["x"], ((0.0, 1.0, 2.0),))
    expected = drift_module.count_features(frame, [target])

    def no_libhdfs(*args: Any) -> Any:
        raise OSError("Unable to load libhdfs")

    monkeypatch.setattr(drift_module, "count_on_driver", no_libhdfs)
    with caplog.at_level(logging.WARNING, logger=drift_module.__name__):
        assert drift_module.count_features(frame, [target]) == expected
    (line,) = [r.getMessage() for r in caplog.records if "pyarrow on the driver" in r.getMessage()]
    assert "Unable to load libhdfs" in line and "counting in Spark tasks instead" in line
    assert expected[0] == len(rows)


def test_count_features_of_an_empty_frame(spark: Any) -> None:
    frame = spark.createDataFrame([], COUNTED_SCHEMA)
    types = {f.name: f.dataType for f in frame.schema.fields}
    target = drift_module.Target("x", "scalar", types["x"], ((0.0, 1.0),))
    rows, (x,) = drift_module.count_features(frame, [target])
    assert rows == 0 and x.nulls == 0 and list(x.positions[0].counts) == [0, 0, 0]


@pytest.mark.parametrize(
    "edges",
    [(), (0.0,), (0.0, 1.0, 2.0), (1.0, 1.0, 2.0), (-np.inf, 0.5), (0.5, np.inf)],
    ids=["none", "one", "three", "repeated", "minus-inf", "plus-inf"],
)
def test_bins_count_as_searchsorted_right(edges: tuple[float, ...]) -> None:
    rng = np.random.default_rng(7)
    found = np.concatenate(
        [rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], 500), [np.nan] * 9, [np.inf, -np.inf]]
    )
    present = found[~np.isnan(found)]
    expected = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=np.float64), present, "right"),
        minlength=len(edges) + 1,
    )
    assert drift_module._bins(found, edges).tolist() == expected.tolist()


def test_categories_of_a_dictionary_column_equal_the_plain_ones() -> None:
    import pyarrow as pa

    values = pa.array(["a", None, "b", "z", "c", "a", None, "d", "z", "a"] * 7)
    target = drift_module.Target("s", "string", None, vocab=("a", "b", "c", "d"), top=("a", "b"))
    plain = drift_module._categories(values, target)
    assert plain.tolist() == [21, 7, 14, 14]  # a, b, other (c, d), unseen (z)
    assert drift_module._categories(values.dictionary_encode(), target).tolist() == plain.tolist()
