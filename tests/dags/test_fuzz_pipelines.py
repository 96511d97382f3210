"""Fuzz the DAG folder: hostile mutations of the example pipelines, beside the good ones.

Each example writes one mutant of ``dags/pipelines/*.yaml`` (wrong types,
deleted, renamed and duplicated keys, YAML tags, aliases and alias bombs, deep
nesting, random unicode and bytes, hostile stage kinds) into a copy of the DAG
folder and loads it through Airflow's DagBag. Whatever the mutant, the good
DAGs all load, the only import error is the companion file's, and the mutant
either is a DAG or is named there (file first, no traceback); alone, it loads
within a memory budget. The time budget is the loader's own
(``FILE_TIME_BUDGET_SECONDS``): a slow file would become an error naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tracemalloc
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlflow_airflow.pipeline.errors import PipelineError
from dlflow_airflow.pipeline.loader import build_pipeline_dag, load_pipeline
from tests.conftest import DAG_FILES, DAGS_FOLDER

# Hypothesis keeps its caches (and a failing example's patch) outside the repository.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "dlflow-hypothesis")
)

EXAMPLES = sorted((DAGS_FOLDER / "pipelines").glob("*.yaml"))
MUTANT = "zz_mutant.yaml"  # sorts after the examples: a copied dag_id is the mutant's error
MUTANT_DAG_ID = "fuzz_mutant"
# Fixed and derandomized, so CI runs the same few hundred examples every time.
EXAMPLES_RUN = 300
# A mutant alone (read, validate, build) allocates well under 1 MiB; an alias bomb
# that got through would need gigabytes. 32 MiB separates the two with room to spare.
MEMORY_BUDGET_BYTES = 32 * 1024 * 1024

_TAGS = (
    "!!python/object:os.system",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary",
    "!!set",
    "!!omap",
    "!!map",
    "!!seq",
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!timestamp",
    "!custom",
    "!<tag:example.com,2026:x>",
)
_KINDS = (
    ":Export",
    ".stages:Export",
    "tests.dlflow_airflow.user_stages:",
    "tests.dlflow_airflow.user_stages:NotAKind",
    "tests.dlflow_airflow.user_stages:Export",
    "os:system",
    "json:loads",
    "no_such_pkg_fuzz.mod:Kind",
    "::",
    "",
)
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**40),
    st.floats(),
    _text,
    st.text(min_size=100, max_size=300),  # past Airflow's limits (a tag: 100 characters)
    st.dates(),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(_text, _scalars, max_size=3),
    st.sampled_from(_KINDS),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path (dict keys and list indexes) of a parsed document."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    found = []
    for key, value in items:
        found.append((*prefix, key))
        if isinstance(value, dict | list) and value:
            found.extend(_paths(value, (*prefix, key)))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _mutate_data(data: st.DataObject, doc: dict) -> None:
    """A wrong type, a deleted or renamed key, or an unknown key, somewhere in ``doc``."""
    path = data.draw(st.sampled_from(_paths(doc)))
    parent, key = _parent(doc, path), path[-1]
    action = data.draw(st.sampled_from(("set", "delete", "rename", "add")))
    if action == "set":
        parent[key] = data.draw(_values)
    elif action == "delete":
        del parent[key]
    elif isinstance(parent, dict) and action == "rename":
        parent[data.draw(_text)] = parent.pop(key)
    elif isinstance(parent, dict):
        parent[data.draw(_text)] = data.draw(_values)


def _bomb(levels: int, fanout: int) -> str:
    """Nested aliases: ``fanout ** levels`` values written in a few hundred bytes."""
    parts = [f"&b0 [{', '.join('x' * fanout)}]"]
    for level in range(1, levels):
        parts.append(f"&b{level} [{', '.join([f'*b{level - 1}'] * fanout)}]")
    return "[" + ", ".join(parts) + "]"


def _value_line(data: st.DataObject, lines: list[str]) -> int:
    """The index of a ``key: value`` line (one exists in every example)."""
    candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w.]+: \S", line)]
    return data.draw(st.sampled_from(candidates))


def _replace_value(lines: list[str], index: int, value: str) -> None:
    key, _, _ = lines[index].partition(": ")
    lines[index] = f"{key}: {value}"


def _mutate_text(data: st.DataObject, text: str) -> str | bytes:
    """A text-level mutation: tags, aliases, nesting, duplicated lines, unicode or bytes."""
    lines = text.splitlines()
    action = data.draw(
        st.sampled_from(
            ("tag", "alias", "bomb", "nest", "listkey", "kind", "dup", "drop", "unicode", "bytes")
        )
    )
    if action == "tag":
        i = _value_line(data, lines)
        key, _, value = lines[i].partition(": ")
        lines[i] = f"{key}: {data.draw(st.sampled_from(_TAGS))} {value}"
    elif action == "alias":
        i, j = _value_line(data, lines), _value_line(data, lines)
        key, _, value = lines[i].partition(": ")
        lines[i] = f"{key}: &fz {value}"
        _replace_value(lines, j, data.draw(st.sampled_from(("*fz", "*nowhere", "&fz *fz"))))
    elif action == "bomb":
        levels = data.draw(st.integers(2, 9))
        fanout = data.draw(st.integers(2, 9))
        _replace_value(lines, _value_line(data, lines), _bomb(levels, fanout))
    elif action == "nest":
        depth = data.draw(st.integers(1, 1200))
        _replace_value(lines, _value_line(data, lines), "[" * depth + "1" + "]" * depth)
    elif action == "listkey":  # at the indentation of the line it goes before
        i = data.draw(st.integers(0, len(lines) - 1))
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip(" -"))].replace("-", " ")
        lines.insert(i, f"{indent}? [a, b]\n{indent}: 1")
    elif action == "kind":
        kind = data.draw(st.sampled_from(_KINDS))
        lines.append(f"  fuzz_stage: {{kind: {kind!r}}}")
    elif action in ("dup", "drop"):
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i : i + 1] = [lines[i], lines[i]] if action == "dup" else []
    else:
        return _insert_noise(data, "\n".join(lines) + "\n", action)
    return "\n".join(lines) + "\n"


def _insert_noise(data: st.DataObject, text: str, action: str) -> str | bytes:
    """Random unicode (control characters included) or raw bytes at a random place."""
    at = data.draw(st.integers(0, len(text)))
    if action == "unicode":
        noise = data.draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1))
        return text[:at] + noise + text[at:]
    raw = text.encode()
    return raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]


@st.composite
def mutants(draw: st.DrawFn) -> str | bytes:
    """An example pipeline under its own dag_id, mutated one to three times."""
    data = draw(st.data())
    doc = yaml.safe_load(draw(st.sampled_from(EXAMPLES)).read_text())
    doc["dag_id"] = MUTANT_DAG_ID
    for _ in range(draw(st.integers(0, 2))):
        _mutate_data(data, doc)
    text: str | bytes = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()) and isinstance(text, str):
        text = _mutate_text(data, text)
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the DAG folder; the examples are loaded once so imports are warm."""
    root = tmp_path_factory.mktemp("fuzz") / "dags"
    shutil.copytree(DAGS_FOLDER / "pipelines", root / "pipelines")  # with the bases (common/)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, root)
    for example in EXAMPLES:
        build_pipeline_dag(load_pipeline(example), register=False)
    return root


