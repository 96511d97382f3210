"""Profiles, PSI, drift reports and the drift gate, without Spark."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from dlflow_airflow.contract.drift import (
    PSI_FLOOR,
    Bins,
    Categories,
    DriftBreachError,
    FeatureProfile,
    Profile,
    compare,
    psi,
    summary_of,
)
from dlflow_airflow.contract.jobconf import NoRetryError
from dlflow_airflow.contract.options import DriftGate, EncodeOptions

EDGES = (-1.0, 0.0, 1.0)


def _profile(features: tuple[FeatureProfile, ...], columns: tuple[str, ...]) -> Profile:
    return Profile("sha256:f", "2026-01-01", 100, columns, features)


FIT = _profile(
    (
        FeatureProfile("x", "scalar", 100, 0, (Bins(EDGES, (25, 25, 25, 25)),)),
        FeatureProfile("s", "string", 100, 10, categories=Categories({"a": 60, "b": 30})),
        FeatureProfile(
            "v", "array", 100, 0, (Bins((0.0,), (50, 50)), Bins((0.0,), (50, 50))), size=2
        ),
    ),
    ("x", "s", "v", "gone"),
)
NOW = _profile(
    (
        FeatureProfile("x", "scalar", 200, 40, (Bins(EDGES, (10, 30, 60, 60)),)),
        FeatureProfile("s", "string", 200, 20, categories=Categories({"a": 90, "b": 30}, 0, 60)),
        FeatureProfile(
            "v", "array", 200, 0, (Bins((0.0,), (100, 100)), Bins((0.0,), (150, 50))), size=2
        ),
    ),
    ("x", "s", "v", "extra"),
)


def test_psi_is_zero_for_the_same_shares_and_floors_empty_bins() -> None:
    assert psi([10, 20, 70], [20, 40, 140]) == pytest.approx(0.0)
    assert psi([50, 50], [75, 25]) == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2))
    assert psi([100, 0], [50, 50]) == pytest.approx(
        (0.5 - 1) * math.log(0.5) + (0.5 - PSI_FLOOR) * math.log(0.5 / PSI_FLOOR)
    )
    assert psi([0, 0], [1, 1]) is None and psi([1, 1], [0, 0]) is None


def test_a_profile_round_trips_through_json() -> None:
    text = FIT.to_json()
    assert Profile.from_json(text) == FIT
    assert json.loads(text)["features"][1]["null_rate"] == 0.1
    with pytest.raises(ValueError, match="format"):
        Profile.from_json(json.dumps({"format": 99}))


def test_compare_gives_every_figure_and_names_new_and_vanished_columns() -> None:
    report = compare(FIT, NOW, DriftGate(), date="2026-01-02", fmap="file:///f")
    drift = {d.name: d for d in report.features}
    assert drift["x"].null_rate_fit == 0.0 and drift["x"].null_rate == 0.2
    assert drift["x"].null_rate_change == pytest.approx(0.2)
    assert drift["x"].psi == pytest.approx(psi([25, 25, 25, 25], [10, 30, 60, 60]))
    assert drift["x"].unseen_rate is None
    assert drift["s"].unseen_rate == pytest.approx(60 / 180)
    assert drift["s"].unseen_rate_fit == 0.0
    assert drift["s"].psi == pytest.approx(psi([60, 30, 0, 0], [90, 30, 0, 60]))
    assert drift["v"].position == 1 and drift["v"].psi == pytest.approx(psi([50, 50], [150, 50]))
    assert report.new_columns == ("extra",) and report.vanished_columns == ("gone",)
    assert report.breaches == ()  # no bound set: measured and reported, nothing gated
    assert [d.name for d in report.worst()] == ["s", "x", "v"]


def test_the_gate_names_every_breach_with_its_figure_and_bound() -> None:
    gate = DriftGate(psi_max=0.3, null_rate_increase_max=0.1, unseen_rate_max=0.3, on_breach="fail")
    report = compare(FIT, NOW, gate, date="2026-01-02", fmap="file:///f")
    found = {(b.feature, b.figure) for b in report.breaches}
    assert found == {("x", "psi"), ("x", "null_rate_increase"), ("s", "psi"), ("s", "unseen_rate")}
    lines = report.breach_lines()
    assert len(lines) == 2
    assert lines[0].startswith("'x': psi ") and "null_rate_increase 0.2000 > 0.1" in lines[0]
    assert "unseen_rate 0.3333 > 0.3" in lines[1]
    assert report.to_dict()["on_breach"] == "fail"


def test_the_table_and_the_summary_list_the_worst_first() -> None:
    report = compare(FIT, NOW, DriftGate(psi_max=0.3), date="2026-01-02", fmap="file:///f")
    table = report.table().splitlines()
    assert table[0].split()[:2] == ["feature", "kind"]
    assert [line.split()[0] for line in table[1:4]] == ["s", "x", "v"]
    assert "array[1]" in table[3]
    assert table[-2:] == [
        "new columns (not encoded): ['extra']",
        "columns gone since the fit: ['gone']",
    ]
    summary = report.summary("file:///e/_DRIFT.json")
    assert summary == summary_of(json.loads(report.to_json()), "file:///e/_DRIFT.json")
    assert summary["features"] == 3 and summary["report"] == "file:///e/_DRIFT.json"
    assert [w["feature"] for w in summary["worst"]] == ["s", "x", "v"]
    assert set(summary["worst"][0]) == {"feature", "psi", "null_rate_change", "unseen_rate"}
    assert len(summary["breaches"]) == 2
    assert summary["new_columns"] == ["extra"] and summary["vanished_columns"] == ["gone"]


def test_drift_options_default_to_no_gate_and_are_validated() -> None:
    gate = EncodeOptions().drift
    assert (gate.psi_max, gate.null_rate_increase_max, gate.unseen_rate_max) == (None,) * 3
    assert gate.on_breach == "warn"
    options = EncodeOptions.model_validate({"drift": {"psi_max": 0.25, "on_breach": "fail"}})
    assert options.drift.psi_max == 0.25 and options.drift.on_breach == "fail"
    for bad in ({"psi_max": -0.1}, {"on_breach": "stop"}, {"psi": 0.2}, {"unseen_rate_max": "x"}):
        with pytest.raises(ValidationError):
            EncodeOptions.model_validate({"drift": bad})


def test_a_breach_is_a_failure_no_retry_can_fix() -> None:
    assert issubclass(DriftBreachError, NoRetryError)
