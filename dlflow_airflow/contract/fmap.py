"""The feature map (fmap): how raw columns become model inputs.

Shared by the Spark encode job (which fits and writes it) and the TensorFlow
jobs (which read it to build model inputs). Pure Python: no numpy here.

Features are grouped into *buckets*; inside a bucket, numeric features form
one float vector ``<bucket>_nums`` and categorical features one int vector
``<bucket>_ctgs``. Each categorical feature owns the id range
``[offset, offset + size)`` of its bucket, so one embedding table of
``bucket.ctgs_vocab_size`` rows serves the whole bucket. Inside that range
(:attr:`FeatureMap.id_layout`):

- ``offset + 0`` (:data:`UNSEEN_INDEX`): a value not in the vocabulary (unseen
  at fit time, or dropped by ``min_count`` / ``max_size``);
- ``offset + 1`` (:data:`NULL_INDEX`): a null;
- ``offset + 2 + i`` (:data:`VOCAB_START`): ``meta["vocab"][i]``;

so ``size == len(vocab) + 2``. Format 1 files (nulls and unseen values
sharing ``offset + 0``, vocabulary from ``offset + 1``) are still read and
encoded with their own layout, so a model trained on one keeps its inputs.

A numeric feature takes ``size`` positions of its bucket's float vector: one
for a scalar, ``n`` for an array of ``n`` numbers, one per key for a map
(``meta["keys"]``). The fitted normaliser statistics live beside the fmap in
``normalizers.json`` (:class:`Normalizers`). See ``docs/features.md``.

Example::

    fmap = FeatureMap.load("file:///ws/femodel/TAG=ctr_v1/dt=2026-01-01")
    for bucket in fmap.buckets:
        for kind, features in bucket.fields.items():
            print(bucket.name, kind, [(f.name, f.offset, f.size) for f in features])
        print(bucket.nums_column, bucket.nums_width, bucket.ctgs_column, bucket.ctgs_vocab_size)
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dlflow_airflow.contract.tasks import Head, LabelEncoding, default_encodings, heads_of

FMAP_FILE = "fmap.json"
NORMALIZERS_FILE = "normalizers.json"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
NORMALIZERS_FORMAT = 1
UNSEEN_INDEX = 0
NULL_INDEX = 1
VOCAB_START = 2


@dataclass(frozen=True)
class IdLayout:
    """Where, relative to a categorical feature's offset, its ids go.

    :param unseen: the id of a value not in the vocabulary.
    :param null: the id of a null.
    :param first: the id of ``vocab[0]``; ``vocab[i]`` is ``first + i``.
    """

    unseen: int
    null: int
    first: int


ID_LAYOUTS = {
    1: IdLayout(unseen=0, null=0, first=1),
    2: IdLayout(UNSEEN_INDEX, NULL_INDEX, VOCAB_START),
}


class FmapError(ValueError):
    """An fmap file is malformed or does not fit the data it is used with."""


@dataclass(frozen=True)
class Feature:
    """One raw column inside a bucket field.

    :param name: the raw column name, exactly as in the raw table (spaces, dots
        and all). It names no model input, encoded column or TFRecord key: the
        feature is positions ``[offset, offset + size)`` of its bucket's input.
    :param dtype: the raw Spark type name (``double``, ``string``...).
    :param size: width in the bucket vector (numerics) or number of ids
        (categoricals: the vocabulary plus the reserved unseen and null ids).
    :param offset: start inside the bucket vector (numerics) or the bucket's
        id space (categoricals).
    :param meta: fitted facts: ``vocab`` for categoricals (id ``offset + 2 + i``
        is ``vocab[i]``; see :class:`IdLayout`), ``keys`` for maps (position
        ``offset + i`` is ``keys[i]``).
    :param encode: whether the value is transformed (False: passed as is).
    :param shape: ``(1,)`` for a scalar, ``(n,)`` for an array or a map of ``n`` keys.
    """

    name: str
    dtype: str
    size: int
    offset: int
    meta: dict[str, Any] = field(default_factory=dict)
    encode: bool = True
    shape: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Bucket:
    """A group of features that share one numeric vector and one id space.

    :param method: the normaliser of the numeric vector (``minmax``, ``zscore``, ``pnorm``).
    :param params: the normaliser's parameters, as configured.
    :param encode: False when the numeric values are passed through untouched.
    :param missing_indicators: numeric features that have a 0/1 position (1: the
        value was null) after all feature positions, in this order.
    """

    name: str
    method: str
    nums: tuple[Feature, ...] = ()
    ctgs: tuple[Feature, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    encode: bool = True
    missing_indicators: tuple[str, ...] = ()

    @property
    def fields(self) -> dict[str, tuple[Feature, ...]]:
        """The bucket's non-empty fields by kind: ``{"nums": ..., "ctgs": ...}``."""
        return {kind: feats for kind, feats in (("nums", self.nums), ("ctgs", self.ctgs)) if feats}

    @property
    def nums_column(self) -> str:
        """The numeric input: an encoded column, TFRecord key and Keras input name.

        Named after the bucket (an identifier), never after a feature, so any
        raw column name is safe as a feature.
        """
        return f"{self.name}_nums"

    @property
    def ctgs_column(self) -> str:
        """The categorical input, named like :attr:`nums_column`."""
        return f"{self.name}_ctgs"

    @property
    def nums_width(self) -> int:
        """The feature positions plus one per missing indicator."""
        return sum(f.size for f in self.nums) + len(self.missing_indicators)

    @property
    def indicator_offset(self) -> int:
        """The position of the first missing indicator in the numeric vector."""
        return sum(f.size for f in self.nums)

    @property
    def ctgs_width(self) -> int:
        return len(self.ctgs)

    @property
    def ctgs_vocab_size(self) -> int:
        return sum(f.size for f in self.ctgs)


