"""The profile of a fit (``profile.json``): what drift is later measured against.

Fitting with a profile costs two more passes than fitting alone: one
aggregation over a sample gives every number position's deciles (the bin
edges, :func:`spark_jobs.encode_fit.fit_statistics` with ``cuts``), the
vocabulary pass already counts each category and map key (reused as they
are), and one :func:`spark_jobs.drift.count_features` pass counts the nulls
and the values in each bin (the raw files read with pyarrow). Measured on
``bench/encode.py``'s table (1M rows, 2 cores): the fit 0.9 s, the deciles
0.55 s, the counting 1.1 s with Spark's scan (see ``count_features`` for it now).
Model and file: :mod:`dlflow_airflow.contract.drift`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from dlflow_airflow.contract.drift import (
    ARRAY,
    MAP,
    STRING,
    TOP_CATEGORIES,
    Categories,
    FeatureProfile,
    Profile,
)
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers
from dlflow_airflow.contract.jobconf import JobConfig
from spark_jobs import encode_fit
from spark_jobs.drift import Target, count_features, kind_of
from spark_jobs.vocabulary import Vocabulary


def edges_of(cuts: list[float]) -> tuple[float, ...]:
    """Bin edges from deciles: sorted, each value once (a frequent value is one edge)."""
    return tuple(sorted(set(cuts)))


def categories_of(vocab: Vocabulary) -> Categories:
    """A vocabulary's own counts: the most frequent values, the rest, and those left out."""
    counts = dict(zip(vocab.values[:TOP_CATEGORIES], vocab.counts[:TOP_CATEGORIES], strict=True))
    kept = sum(vocab.counts)
    return Categories(counts, kept - sum(counts.values()), vocab.total - kept)


def fit_targets(fitted: encode_fit.Fit) -> list[Target]:
    """What the fit's counting pass counts: nulls, and the bins of number positions."""
    targets = []
    for feature in fitted.fmap.features:
        kind = kind_of(feature)
        data_type = fitted.columns.types[feature.name]
        edges: tuple[tuple[float, ...], ...] = ()
        if kind not in (STRING, MAP):
            edges = tuple(edges_of(s.get("cuts", [])) for s in fitted.stats[feature.name])
        size = feature.size if kind == ARRAY else None
        targets.append(Target(feature.name, kind, data_type, edges, size=size))
    return targets


def profile_of(frame: DataFrame, fitted: encode_fit.Fit) -> Profile:
    """The fit day's profile of every feature of the fitted fmap (one counting pass)."""
    rows, counted = count_features(frame, fit_targets(fitted))
    features: list[FeatureProfile] = []
    for feature in counted:
        vocab = fitted.vocabs.get(feature.name)
        if vocab is not None:
            feature = FeatureProfile(
                feature.name, feature.kind, rows, feature.nulls, categories=categories_of(vocab)
            )
        features.append(feature)
    fmap = fitted.fmap
    columns = tuple(fitted.columns.categories)
    return Profile(fmap.checksum, fmap.model_date, rows, columns, tuple(features))


def fit_profiled(
    frame: DataFrame, job: JobConfig, model_date: str
) -> tuple[FeatureMap, Normalizers, Profile]:
    """:func:`spark_jobs.encode_fit.fit_fmap` and the profile of the fit day."""
    fitted = encode_fit.fit(frame, job, model_date, cuts=True)
    return fitted.fmap, fitted.normalizers, profile_of(frame, fitted)
