"""Per-bucket normalisers of the numeric vector, as Spark expressions.

- ``minmax``: ``(x - min) / (max - min)`` clipped to [0, 1], then mapped to the
  output range ``params.min``..``params.max`` (default 0..1); a null value
  gives the low end, a constant feature gives the low end.
- ``zscore``: ``(x - mean) / std`` (``params.with_mean`` / ``with_std``, default
  true; a zero std divides by 1); a null value gives 0.
- ``pnorm``: each row's vector divided by its p-norm (``params.p``, default 2);
  nothing is fitted; nulls count as 0.
- ``encode: false``: values pass through; nulls become 0.

Before any of them, a null takes the bucket's fitted fill value when the
statistics hold one (:func:`impute`); statistics written before fill values
existed hold none, so their nulls are normalised as above.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from dlflow_airflow.contract.schema import method_params
from spark_jobs import sql_text

METHODS = ("minmax", "zscore", "pnorm")
FITTED = {"minmax": ("min", "max"), "zscore": ("mean", "std")}
ZERO = sql_text.double(0.0)


MEDIAN_ACCURACY = 10_000
"""``percentile_approx`` accuracy of a fitted median: relative error about 1/10,000 of the rows."""


def statistic_aggs(value: Column, prefix: str, median: bool = False) -> list[Column]:
    """The aggregates every fitted method may need, named ``<prefix><stat>``; with
    ``median``, also the approximate median (only ``impute: median`` needs it)."""
    aggs = [
        F.min(value).alias(f"{prefix}min"),
        F.max(value).alias(f"{prefix}max"),
        F.avg(value).alias(f"{prefix}mean"),
        F.stddev_samp(value).alias(f"{prefix}std"),
    ]
    if median:
        aggs.append(
            F.percentile_approx(value, F.lit(0.5), F.lit(MEDIAN_ACCURACY)).alias(f"{prefix}median")
        )
    return aggs


def fill_value(
    stats: dict[str, float | None], strategy: str, constant: float | None
) -> float | None:
    """The fitted value a null becomes: a statistic of the position, 0 or the constant
    (None when the statistic is null: the position was null in every row)."""
    if strategy == "zero":
        return 0.0
    if strategy == "constant":
        return constant
    return stats.get(strategy)


def impute(values: list[str], fills: list[float | None]) -> list[str]:
    """Each position (SQL text) with its nulls replaced by its fill value (None: left null)."""
    return [
        v if fill is None else f"coalesce({v}, {sql_text.double(fill)})"
        for v, fill in zip(values, fills, strict=True)
    ]


def missing_indicator(values: list[str]) -> str:
    """SQL text: 1.0 when any of a feature's positions is null, else 0.0."""
    return f"CAST(({' OR '.join(f'({v}) IS NULL' for v in values)}) AS DOUBLE)"


def fitted_names(method: str, encode: bool) -> tuple[str, ...]:
    """The statistics a bucket keeps (saved beside the fmap)."""
    return FITTED.get(method, ()) if encode else ()


def normalize(
    values: list[str],
    stats: list[dict[str, float | None]],
    method: str,
    params: dict[str, float | int | bool],
    encode: bool,
) -> list[str]:
    """The bucket's numeric vector, position by position (SQL text)."""
    if not encode:
        return [f"coalesce({v}, {ZERO})" for v in values]
    params = method_params(method, params)
    if method == "minmax":
        low, high = float(params["min"]), float(params["max"])
        return [
            _minmax(v, s.get("min"), s.get("max"), low, high)
            for v, s in zip(values, stats, strict=True)
        ]
    if method == "zscore":
        with_mean, with_std = bool(params["with_mean"]), bool(params["with_std"])
        return [_zscore(v, s, with_mean, with_std) for v, s in zip(values, stats, strict=True)]
    raise ValueError(f"method {method!r} is not position-wise")


def _minmax(value: str, lo: float | None, hi: float | None, low: float, high: float) -> str:
    if lo is None or hi is None or hi <= lo:
        return sql_text.double(low)
    ratio = f"(({value}) - {sql_text.double(lo)}) / {sql_text.double(hi - lo)}"
    clipped = f"least(greatest({ratio}, {ZERO}), {sql_text.double(1.0)})"
    if (low, high) != (0.0, 1.0):
        clipped = f"{sql_text.double(low)} + {clipped} * {sql_text.double(high - low)}"
    return f"coalesce({clipped}, {sql_text.double(low)})"


def _zscore(value: str, stats: dict[str, float | None], with_mean: bool, with_std: bool) -> str:
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None:
        return ZERO
    centred = f"({value}) - {sql_text.double(mean)}" if with_mean else f"({value})"
    if with_std and std:
        centred = f"({centred}) / {sql_text.double(std)}"
    return f"coalesce({centred}, {ZERO})"


def pnorm(vector: str, p: float) -> str:
    """SQL text: ``vector / ||vector||_p`` for an ``array<double>``; a zero vector stays zero."""
    x, y, acc = "__dlflow_x", "__dlflow_y", "__dlflow_acc"  # lambda variables, not columns
    vector = f"transform({vector}, {x} -> coalesce({x}, {ZERO}))"
    power = sql_text.double(p)
    total = f"aggregate({vector}, {ZERO}, ({acc}, {x}) -> {acc} + power(abs({x}), {power}))"
    norm = f"power({total}, {sql_text.double(1.0 / p)})"
    return f"CASE WHEN {norm} > 0 THEN transform({vector}, {y} -> {y} / {norm}) ELSE {vector} END"
