"""DLFlow's ``BUCKET { ... }`` block as our ``buckets``."""

from __future__ import annotations

import re

from dlflow_airflow.contract.schema import BUCKET_PARAMS
from dlflow_airflow.devtools.convert.context import Json, Key, Source, identifier

OUR_PARAMS = frozenset(name for params in BUCKET_PARAMS.values() for name in params)
"""Every normaliser parameter we know; DLFlow spells the same ones in camelCase."""


def our_param(name: str) -> str:
    """DLFlow's parameter name in our spelling: ``withMean`` -> ``with_mean``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def convert_buckets(src: Source, raw: Json) -> Json:
    buckets: Json = {}
    for name, spec in raw.items():
        if isinstance(spec, dict):
            buckets[bucket_name(src, name)] = convert_bucket(src, name, spec)
        else:
            src.unmapped(("BUCKET", name), f"expected an object, got {spec!r}; left out")
    return buckets


def bucket_name(src: Source, name: str) -> str:
    ours = identifier(name, fallback="bucket")
    if ours != name:
        src.note(("BUCKET", name), f"bucket {name!r} is named {ours!r} here")
    return ours


def convert_bucket(src: Source, name: str, spec: Json) -> Json:
    """``features``, ``is_encode``, ``method`` and ``param``; DLFlow's defaults are ours."""
    bucket: Json = {}
    for field_name, value in spec.items():
        key = ("BUCKET", name, field_name)
        if field_name == "features":
            bucket["features"] = [str(f) for f in value]
        elif field_name == "is_encode":
            bucket["encode"] = bool(value)
        elif field_name == "method":
            bucket["method"] = str(value).lower()
        elif field_name == "param":
            bucket["params"] = bucket_params(src, value or {}, key)
        else:
            src.unmapped(key, "not a DLFlow bucket key (features, is_encode, method, param)")
    return bucket


def bucket_params(src: Source, raw: Json, key: Key) -> Json:
    params: Json = {}
    for name, value in raw.items():
        if our_param(name) in OUR_PARAMS:
            params[our_param(name)] = value
        else:
            src.unmapped((*key, name), f"unknown normaliser parameter {name!r}")
    return params
