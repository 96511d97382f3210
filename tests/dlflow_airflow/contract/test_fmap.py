from __future__ import annotations

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
