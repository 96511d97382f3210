"""Feature profiles (written at every fit) and drift reports (at every encode with a reused fmap).

Pure Python (no numpy, no Spark): the encode job counts
(:mod:`spark_jobs.fit_profile`, :mod:`spark_jobs.drift`), this module holds the
model, the arithmetic, the gate and the text table, so a test or a UI can use
them without Spark.

A :class:`Profile` (``profile.json``, in the fmap partition beside
``fmap.json``) records, per feature of the fmap, on the fit day:

- rows and nulls (a NaN counts as a null, as imputation treats it);
- numbers (each scalar, each array position): up to ten quantile bins; bin
  ``i`` holds the values ``edges[i-1] <= x < edges[i]`` (the first bin is
  open below, the last open above), so ``numpy.digitize(x, edges)`` is a
  value's bin. Nulls are in no bin: the null rate is its own figure;
- strings: the counts of the most frequent categories (the fitted
  vocabulary's own counts), of the rest of the vocabulary (``other``) and of
  the values left out of it (``unseen``: dropped by ``min_count`` or
  ``max_size``, they encode as the unseen id);
- maps: the same for keys, counted in map entries; arrays: their size.

A :class:`DriftReport` compares the same counts on the day being encoded
(over the fitted bins and categories) with the profile: the null rate then
and now, the unseen rate (strings: values outside the vocabulary over
non-null values; maps: entries with a key outside it over all entries), the
population stability index (:func:`psi`) and the columns new or gone since
the fit. :func:`breaches` checks it against the drift gate
(:class:`~dlflow_airflow.contract.options.DriftGate`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from dlflow_airflow.contract.jobconf import NoRetryError
from dlflow_airflow.contract.options import DriftGate

PROFILE_FILE = "profile.json"
"""Written by encode into the fmap partition at every fit."""
PROFILE_FORMAT = 1
DRIFT_FORMAT = 1
QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
"""The quantiles whose (deduplicated) values are a number's bin edges: ten bins at most."""
TOP_CATEGORIES = 20
"""Categories (map keys) counted one by one; the rest of the vocabulary is ``other``."""
PSI_FLOOR = 1e-4
"""A bin's share is at least this in :func:`psi`: an empty bin (a category gone, a
value range never seen) would otherwise make the logarithm infinite. A bin empty
on one side and holding share ``s`` on the other adds ``(s - 1e-4) * ln(s / 1e-4)``,
e.g. 0.64 for 1% of the rows, 2.7 for 30%."""
WORST = 5
"""Features listed in a report's summary (the XCom and the asset event)."""

SCALAR, ARRAY, MAP, STRING = "scalar", "array", "map", "string"


class DriftBreachError(NoRetryError):
    """Encode measured drift beyond the gate and the gate says ``on_breach: fail``."""


# ---------------------------------------------------------------- profile model


@dataclass(frozen=True)
class Bins:
    """The non-null values of one number position, counted in quantile bins.

    :param edges: the increasing cut points; ``len(counts) == len(edges) + 1``.
    :param counts: values per bin (see the module docstring for the bounds).
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bins:
        return cls(tuple(float(e) for e in data["edges"]), tuple(int(c) for c in data["counts"]))


@dataclass(frozen=True)
class Categories:
    """The non-null values of a string (or the entries of a map), by category.

    :param counts: the most frequent vocabulary values -> count (at most :data:`TOP_CATEGORIES`).
    :param other: values in the vocabulary but not in ``counts``.
    :param unseen: values outside the vocabulary (they encode as the unseen id).
    """

    counts: dict[str, int]
    other: int = 0
    unseen: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.other + self.unseen

    def buckets(self) -> list[int]:
        """The counts PSI compares: each listed category, then other, then unseen."""
        return [*self.counts.values(), self.other, self.unseen]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "other": self.other, "unseen": self.unseen}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Categories:
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        return cls(counts, int(data.get("other", 0)), int(data.get("unseen", 0)))


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's counts on one day.

    :param kind: ``scalar``, ``array``, ``map`` or ``string``.
    :param nulls: rows where the feature is null (a scalar NaN too).
    :param positions: numbers: one :class:`Bins` per position (one for a scalar).
    :param categories: strings: values; maps: keys, counted in entries.
    :param size: arrays: the fitted size.
    """

    name: str
    kind: str
    rows: int
    nulls: int
    positions: tuple[Bins, ...] = ()
    categories: Categories | None = None
    size: int | None = None

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def unseen_rate(self) -> float | None:
        """Values (map entries) outside the vocabulary over all non-null ones."""
        if self.categories is None:
            return None
        total = self.categories.total
        return self.categories.unseen / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "null_rate": round(self.null_rate, 6),
        }
        if self.positions:
            data["positions"] = [b.to_dict() for b in self.positions]
        if self.categories is not None:
            data["categories"] = self.categories.to_dict()
        if self.size is not None:
            data["size"] = self.size
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            rows=int(data["rows"]),
            nulls=int(data["nulls"]),
            positions=tuple(Bins.from_dict(b) for b in data.get("positions", ())),
            categories=None if categories is None else Categories.from_dict(categories),
            size=None if data.get("size") is None else int(data["size"]),
        )


