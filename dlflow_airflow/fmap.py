"""The feature map (fmap): how raw columns become model inputs.

Shared by the Spark encode job (which fits and writes it) and the TensorFlow
jobs (which read it to build model inputs). Pure Python: no numpy here.

Features are grouped into *buckets*; inside a bucket, numeric features form
one float vector ``<bucket>_nums`` and categorical features one int vector
``<bucket>_ctgs``. Each categorical feature owns the id range
``[offset, offset + size)`` of its bucket, with id ``offset + 0`` reserved
for unseen values and nulls, so one embedding table of
``bucket.ctgs_vocab_size`` rows serves the whole bucket.

Example::

    fmap = FeatureMap.load("file:///ws/femodel/TAG=ctr_v1/dt=2026-01-01/fmap.json")
    for bucket in fmap.buckets:
        print(bucket.nums_column, bucket.nums_width, bucket.ctgs_column, bucket.ctgs_vocab_size)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

FMAP_FILE = "fmap.json"
FORMAT_VERSION = 1
UNSEEN_INDEX = 0


class FmapError(ValueError):
    """An fmap file is malformed or does not fit the data it is used with."""


@dataclass(frozen=True)
class Feature:
    """One raw column inside a bucket field.

    :param name: the raw column name.
    :param dtype: the raw Spark type name (``double``, ``string``...).
    :param size: width in the bucket vector (numerics) or vocabulary size
        including the reserved unseen index (categoricals).
    :param offset: start inside the bucket vector (numerics) or the bucket's
        id space (categoricals).
    :param meta: fitted facts: ``min``/``max`` for numerics, ``vocab`` for
        categoricals (index ``i + 1`` is ``vocab[i]``).
    :param encode: whether the value is transformed (False: passed as is).
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
    """A group of features that share one numeric vector and one id space."""

    name: str
    method: str
    nums: tuple[Feature, ...] = ()
    ctgs: tuple[Feature, ...] = ()

    @property
    def nums_column(self) -> str:
        return f"{self.name}_nums"

    @property
    def ctgs_column(self) -> str:
        return f"{self.name}_ctgs"

    @property
    def nums_width(self) -> int:
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

    @property
    def features(self) -> tuple[Feature, ...]:
        return tuple(f for b in self.buckets for f in (*b.nums, *b.ctgs))

    def bucket(self, name: str) -> Bucket:
        for bucket in self.buckets:
            if bucket.name == name:
                return bucket
        raise KeyError(f"no bucket {name!r}; buckets: {[b.name for b in self.buckets]}")

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
            "format": FORMAT_VERSION,
            "feature_tag": self.feature_tag,
            "model_date": self.model_date,
            "primary_keys": list(self.primary_keys),
            "labels": list(self.labels),
            "buckets": [
                {
                    "name": b.name,
                    "method": b.method,
                    "nums": [_feature_dict(f) for f in b.nums],
                    "ctgs": [_feature_dict(f) for f in b.ctgs],
                }
                for b in self.buckets
            ],
        }
        body["checksum"] = _checksum(body)
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @property
    def checksum(self) -> str:
        return self.to_dict()["checksum"]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<fmap>") -> FeatureMap:
        try:
            if data.get("format") != FORMAT_VERSION:
                raise FmapError(f"format {data.get('format')!r}, expected {FORMAT_VERSION}")
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
                )
                for b in data["buckets"]
            )
            return cls(
                feature_tag=data["feature_tag"],
                model_date=data["model_date"],
                primary_keys=tuple(data["primary_keys"]),
                labels=tuple(data["labels"]),
                buckets=buckets,
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
        from dlflow_airflow import storage

        uri = femodel_uri if femodel_uri.endswith(".json") else f"{femodel_uri}/{FMAP_FILE}"
        if not storage.exists(uri):
            raise FmapError(f"no fmap at {uri}")
        return cls.from_json(storage.read_text(uri), source=uri)

    def save(self, femodel_uri: str) -> str:
        from dlflow_airflow import storage

        uri = f"{femodel_uri}/{FMAP_FILE}"
        storage.write_text(uri, self.to_json())
        return uri


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