@dataclass(frozen=True)
class FeatureMap:
    """Every bucket of one feature tag, fitted on one model date."""

    feature_tag: str
    model_date: str
    primary_keys: tuple[str, ...]
    labels: tuple[str, ...]
    buckets: tuple[Bucket, ...]
    format: int = FORMAT_VERSION
    label_encodings: tuple[LabelEncoding, ...] = ()
    """How each label is encoded (fitted since multi-class models; empty in older
    fmaps, whose labels are numbers written as they are)."""

    @property
    def id_layout(self) -> IdLayout:
        """The reserved ids and the vocabulary start of every categorical feature."""
        return ID_LAYOUTS[self.format]

    @property
    def features(self) -> tuple[Feature, ...]:
        return tuple(f for b in self.buckets for f in (*b.nums, *b.ctgs))

    def bucket(self, name: str) -> Bucket:
        for bucket in self.buckets:
            if bucket.name == name:
                return bucket
        raise KeyError(f"no bucket {name!r}; buckets: {[b.name for b in self.buckets]}")

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"no feature {name!r} in the fmap of {self.feature_tag}/{self.model_date}")

    def heads(self, task: str) -> list[Head]:
        """The heads of a ``task`` model trained on this fmap's labels.

        :raises TaskError: the labels were encoded for another task.
        """
        encodings = self.label_encodings or default_encodings(self.labels, task)
        return heads_of(task, encodings)

    def label_encoding(self, name: str) -> LabelEncoding | None:
        """How label ``name`` is encoded (None: written as it is)."""
        return next((e for e in self.label_encodings if e.name == name), None)

    def input_columns(self) -> list[str]:
        """The encoded-table columns a model reads, in a stable order."""
        cols: list[str] = []
        for bucket in self.buckets:
            if bucket.nums:
                cols.append(bucket.nums_column)
            if bucket.ctgs:
                cols.append(bucket.ctgs_column)
        return cols

    def to_dict(self) -> dict[str, Any]:
        body = {
            "format": self.format,
            "feature_tag": self.feature_tag,
            "model_date": self.model_date,
            "primary_keys": list(self.primary_keys),
            "labels": list(self.labels),
            "buckets": [_bucket_dict(b) for b in self.buckets],
        }
        if self.label_encodings:  # absent before: older fmaps keep their checksum
            body["label_encodings"] = [e.to_dict() for e in self.label_encodings]
        body["checksum"] = _checksum(body)
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @functools.cached_property
    def checksum(self) -> str:
        """The checksum of :meth:`to_dict` (computed once: the fmap is immutable)."""
        return self.to_dict()["checksum"]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<fmap>") -> FeatureMap:
        try:
            if data.get("format") not in READABLE_FORMATS:
                raise FmapError(
                    f"format {data.get('format')!r}, this version reads formats "
                    f"{', '.join(map(str, READABLE_FORMATS))}; refit it (encode option refit: true)"
                )
            expected = data.get("checksum")
            body = {k: v for k, v in data.items() if k != "checksum"}
            if expected != _checksum(body):
                raise FmapError("checksum mismatch: the file was changed after it was written")
            buckets = tuple(
                Bucket(
                    name=b["name"],
                    method=b["method"],
                    nums=tuple(_feature(f) for f in b["nums"]),
                    ctgs=tuple(_feature(f) for f in b["ctgs"]),
                    params=dict(b.get("params", {})),
                    encode=bool(b.get("encode", True)),
                    missing_indicators=tuple(b.get("missing_indicators", ())),
                )
                for b in data["buckets"]
            )
            return cls(
                feature_tag=data["feature_tag"],
                model_date=data["model_date"],
                primary_keys=tuple(data["primary_keys"]),
                labels=tuple(data["labels"]),
                buckets=buckets,
                format=int(data["format"]),
                label_encodings=tuple(
                    LabelEncoding.from_dict(e) for e in data.get("label_encodings", ())
                ),
            )
        except FmapError as exc:
            raise FmapError(f"{source}: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise FmapError(f"{source}: malformed fmap ({exc!r})") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "<fmap>") -> FeatureMap:
        return cls.from_dict(json.loads(text), source=source)

    @classmethod
    def load(cls, femodel_uri: str) -> FeatureMap:
        """Read ``fmap.json`` from a femodel partition (or a direct file URI)."""
        from dlflow_airflow.contract import storage

        uri = femodel_uri if femodel_uri.endswith(".json") else f"{femodel_uri}/{FMAP_FILE}"
        if not storage.exists(uri):
            raise FmapError(f"no fmap at {uri}")
        return cls.from_json(storage.read_text(uri), source=uri)

    def save(self, femodel_uri: str) -> str:
        from dlflow_airflow.contract import storage

        uri = f"{femodel_uri}/{FMAP_FILE}"
        storage.write_text(uri, self.to_json())
        return uri


@dataclass(frozen=True)
class Normalizers:
    """The fitted statistics of every bucket's normaliser, saved beside the fmap.

    ``stats[bucket][feature]`` maps a statistic name (``min``/``max`` for
    minmax, ``mean``/``std`` for zscore; pnorm and ``encode: false`` fit
    nothing) to one value per element of the feature (one for a scalar, one
    per position of an array, one per key of a map). A null statistic means
    the feature was null in every row. ``fill`` (any method) is the value a
    null becomes before it is normalised; files without it leave nulls to
    the normaliser, as they always did.
    """

    fmap_checksum: str
    stats: dict[str, dict[str, dict[str, list[float | None]]]] = field(default_factory=dict)

    def of(self, bucket: str, feature: str) -> dict[str, list[float | None]]:
        return self.stats.get(bucket, {}).get(feature, {})

    def to_dict(self) -> dict[str, Any]:
        body = {
            "format": NORMALIZERS_FORMAT,
            "fmap_checksum": self.fmap_checksum,
            "stats": self.stats,
        }
        body["checksum"] = _checksum(body)
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<normalizers>") -> Normalizers:
        body = {k: v for k, v in data.items() if k != "checksum"}
        if data.get("format") != NORMALIZERS_FORMAT:
            raise FmapError(
                f"{source}: format {data.get('format')!r}, expected {NORMALIZERS_FORMAT}"
            )
        if data.get("checksum") != _checksum(body):
            raise FmapError(
                f"{source}: checksum mismatch: the file was changed after it was written"
            )
        try:
            return cls(fmap_checksum=str(data["fmap_checksum"]), stats=dict(data["stats"]))
        except (KeyError, TypeError) as exc:
            raise FmapError(f"{source}: malformed normalizer statistics ({exc!r})") from None

    @classmethod
    def load(cls, femodel_uri: str, fmap: FeatureMap) -> Normalizers:
        """Read ``normalizers.json`` and check it was fitted with ``fmap``."""
        from dlflow_airflow.contract import storage

        uri = f"{femodel_uri}/{NORMALIZERS_FILE}"
        if not storage.exists(uri):
            raise FmapError(f"no normalizer statistics at {uri} (beside the fmap)")
        loaded = cls.from_dict(json.loads(storage.read_text(uri)), source=uri)
        if loaded.fmap_checksum != fmap.checksum:
            raise FmapError(
                f"{uri} belongs to fmap {loaded.fmap_checksum}, not to {fmap.checksum}; "
                "refit the femodel partition"
            )
        return loaded

    def save(self, femodel_uri: str) -> str:
        from dlflow_airflow.contract import storage

        uri = f"{femodel_uri}/{NORMALIZERS_FILE}"
        storage.write_text(uri, json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return uri


def _bucket_dict(b: Bucket) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": b.name,
        "method": b.method,
        "params": dict(b.params),
        "encode": b.encode,
        "nums": [_feature_dict(f) for f in b.nums],
        "ctgs": [_feature_dict(f) for f in b.ctgs],
    }
    if b.missing_indicators:  # absent otherwise: older fmaps keep their checksum
        d["missing_indicators"] = list(b.missing_indicators)
    return d


def _feature_dict(f: Feature) -> dict[str, Any]:
    d = asdict(f)
    d["shape"] = list(f.shape)
    return d


def _feature(d: dict[str, Any]) -> Feature:
    return Feature(
        name=d["name"],
        dtype=d["dtype"],
        size=int(d["size"]),
        offset=int(d["offset"]),
        meta=dict(d.get("meta", {})),
        encode=bool(d.get("encode", True)),
        shape=tuple(d.get("shape", (1,))),
    )


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
