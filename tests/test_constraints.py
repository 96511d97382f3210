"""One constraints file per supported Python, kept in step (scripts/constraints.sh)."""

from __future__ import annotations

import re
import sys
import tomllib

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.conftest import REPO

FOLDER = REPO / "constraints"
REGENERATE = "regenerate them: bash scripts/constraints.sh"


def _versions() -> list[str]:
    found = [re.fullmatch(r"constraints-(3\.\d+)\.txt", p.name) for p in FOLDER.iterdir()]
    return sorted((m.group(1) for m in found if m), key=lambda v: int(v.split(".")[1]))


def _pins(name: str) -> dict[str, str]:
    lines = (FOLDER / name).read_text().splitlines()
    pairs = [line.split("==", 1) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(package): version.strip() for package, version in pairs}


def test_requires_python_is_the_versions_with_constraints():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    spec = SpecifierSet(project["requires-python"])
    versions = _versions()
    assert versions, "no constraints/constraints-3.X.txt"
    minors = [int(v.split(".")[1]) for v in versions]
    assert minors == list(range(minors[0], minors[-1] + 1)), versions
    assert all(spec.contains(f"{v}.0") for v in versions), (spec, versions)
    assert not spec.contains(f"3.{minors[0] - 1}.0") and not spec.contains(f"3.{minors[-1] + 1}.0")
    classifiers = {c for c in project["classifiers"] if c.startswith("Programming Language")}
    assert classifiers == {f"Programming Language :: Python :: {v}" for v in versions}


def test_the_running_python_has_its_constraints():
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in _versions()


def test_constraints_txt_is_the_311_file():
    # Docker, the docs and older checkouts name constraints.txt.
    assert (FOLDER / "constraints-3.11.txt").resolve() == (REPO / "constraints.txt").resolve()


def test_every_file_pins_every_package_of_the_others():
    pins = {v: _pins(f"constraints-{v}.txt") for v in _versions()}
    # A few packages exist for some Pythons only (e.g. pyyaml-ft, a backport for 3.13).
    version_specific = {"pyyaml-ft"}
    every = set().union(*pins.values()) - version_specific
    missing = {v: sorted(every - set(p)) for v, p in pins.items() if every - set(p)}
    assert not missing, f"packages pinned for some Pythons only: {missing}; {REGENERATE}"