@dataclass(frozen=True)
class Profile:
    """Every feature of one fmap on its fit day (``profile.json``).

    :param columns: the raw table's feature columns on the fit day (new and
        vanished columns are named against these).
    """

    fmap_checksum: str
    model_date: str
    rows: int
    columns: tuple[str, ...]
    features: tuple[FeatureProfile, ...]

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": PROFILE_FORMAT,
                "fmap_checksum": self.fmap_checksum,
                "model_date": self.model_date,
                "rows": self.rows,
                "columns": list(self.columns),
                "features": [f.to_dict() for f in self.features],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "<profile>") -> Profile:
        data = json.loads(text)
        if data.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{source}: format {data.get('format')!r}, expected {PROFILE_FORMAT}")
        try:
            return cls(
                fmap_checksum=str(data["fmap_checksum"]),
                model_date=str(data["model_date"]),
                rows=int(data["rows"]),
                columns=tuple(data["columns"]),
                features=tuple(FeatureProfile.from_dict(f) for f in data["features"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: malformed profile ({exc!r})") from None

    @classmethod
    def load(cls, femodel_uri: str) -> Profile | None:
        """The profile in a femodel partition; None if it has none (fitted before profiles)."""
        from dlflow_airflow.contract import storage

        uri = f"{femodel_uri}/{PROFILE_FILE}"
        if not storage.exists(uri):
            return None
        return cls.from_json(storage.read_text(uri), source=uri)

    def save(self, femodel_uri: str) -> str:
        from dlflow_airflow.contract import storage

        uri = f"{femodel_uri}/{PROFILE_FILE}"
        storage.write_text(uri, self.to_json())
        return uri


# ---------------------------------------------------------------- drift


def psi(expected: Sequence[int], actual: Sequence[int]) -> float | None:
    """The population stability index ``sum((a - e) * ln(a / e))`` over bin shares,
    each share floored at :data:`PSI_FLOOR`; None when either side has no values."""
    expected_total, actual_total = sum(expected), sum(actual)
    if not expected_total or not actual_total:
        return None
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = max(e / expected_total, PSI_FLOOR)
        q = max(a / actual_total, PSI_FLOOR)
        total += (q - p) * math.log(q / p)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    """One feature now against its fit day.

    :param psi: numbers: the largest PSI over its positions (``position`` says
        which, for arrays); strings and maps: over categories, other and unseen.
    :param unseen_rate: strings and maps only.
    """

    name: str
    kind: str
    null_rate_fit: float
    null_rate: float
    psi: float | None = None
    unseen_rate: float | None = None
    unseen_rate_fit: float | None = None
    position: int | None = None

    @property
    def null_rate_change(self) -> float:
        return self.null_rate - self.null_rate_fit

    def sort_key(self) -> tuple[float, float, str]:
        """Worst first: by PSI (none last), then by the rise of the null rate."""
        return (-(self.psi if self.psi is not None else -1.0), -self.null_rate_change, self.name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "feature": self.name,
            "kind": self.kind,
            "null_rate_fit": _round(self.null_rate_fit),
            "null_rate": _round(self.null_rate),
            "null_rate_change": _round(self.null_rate_change),
            "psi": _round(self.psi),
        }
        if self.unseen_rate is not None:
            data["unseen_rate"] = _round(self.unseen_rate)
            data["unseen_rate_fit"] = _round(self.unseen_rate_fit)
        if self.position is not None:
            data["position"] = self.position
        return data


def feature_drift(fit: FeatureProfile, now: FeatureProfile) -> FeatureDrift:
    """Compare one feature's counts now (over the fitted bins) with its profile."""
    scores = [psi(f.counts, n.counts) for f, n in zip(fit.positions, now.positions, strict=True)]
    worst: float | None = None
    position: int | None = None
    for index, score in enumerate(scores):
        if score is not None and (worst is None or score > worst):
            worst, position = score, index
    if fit.categories is not None and now.categories is not None:
        worst = psi(fit.categories.buckets(), now.categories.buckets())
    return FeatureDrift(
        name=fit.name,
        kind=fit.kind,
        null_rate_fit=fit.null_rate,
        null_rate=now.null_rate,
        psi=worst,
        unseen_rate=now.unseen_rate,
        unseen_rate_fit=fit.unseen_rate,
        position=position if fit.kind == ARRAY else None,
    )


@dataclass(frozen=True)
class Breach:
    """One figure of one feature beyond its bound."""

    feature: str
    figure: str
    value: float
    bound: float

    def describe(self) -> str:
        return f"{self.figure} {self.value:.4f} > {self.bound:g}"


def breaches(drifts: Sequence[FeatureDrift], gate: DriftGate) -> list[Breach]:
    """Every figure beyond the gate's bounds (an unset bound checks nothing)."""
    found: list[Breach] = []
    for d in drifts:
        figures = (
            ("psi", d.psi, gate.psi_max),
            ("null_rate_increase", d.null_rate_change, gate.null_rate_increase_max),
            ("unseen_rate", d.unseen_rate, gate.unseen_rate_max),
        )
        for figure, value, bound in figures:
            if value is not None and bound is not None and value > bound:
                found.append(Breach(d.name, figure, value, bound))
    return found


@dataclass(frozen=True)
class DriftReport:
    """One encoded day against the profile of the fmap that encoded it (``_DRIFT.json``)."""

    date: str
    fmap: str
    model_date: str
    rows: int
    rows_fit: int
    features: tuple[FeatureDrift, ...]
    new_columns: tuple[str, ...] = ()
    vanished_columns: tuple[str, ...] = ()
    breaches: tuple[Breach, ...] = ()
    on_breach: str = "warn"

    def worst(self, count: int = WORST) -> list[FeatureDrift]:
        return sorted(self.features, key=FeatureDrift.sort_key)[:count]

    def breach_lines(self) -> list[str]:
        """One line per breaching feature: its figures and their bounds."""
        by_feature: dict[str, list[Breach]] = {}
        for b in self.breaches:
            by_feature.setdefault(b.feature, []).append(b)
        drift = {d.name: d for d in self.features}
        lines = []
        for name, found in by_feature.items():
            d = drift[name]
            figures = ", ".join(b.describe() for b in found)
            lines.append(
                f"{name!r}: {figures} (null rate {d.null_rate_fit:.4f} -> {d.null_rate:.4f})"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DRIFT_FORMAT,
            "date": self.date,
            "fmap": self.fmap,
            "model_date": self.model_date,
            "rows": self.rows,
            "rows_fit": self.rows_fit,
            "features": [d.to_dict() for d in self.worst(len(self.features))],
            "new_columns": list(self.new_columns),
            "vanished_columns": list(self.vanished_columns),
            "breaches": self.breach_lines(),
            "on_breach": self.on_breach,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self, report: str | None = None) -> dict[str, Any]:
        """The compact form: the job's result, the asset event's extra."""
        return summary_of(self.to_dict(), report)

    def table(self) -> str:
        """The features as a text table, worst first."""
        header = ("feature", "kind", "null fit", "null now", "change", "unseen", "psi")
        rows = [
            (
                d.name,
                d.kind if d.position is None else f"{d.kind}[{d.position}]",
                f"{d.null_rate_fit:.4f}",
                f"{d.null_rate:.4f}",
                f"{d.null_rate_change:+.4f}",
                "" if d.unseen_rate is None else f"{d.unseen_rate:.4f}",
                "" if d.psi is None else f"{d.psi:.4f}",
            )
            for d in self.worst(len(self.features))
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in (header, *rows)
        ]
        notes = []
        if self.new_columns:
            notes.append(f"new columns (not encoded): {list(self.new_columns)}")
        if self.vanished_columns:
            notes.append(f"columns gone since the fit: {list(self.vanished_columns)}")
        return "\n".join([*lines, *notes])


def summary_of(doc: dict[str, Any], report: str | None = None) -> dict[str, Any]:
    """A drift document (:meth:`DriftReport.to_dict`, as read back from ``_DRIFT.json``)
    cut to what an XCom or an asset event carries."""
    keep = ("feature", "psi", "null_rate_change", "unseen_rate")
    worst = [{k: d[k] for k in keep if k in d} for d in doc.get("features", [])[:WORST]]
    summary: dict[str, Any] = {
        "features": len(doc.get("features", [])),
        "worst": worst,
        "breaches": list(doc.get("breaches", [])),
    }
    for key in ("new_columns", "vanished_columns"):
        if doc.get(key):
            summary[key] = list(doc[key])
    if report is not None:
        summary["report"] = report
    return summary


def compare(
    profile: Profile,
    now: Profile,
    gate: DriftGate,
    *,
    date: str,
    fmap: str,
) -> DriftReport:
    """The drift report of ``now`` (counted over ``profile``'s bins) against ``profile``."""
    drifts = []
    for fit in profile.features:
        counted = now.feature(fit.name)
        if counted is not None:
            drifts.append(feature_drift(fit, counted))
    fit_columns = set(profile.columns)
    report = DriftReport(
        date=date,
        fmap=fmap,
        model_date=profile.model_date,
        rows=now.rows,
        rows_fit=profile.rows,
        features=tuple(drifts),
        new_columns=tuple(c for c in now.columns if c not in fit_columns),
        vanished_columns=tuple(c for c in profile.columns if c not in set(now.columns)),
        on_breach=gate.on_breach,
    )
    return replace(report, breaches=tuple(breaches(drifts, gate)))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
