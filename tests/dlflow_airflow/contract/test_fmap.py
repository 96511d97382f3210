from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlflow_airflow.contract.fmap import (
    Bucket,
    Feature,
    FeatureMap,
    FmapError,
    IdLayout,
    Normalizers,
    _checksum,
)

FMAP = FeatureMap(
    feature_tag="ctr",
    model_date="2026-01-01",
    primary_keys=("uid",),
    labels=("label",),
    buckets=(
        Bucket(
            "user",
            "zscore",
            nums=(Feature("vec", "array<double>", 2, 0, shape=(2,)),),
            ctgs=(Feature("city", "string", 4, 0, {"vocab": ["a", "b"]}),),
            params={"with_std": False},
        ),
    ),
)


def test_round_trip_and_api(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}"
    FMAP.save(uri)
    loaded = FeatureMap.load(uri)
    assert loaded == FMAP and loaded.checksum == FMAP.checksum
    user = loaded.bucket("user")
    assert list(user.fields) == ["nums", "ctgs"] and user.params == {"with_std": False}
    assert (user.nums_width, user.ctgs_width, user.ctgs_vocab_size) == (2, 1, 4)
    assert loaded.format == 2 and loaded.id_layout == IdLayout(unseen=0, null=1, first=2)
    assert loaded.feature("vec").shape == (2,) and loaded.input_columns() == [
        "user_nums",
        "user_ctgs",
    ]
    stats = Normalizers(FMAP.checksum, {"user": {"vec": {"mean": [1.0, 2.0], "std": [1, 1]}}})
    stats.save(uri)
    assert Normalizers.load(uri, FMAP).of("user", "vec")["mean"] == [1.0, 2.0]


def test_tampering_and_foreign_statistics_are_refused(tmp_path: Path) -> None:
    data = FMAP.to_dict()
    data["buckets"][0]["method"] = "minmax"
    with pytest.raises(FmapError, match="checksum mismatch"):
        FeatureMap.from_dict(data, source="x.json")
    Normalizers("sha256:other").save(f"file://{tmp_path}")
    with pytest.raises(FmapError, match="belongs to fmap sha256:other"):
        Normalizers.load(f"file://{tmp_path}", FMAP)


def _signed(body: dict) -> dict:
    return {**body, "checksum": _checksum(body)}


def test_format_1_is_read_with_its_shared_null_id_and_others_refused() -> None:
    body = {k: v for k, v in FMAP.to_dict().items() if k != "checksum"}
    body["format"] = 1
    body["buckets"][0]["ctgs"][0]["size"] = 3  # format 1: vocab + one reserved id
    old = FeatureMap.from_dict(_signed(body))
    assert old.id_layout == IdLayout(unseen=0, null=0, first=1)
    assert old.bucket("user").ctgs_vocab_size == 3
    assert old.to_dict()["checksum"] == _signed(body)["checksum"]  # its statistics still match
    with pytest.raises(FmapError, match=r"x.json: format 3, this version reads formats 1, 2"):
        FeatureMap.from_dict(_signed({**body, "format": 3}), source="x.json")


# fmap.json and normalizers.json as version 0.2.0 wrote them (before feature names could
# hold spaces and dots in a bucket; the default bucket already took such columns).
OLD_FMAP_JSON = (
    '{"buckets":[{"ctgs":[{"dtype":"string","encode":true,"meta":{"vocab":["bj","sh"]},'
    '"name":"city","offset":0,"shape":[1],"size":4}],"encode":true,"method":"minmax",'
    '"name":"user","nums":[{"dtype":"bigint","encode":true,"meta":{},"name":"age",'
    '"offset":0,"shape":[1],"size":1}],"params":{}},{"ctgs":[],"encode":true,'
    '"method":"zscore","name":"default","nums":[{"dtype":"double","encode":true,"meta":{},'
    '"name":"mean radius","offset":0,"shape":[1],"size":1}],"params":{"with_std":true}}],'
    '"checksum":"sha256:1a6d0fc66f60b9d4244484bd0e53d670a1a7e05c6d0a898326d45711e5c6db5b",'
    '"feature_tag":"ctr","format":2,"labels":["label"],"model_date":"2025-06-01",'
    '"primary_keys":["uid"]}'
)
OLD_NORMALIZERS_JSON = (
    '{"checksum":"sha256:28f702fb13226f5a36340583bda7d36f1bea6095061c5244394282d2e3644101",'
    '"fmap_checksum":"sha256:1a6d0fc66f60b9d4244484bd0e53d670a1a7e05c6d0a898326d45711e5c6db5b",'
    '"format":1,"stats":{"default":{"mean radius":{"mean":[14.1],"std":[3.5]}},'
    '"user":{"age":{"max":[90.0],"min":[18.0]}}}}'
)


def test_an_fmap_written_before_loads_and_encodes_as_it_did(tmp_path: Path) -> None:
    femodel = f"file://{tmp_path}"
    (tmp_path / "fmap.json").write_text(OLD_FMAP_JSON)
    (tmp_path / "normalizers.json").write_text(OLD_NORMALIZERS_JSON)
    fmap = FeatureMap.load(femodel)
    assert fmap.to_dict() == json.loads(OLD_FMAP_JSON)  # same document, same checksum
    assert fmap.format == 2 and fmap.id_layout == IdLayout(unseen=0, null=1, first=2)
    assert fmap.input_columns() == ["user_nums", "user_ctgs", "default_nums"]
    radius = fmap.feature("mean radius")
    assert (radius.offset, radius.size, radius.shape) == (0, 1, (1,))
    assert fmap.bucket("user").ctgs_vocab_size == 4
    stats = Normalizers.load(femodel, fmap)  # still belongs to the fmap
    assert stats.of("default", "mean radius") == {"mean": [14.1], "std": [3.5]}


def test_missing_indicators_widen_the_bucket_and_only_then_appear_in_the_file() -> None:
    import dataclasses

    assert "missing_indicators" not in FMAP.to_dict()["buckets"][0]  # older fmaps keep checksums
    user = dataclasses.replace(FMAP.buckets[0], missing_indicators=("vec",))
    fmap = dataclasses.replace(FMAP, buckets=(user,))
    assert user.nums_width == FMAP.buckets[0].nums_width + 1 and user.indicator_offset == 2
    document = fmap.to_dict()
    assert document["buckets"][0]["missing_indicators"] == ["vec"]
    assert document["checksum"] != FMAP.checksum
    assert FeatureMap.from_dict(document) == fmap
