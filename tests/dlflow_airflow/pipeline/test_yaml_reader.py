"""The YAML reader: safe, and bounded in size, alias expansion and nesting depth."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlflow_airflow.pipeline import yaml_reader
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.yaml_reader import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, read_yaml
from tests.conftest import DAGS_FOLDER


def _read(tmp_path: Path, text: str | bytes) -> object:
    path = tmp_path / "pipe.yaml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return read_yaml(path)


def _refused(tmp_path: Path, text: str | bytes, match: str) -> SpecError:
    with pytest.raises(SpecError, match=match) as info:
        _read(tmp_path, text)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{tmp_path / 'pipe.yaml'}: ")
    return info.value


def _bomb(levels: int = 9, fanout: int = 9) -> str:
    """``fanout ** levels`` values (387 million here) in a few hundred bytes."""
    parts = [f"&b0 [{', '.join('x' * fanout)}]"]
    for level in range(1, levels):
        parts.append(f"&b{level} [{', '.join([f'*b{level - 1}'] * fanout)}]")
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("example", sorted((DAGS_FOLDER / "pipelines").glob("*.yaml")))
def test_examples_read_as_plain_yaml(example: Path):
    assert read_yaml(example) == yaml.safe_load(example.read_text())


def test_a_file_at_the_size_limit_is_read_one_byte_more_is_not(tmp_path: Path):
    assert _read(tmp_path, "#" * (MAX_FILE_BYTES - 1) + "\n") is None
    _refused(tmp_path, "#" * MAX_FILE_BYTES + "\n", f"larger than {MAX_FILE_BYTES} bytes")


def test_an_alias_bomb_is_refused_unexpanded(tmp_path: Path):
    bomb = _bomb()
    assert len(bomb) < 1024
    error = _refused(
        tmp_path, f"model:\n  params: {{layers: {bomb}}}\n", "once aliases are expanded"
    )
    assert error.issues[0].path.startswith("line 2, column ")


def test_aliases_count_as_what_they_stand_for(tmp_path: Path):
    # mapping + key "a" + list + its items, then key "b" + the alias (the list again)
    items = (MAX_NODES - 5) // 2
    text = f"a: &x [{', '.join(['1'] * items)}]\nb: *x\n"
    assert _read(tmp_path, text)["b"] == [1] * items
    _refused(tmp_path, text + "c: 1\n", f"more than {MAX_NODES} values")


def test_many_values_without_aliases_are_bounded_too(tmp_path: Path):
    _refused(tmp_path, f"a: [{', '.join(['1'] * MAX_NODES)}]\n", f"more than {MAX_NODES} values")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path):
    _refused(tmp_path, "a: &x [1, *x]\n", r"alias \*x stands for a value that contains it")
    _refused(tmp_path, "a: &x {b: *x}\n", r"alias \*x stands for a value that contains it")


def test_nesting_is_bounded(tmp_path: Path):
    def nested(depth: int) -> str:
        return "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"

    assert _read(tmp_path, nested(MAX_DEPTH))
    _refused(tmp_path, nested(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels deep")
    _refused(tmp_path, nested(5000), "nested|nesting")  # libyaml stops at 1000 levels itself


def test_nesting_through_an_alias_counts(tmp_path: Path):
    half = MAX_DEPTH // 2 + 1
    text = f"a: &x {'[' * half}{']' * half}\nb: {'[' * half}*x{']' * half}\n"
    _refused(tmp_path, text, f"nested more than {MAX_DEPTH} levels deep")


def test_the_pure_python_parser_is_bounded_the_same_way(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(yaml_reader, "_SafeBase", yaml.SafeLoader)
    _refused(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than")
    _refused(tmp_path, f"a: {_bomb()}\n", "once aliases are expanded")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("? [a, b]\n: 1\n", "line 1, column 3: a key must be a plain value, not a list"),
        ("? {a: 1}\n: 1\n", "line 1, column 3: a key must be a plain value, not a dict"),
        ("a: &x {p: 1}\nb: {<<: *x}\n", r"line 2, column 5: merge keys \(<<\) are not supported"),
        ("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key 'a'"),
        ("a: !!int abc\n", "line 1, column 4: not a valid !!int value 'abc'"),
        ("start_date: 2026-13-01\n", "line 1, column 13: not a valid !!timestamp value"),
        ("a: !!map [1]\n", "line 1, column 4: expected a mapping, found a sequence"),
        ("a: !!python/object/apply:os.system ['true']\n", "invalid YAML: could not determine"),
        ("a: !!python/name:os.system x\n", "invalid YAML: could not determine"),
        ("a: *nowhere\n", "line 1, column 4: invalid YAML: found undefined alias"),
        ("a: 1\n---\nb: 2\n", "expected a single document in the stream, but found another"),
        ("a: \x00\n", "character 4: invalid YAML: unacceptable character"),
        (b"a: \xff\xfe\n", "not UTF-8 text: invalid start byte at byte 3"),
    ],
)
def test_valid_yaml_that_cannot_be_a_pipeline_is_refused_at_its_line(tmp_path, text, match):
    _refused(tmp_path, text, match)


def test_an_unreadable_path_is_an_error(tmp_path: Path):
    with pytest.raises(SpecError, match="cannot read the file"):
        read_yaml(tmp_path / "missing.yaml")
