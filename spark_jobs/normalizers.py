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

METHODS = ("minmax", "zscore", "pnorm")
FITTED = {"minmax": ("min", "max"), "zscore": ("mean", "std")}


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


def impute(values: list[Column], fills: list[float | None]) -> list[Column]:
    """Each position with its nulls replaced by its fill value (None: left null)."""
    return [
        v if fill is None else F.coalesce(v, F.lit(float(fill)))
        for v, fill in zip(values, fills, strict=True)
    ]


def missing_indicator(values: list[Column]) -> Column:
    """1.0 when any of a feature's positions is null, else 0.0."""
    flag = values[0].isNull()
    for value in values[1:]:
        flag = flag | value.isNull()
    return flag.cast("double")


def fitted_names(method: str, encode: bool) -> tuple[str, ...]:
    """The statistics a bucket keeps (saved beside the fmap)."""
    return FITTED.get(method, ()) if encode else ()


def normalize(
    values: list[Column],
    stats: list[dict[str, float | None]],
    method: str,
    params: dict[str, float | int | bool],
    encode: bool,
) -> list[Column]:
    """The bucket's numeric vector, position by position."""
    if not encode:
        return [F.coalesce(v, F.lit(0.0)) for v in values]
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


def _minmax(value: Column, lo: float | None, hi: float | None, low: float, high: float) -> Column:
    if lo is None or hi is None or hi <= lo:
        return F.lit(low)
    ratio = (value - F.lit(lo)) / F.lit(hi - lo)
    clipped = F.least(F.greatest(ratio, F.lit(0.0)), F.lit(1.0))
    scaled = clipped if (low, high) == (0.0, 1.0) else F.lit(low) + clipped * F.lit(high - low)
    return F.coalesce(scaled, F.lit(low))


def _zscore(
    value: Column, stats: dict[str, float | None], with_mean: bool, with_std: bool
) -> Column:
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None:
        return F.lit(0.0)
    centred = value - F.lit(mean) if with_mean else value
    if with_std and std:
        centred = centred / F.lit(std)
    return F.coalesce(centred, F.lit(0.0))


def pnorm(vector: Column, p: float) -> Column:
    """``vector / ||vector||_p`` for an ``array<double>`` column; a zero vector stays zero."""
    vector = F.transform(vector, lambda x: F.coalesce(x, F.lit(0.0)))
    total = F.aggregate(vector, F.lit(0.0), lambda acc, x: acc + F.pow(F.abs(x), F.lit(p)))
    norm = F.pow(total, F.lit(1.0 / p))
    return F.when(norm > 0, F.transform(vector, lambda x: x / norm)).otherwise(vector)
