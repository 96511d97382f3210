"""``extends:``: how bases merge, and each way a base can be wrong, as one line at ``extends``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from dlflow_airflow.pipeline import extends
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.extends import read_pipeline
from dlflow_airflow.pipeline.loader import broken_pipelines, format_error, scan
from dlflow_airflow.pipeline.spec import load_spec, parse_spec
from tests.dlflow_airflow.pipelines import base_pipeline


def _write(folder: Path, name: str, doc: dict | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def _base() -> dict:
    """A pipeline without its dag_id, start_date and model stages: a base."""
    doc = base_pipeline()
    for key in ("dag_id", "start_date"):
        del doc[key]
    doc["stages"] = {"merge": doc["stages"]["merge"], "encode": {}}
    return doc


def _error(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        Pipeline.from_file(path)
    (line,) = format_error(caught.value).splitlines()
    return line


def test_a_file_on_a_base_equals_the_file_written_out(tmp_path: Path):
    _write(tmp_path, "common/base.yaml", _base())
    train = _write(
        tmp_path,
        "train.yaml",
        {
            "extends": "common/base.yaml",
            "dag_id": "t_train",
            "start_date": "2026-01-01",
            "stages": {"train": {}, "evaluate": {}},
        },
    )
    flat = base_pipeline()
    flat["dag_id"] = "t_train"
    del flat["stages"]["predict"]
    assert load_spec(train) == parse_spec(flat, "flat.yaml")
    assert list(Pipeline.from_file(train).spec.stages) == ["merge", "encode", "train", "evaluate"]


def test_mappings_merge_lists_and_values_replace_own_keys_win(tmp_path: Path):
    _write(
        tmp_path,
        "a.yaml",
        {
            "model": {"tag": "a", "params": {"hidden_units": [64, 32], "epochs": 4}},
            "tags": ["a", "b"],
            "stages": {"merge": {"seed": {"path": "x"}, "pool": "spark"}, "encode": {}},
        },
    )
    _write(tmp_path, "b.yaml", {"model": {"params": {"epochs": 2}}, "tags": ["b"]})
    top = _write(
        tmp_path,
        "top.yaml",
        {
            "extends": ["a.yaml", "b.yaml"],  # in order: b on a, then the file itself
            "model": {"params": {"hidden_units": [8]}},
            "stages": {"merge": {"pool": None}, "encode": {"tfrecord": True}},
        },
    )
    data = read_pipeline(top).data
    assert data == {
        "model": {"tag": "a", "params": {"hidden_units": [8], "epochs": 2}},
        "tags": ["b"],
        "stages": {"merge": {"seed": {"path": "x"}, "pool": None}, "encode": {"tfrecord": True}},
    }


def test_a_base_of_a_base_is_relative_to_its_own_file(tmp_path: Path):
    _write(tmp_path, "common/root.yaml", {"tags": ["root"], "description": "root"})
    _write(tmp_path, "common/team/mid.yaml", {"extends": "../root.yaml", "tags": ["mid"]})
    top = _write(tmp_path, "p.yaml", {"extends": "common/team/mid.yaml", "dag_id": "x"})
    assert read_pipeline(top).data == {"tags": ["mid"], "description": "root", "dag_id": "x"}


def test_a_diamond_is_no_cycle(tmp_path: Path):
    _write(tmp_path, "d.yaml", {"tags": ["d"]})
    _write(tmp_path, "b.yaml", {"extends": "d.yaml", "description": "b"})
    _write(tmp_path, "c.yaml", {"extends": "d.yaml"})
    top = _write(tmp_path, "p.yaml", {"extends": ["b.yaml", "c.yaml"]})
    assert read_pipeline(top).data == {"tags": ["d"], "description": "b"}


def test_an_issue_at_an_inherited_key_names_the_base(tmp_path: Path):
    base = _base()
    base["buckets"]["user"]["method"] = "minmaxx"
    _write(tmp_path, "common/base.yaml", base)
    doc = {"extends": "common/base.yaml", "dag_id": "t", "start_date": "2026-01-01"}
    doc["max_active_runs"] = 0
    with pytest.raises(SpecError) as caught:
        Pipeline.from_file(_write(tmp_path, "p.yaml", doc))
    lines = format_error(caught.value).splitlines()
    (inherited,) = [line for line in lines if "buckets.user.method" in line]
    assert inherited.endswith("(set in common/base.yaml)"), inherited
    (own,) = [line for line in lines if "max_active_runs" in line]
    assert "set in" not in own


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, "extends: expected a file path or a list of them, got 3"),
        ([], "extends: expected a file path or a list of them, got []"),
        ("", "extends: expected a file path or a list of them, got ''"),
        ("missing.yaml", "extends: 'missing.yaml': not found"),
        ("/etc/passwd", "extends: '/etc/passwd': a base is a path relative to the file"),
        ("../outside.yaml", "extends: '../outside.yaml' is outside"),
        ("common", "extends: 'common': not a file"),
        ("a\0b.yaml", "extends: 'a\\x00b.yaml': not a usable path: embedded null byte"),
        ("p.yaml", "extends: a cycle: p.yaml -> p.yaml"),
    ],
)
def test_each_wrong_extends_is_one_line_at_extends(tmp_path: Path, value, expected):
    folder = tmp_path / "pipelines"
    _write(folder, "common/base.yaml", _base())
    _write(tmp_path, "outside.yaml", _base())
    line = _error(_write(folder, "p.yaml", {"extends": value, "dag_id": "t"}))
    assert line.startswith(f"{folder / 'p.yaml'}: {expected}"), line


def test_a_cycle_through_bases_is_named(tmp_path: Path):
    _write(tmp_path, "common/a.yaml", {"extends": "b.yaml"})
    _write(tmp_path, "common/b.yaml", {"extends": "a.yaml"})
    line = _error(_write(tmp_path, "p.yaml", {"extends": "common/a.yaml"}))
    chain = "p.yaml -> common/a.yaml -> common/b.yaml -> common/a.yaml"
    assert line.endswith(f"extends: a cycle: {chain}")


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path):
    secret = _write(tmp_path, "secret.yaml", _base())
    folder = tmp_path / "pipelines"
    (folder / "common").mkdir(parents=True)
    os.symlink(secret, folder / "common" / "base.yaml")
    os.symlink(tmp_path, folder / "up")
    for name in ("common/base.yaml", "up/secret.yaml"):
        line = _error(_write(folder, "p.yaml", {"extends": name}))
        assert f"extends: {name!r} is outside {folder} (through a symlink)" in line, line
    os.symlink(folder / "common" / "loop", folder / "common" / "loop")
    line = _error(_write(folder, "p.yaml", {"extends": "common/loop"}))
    assert "extends: 'common/loop': " in line


def test_a_symlink_inside_the_folder_is_followed(tmp_path: Path):
    _write(tmp_path, "common/real.yaml", {"tags": ["real"]})
    os.symlink(tmp_path / "common" / "real.yaml", tmp_path / "common" / "alias.yaml")
    top = _write(tmp_path, "p.yaml", {"extends": "common/alias.yaml"})
    assert read_pipeline(top).data == {"tags": ["real"]}


def test_a_chain_too_long_and_too_many_bases_are_refused(tmp_path: Path):
    for i in range(extends.MAX_CHAIN):
        _write(tmp_path, f"c/b{i}.yaml", {"extends": f"b{i + 1}.yaml"})
    _write(tmp_path, f"c/b{extends.MAX_CHAIN}.yaml", {"tags": ["end"]})
    line = _error(_write(tmp_path, "p.yaml", {"extends": "c/b0.yaml"}))
    assert f"extends: more than {extends.MAX_CHAIN} files in a chain of bases: p.yaml -> " in line
    names = [f"c/b{extends.MAX_CHAIN}.yaml"] * (extends.MAX_BASES + 1)
    line = _error(_write(tmp_path, "p.yaml", {"extends": names}))
    assert f"extends: more than {extends.MAX_BASES} base files in all" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags: [unclosed\n", "common/base.yaml: line 2, column 1: invalid YAML: "),
        ("a: 1\na: 2\n", "common/base.yaml: line 2, column 1: duplicate key 'a'"),
        ("x: !!python/object:os.system {}\n", "common/base.yaml: line 1, column 4: "),
        ("- a\n", "common/base.yaml: expected a mapping of pipeline keys, got list"),
        ("", "common/base.yaml: expected a mapping of pipeline keys, got an empty file"),
        ("x: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
        ("extends: 7\n", "expected a file path or a list of them (in common/base.yaml), got 7"),
    ],
)
def test_a_broken_base_is_the_extending_files_error(tmp_path: Path, text, expected):
    _write(tmp_path, "common/base.yaml", text)
    line = _error(_write(tmp_path, "p.yaml", {"extends": "common/base.yaml"}))
    assert line.startswith(f"{tmp_path / 'p.yaml'}: extends: "), line
    assert expected in line, line


def test_bases_are_bounded_like_files_and_so_is_their_merge(tmp_path: Path, monkeypatch):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abc", "bcd", strict=True)
    )
    _write(tmp_path, "common/bomb.yaml", bomb)
    line = _error(_write(tmp_path, "p.yaml", {"extends": "common/bomb.yaml"}))
    assert "common/bomb.yaml: line 4, column 36: more than 10000 values" in line, line
    monkeypatch.setattr(extends, "MAX_NODES", 30)
    _write(tmp_path, "common/b1.yaml", {"tags": [str(i) for i in range(20)]})
    _write(tmp_path, "common/b2.yaml", {"external": [str(i) for i in range(20)]})
    line = _error(_write(tmp_path, "p.yaml", {"extends": ["common/b1.yaml", "common/b2.yaml"]}))
    assert line.endswith("extends: more than 30 values once merged with its bases (the limit)")


def test_the_folder_loader_never_loads_a_base_and_a_broken_one_breaks_its_files_only(
    tmp_path: Path,
):
    _write(tmp_path, "common/good.yaml", _base())
    _write(tmp_path, "common/broken.yaml", "feature: [unclosed\n")
    for name, base in [("a", "good"), ("b", "broken"), ("c", "broken")]:
        doc = {"extends": f"common/{base}.yaml", "dag_id": f"t_{name}", "start_date": "2026-01-01"}
        _write(tmp_path, f"{name}.yaml", doc)
    found = scan(tmp_path)
    assert list(found.pipelines) == ["t_a"]
    assert [line.split(": extends: ")[0] for line in found.errors] == [
        str(tmp_path / "b.yaml"),
        str(tmp_path / "c.yaml"),
    ]
    assert all("common/broken.yaml: line 2, column 1: invalid YAML" in e for e in found.errors)
    assert broken_pipelines(tmp_path) == found.errors


def test_a_base_in_the_pipelines_folder_itself_is_told_where_it_belongs(tmp_path: Path):
    _write(tmp_path, "base.yaml", _base())
    (error,) = scan(tmp_path).errors
    assert "dag_id: required key is missing; a base for 'extends' belongs in a subfolder" in error


def test_extends_in_data_handed_over_directly_is_refused():
    doc = base_pipeline() | {"extends": "common/base.yaml"}
    with pytest.raises(SpecError, match="p.yaml: extends: a base file is read only from a"):
        Pipeline.from_data(doc, source="p.yaml")