@pytest.fixture(scope="module")
def good_dag_ids() -> set[str]:
    return {yaml.safe_load(example.read_text())["dag_id"] for example in EXAMPLES}


@settings(
    max_examples=EXAMPLES_RUN,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=mutants())
def test_a_mutant_never_takes_the_folder_down(folder: Path, good_dag_ids: set[str], text) -> None:
    from airflow.dag_processing.dagbag import DagBag

    mutant = folder / "pipelines" / MUTANT
    (mutant.write_bytes if isinstance(text, bytes) else mutant.write_text)(text)
    try:
        _check_alone_within_memory(mutant)
        bag = DagBag(dag_folder=str(folder))
    finally:
        mutant.unlink()
    assert good_dag_ids <= set(bag.dag_ids)
    errors = [msg for path, msg in bag.import_errors.items() if "dlflow_pipeline_errors" in path]
    assert len(errors) == len(bag.import_errors), bag.import_errors
    named = _mutant_lines(errors, mutant)
    extra = set(bag.dag_ids) - good_dag_ids
    assert bool(named) != bool(extra), (named, extra)
    if extra:
        _check_serializes(bag.dags[extra.pop()])


def _check_alone_within_memory(mutant: Path) -> None:
    tracemalloc.start()
    try:
        with suppress(PipelineError):
            build_pipeline_dag(load_pipeline(mutant), register=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET_BYTES


def _mutant_lines(errors: list[str], mutant: Path) -> list[str]:
    """The lines of the companion's import error about the mutant; there are no others."""
    if not errors:
        return []
    (message,) = errors
    header = "1 pipeline file(s) could not be loaded:\n"
    assert header in message, message
    body = message.split(header, 1)[1]
    assert "Traceback" not in body
    lines = body.strip().splitlines()
    assert all(line.startswith(f"{mutant}: ") for line in lines), lines
    return lines


def _check_serializes(dag) -> None:
    """The dag-processor serializes each DAG; a mutant that loads must survive that too."""
    from airflow.serialization.serialized_objects import DagSerialization

    DagSerialization.to_dict(dag)
