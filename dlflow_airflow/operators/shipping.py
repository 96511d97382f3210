"""Ship the project's Python code to Spark executors as one ``--py-files`` zip.

Executors on a real cluster (YARN, Kubernetes, standalone) do not have this
project installed. The Spark operators therefore zip the packages a job
imports on executors (:data:`PROJECT_PACKAGES`, plus e.g. a user's model
module) and pass the zip with ``--py-files``; Spark puts it first on the
executors' ``sys.path``.

The zip is built from the packages as installed where the task runs and is
named after a hash of its content, so an unchanged code base reuses the same
file (no rebuild, and the cluster can cache it) while any change gives a new
name. The zip is deterministic: same files, same bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

PROJECT_PACKAGES: tuple[str, ...] = ("dlflow_airflow", "spark_jobs", "tf_jobs")
CACHE_ENV = "DLFLOW_SHIPPING_CACHE"
# Fixed timestamp inside the zip, so its bytes depend on file content only.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")


class ShippingError(ValueError):
    """A module to ship cannot be found or cannot be shipped as source."""


def top_level(module: str) -> str:
    """``my_pkg.models:build`` or ``my_pkg.models`` -> ``my_pkg`` (what must be shipped)."""
    name = module.split(":", 1)[0].strip()
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise ShippingError(f"{module!r} is not a module name (expected e.g. my_pkg.models)")
    return name.split(".", 1)[0]


def module_files(name: str) -> list[tuple[str, Path]]:
    """(name inside the zip, file) for the top-level module or package ``name``."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ShippingError(f"cannot ship {name!r}: it is not importable where the task runs")
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        files: list[tuple[str, Path]] = []
        for root in roots:
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if path.is_dir() or _SKIP_DIRS.intersection(relative.parts):
                    continue
                if path.suffix in _SKIP_SUFFIXES:
                    continue
                files.append((f"{name}/{relative.as_posix()}", path))
        if not files:
            raise ShippingError(f"cannot ship {name!r}: no files under {roots}")
        return files
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise ShippingError(
            f"cannot ship {name!r} from {spec.origin}: only pure-Python modules can go in "
            "--py-files; install compiled packages on the cluster instead"
        )
    return [(f"{name}.py", Path(spec.origin))]


def collect(modules: Iterable[str]) -> list[tuple[str, Path]]:
    """Every file of ``modules`` (top-level names, duplicates ignored), sorted by zip name."""
    files: dict[str, Path] = {}
    for name in dict.fromkeys(top_level(m) for m in modules):
        files.update(module_files(name))
    return sorted(files.items())


def content_hash(files: Sequence[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for arcname, path in files:
        digest.update(arcname.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where zips are kept: ``$DLFLOW_SHIPPING_CACHE``, else a folder in the temp dir."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "dlflow-shipping"


def build_code_zip(
    extra_modules: Iterable[str] = (), *, directory: str | os.PathLike[str] | None = None
) -> str:
    """The path of a zip holding :data:`PROJECT_PACKAGES` and ``extra_modules``.

    An existing zip with the same content hash is reused.

    :param extra_modules: more modules to ship, e.g. a user's model module
        (``my_pkg.models`` or ``my_pkg.models:build``); their top-level package goes in.
    :param directory: where to keep zips (default :func:`cache_dir`).
    :raises ShippingError: a module is not importable here, or is not pure Python.
    """
    files = collect([*PROJECT_PACKAGES, *extra_modules])
    target_dir = Path(directory) if directory is not None else cache_dir()
    target = target_dir / f"dlflow-code-{content_hash(files)[:20]}.zip"
    if target.is_file():
        return str(target)
    target_dir.mkdir(parents=True, exist_ok=True)
    # Write next to the target, then rename: concurrent tasks never see half a zip.
    fd, partial = tempfile.mkstemp(prefix=".dlflow-code-", suffix=".zip", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for arcname, path in files:
                info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
        os.chmod(partial, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return str(target)
