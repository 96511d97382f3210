"""Load every pipeline YAML of a folder into DAGs, each file in isolation.

One broken file never hides the others, and never takes them down with it.
Airflow records import errors per DAG *file* and marks every DAG of a file
with an import error as stale (not scheduled, not triggerable). So the work
is split across two DAG files:

- ``dlflow_pipelines.py`` calls :func:`load_dags`: every good pipeline
  becomes a DAG; a broken one is skipped (and logged).
- ``dlflow_pipeline_errors.py`` holds no DAG: it calls
  :func:`raise_for_broken_pipelines`, which raises one error listing every
  broken file with its key path and what was expected. Airflow shows it as
  that file's import error (UI banner, ``airflow dags list-import-errors``)
  and clears it on the next parse once the files are fixed.

Isolation covers every failure, not only validation: whatever a file makes
the reader, the validation, a stage kind or Airflow raise (``MemoryError``
and ``RecursionError`` included) becomes that file's error, file name first.
Each file is also bounded: its size, alias expansion and nesting depth by
:mod:`dlflow_airflow.pipeline.yaml_reader`, its time by
:data:`FILE_TIME_BUDGET_SECONDS`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dlflow_airflow.pipeline.errors import Issue, PipelineError

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from dlflow_airflow.pipeline.build import Pipeline

log = logging.getLogger(__name__)

# A pipeline validates and builds in milliseconds; the first one of a parse also
# imports its operators (about a second). 10 s is far past both, and still leaves
# most of Airflow's default 30 s dagbag_import_timeout to the other files.
FILE_TIME_BUDGET_SECONDS = 10.0
# Longest text kept from an unexpected exception's message: one readable line.
_MAX_MESSAGE_CHARS = 300


class PipelineLoadError(Exception):
    """One or more pipeline files could not become DAGs."""


class FileTimeBudgetExceeded(Exception):
    """One file's work ran past :data:`FILE_TIME_BUDGET_SECONDS`."""


def pipeline_files(folder: str | Path, patterns: Iterable[str] = ("*.yaml", "*.yml")) -> list[Path]:
    folder = Path(folder)
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


@dataclass
class FolderScan:
    """The pipelines of a folder that validate, and the messages of those that do not."""

    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def load_pipeline(path: str | Path) -> Pipeline:
    """The validated pipeline of one file; any failure is a :class:`PipelineError` naming it."""
    from dlflow_airflow.pipeline.build import Pipeline

    with isolated(str(path)):
        return Pipeline.from_file(path)


def build_pipeline_dag(pipeline: Pipeline, *, register: bool = True) -> DAG:
    """The DAG of a validated pipeline, checked as the DagBag will; else a :class:`PipelineError`.

    Unless ``register`` (and whenever building fails) the DAG is taken back from
    Airflow's auto-registration, so the DAG file being parsed does not hold it.
    """
    from dlflow_airflow.pipeline.factory import build_dag

    with _registration(keep=register), isolated(pipeline.source):
        dag = build_dag(pipeline)
        dag.check_cycle()
        dag.validate()
    return dag


def scan(folder: str | Path) -> FolderScan:
    """Validate every pipeline file of ``folder``; a duplicate dag_id is an error too."""
    result = FolderScan()
    sources: dict[str, Path] = {}
    for path in pipeline_files(folder):
        try:
            pipeline = load_pipeline(path)
        except PipelineError as exc:
            result.errors.append(format_error(exc))
            continue
        dag_id = pipeline.spec.dag_id
        if dag_id in sources:
            used = f"{path}: dag_id: {dag_id!r} is already used by {sources[dag_id]}"
            result.errors.append(_printable(used))
            continue
        sources[dag_id] = path
        result.pipelines[dag_id] = pipeline
    return result


def load_dags(folder: str | Path) -> dict[str, DAG]:
    """``{dag_id: DAG}`` for every good pipeline of ``folder``; never raises for a file.

    Meant for a DAG file: ``globals().update(load_dags(HERE / "pipelines"))``.
    """
    found = scan(folder)
    dags: dict[str, DAG] = {}
    for dag_id, pipeline in found.pipelines.items():
        try:
            dags[dag_id] = build_pipeline_dag(pipeline)
        except PipelineError as exc:
            found.errors.append(format_error(exc))
    for message in found.errors:
        log.error("dlflow: pipeline not loaded (see dlflow_pipeline_errors.py):\n%s", message)
    return dags


def broken_pipelines(folder: str | Path) -> list[str]:
    """The error message of every pipeline file of ``folder`` that does not become a DAG.

    Each good pipeline is built too (and its DAG dropped, not registered here),
    so a file that validates but fails to build is reported as well.
    """
    found = scan(folder)
    for pipeline in found.pipelines.values():
        try:
            build_pipeline_dag(pipeline, register=False)
        except PipelineError as exc:
            found.errors.append(format_error(exc))
    return found.errors


def raise_for_broken_pipelines(folder: str | Path) -> None:
    """Raise :class:`PipelineLoadError` listing every broken pipeline file, if any."""
    errors = broken_pipelines(folder)
    if errors:
        raise PipelineLoadError(
            f"{len(errors)} pipeline file(s) could not be loaded:\n" + "\n".join(errors)
        )


@contextmanager
def isolated(source: str) -> Iterator[None]:
    """Run one file's work within the time budget; any failure becomes a :class:`PipelineError`.

    ``SystemExit`` too (a stage kind's module may call ``sys.exit``); not Ctrl-C, nor
    Airflow's import timeout (a ``BaseException``): that one ends the DAG file.
    """
    try:
        with _time_budget(FILE_TIME_BUDGET_SECONDS):
            yield
    except PipelineError:
        raise
    except (Exception, SystemExit) as exc:
        log.info("dlflow: %s could not be loaded", source, exc_info=True)
        raise PipelineError(source, [Issue("", describe(exc))]) from None


def format_error(exc: PipelineError) -> str:
    """One line per issue, ``file: key.path: message``, control characters escaped.

    A key or a file name may hold a newline or a carriage return: escaped, it
    cannot split an issue or pass for another file's.
    """
    return "\n".join(_printable(issue.render(exc.source)) for issue in exc.issues)


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def describe(exc: BaseException) -> str:
    """One line for an unexpected failure: what happened, never a traceback."""
    if isinstance(exc, FileTimeBudgetExceeded):
        return f"took longer than {FILE_TIME_BUDGET_SECONDS:g} s to load (the limit per file)"
    if isinstance(exc, MemoryError):
        return "ran out of memory while loading"
    if isinstance(exc, RecursionError):
        return "nested too deeply to load (Python's recursion limit)"
    try:
        text = " ".join(str(exc).split())
    except Exception:  # a broken __str__
        text = ""
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return f"could not be loaded: {type(exc).__name__}" + (f": {text}" if text else "")


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`FileTimeBudgetExceeded` in the block after ``seconds``.

    A SIGALRM timer, as Airflow's own import timeout: only in the main thread
    (where the dag-processor parses; elsewhere the block is not bounded). An
    outer timer (Airflow's) is saved and re-armed with what is left of it; when
    it ends first, it is left alone.
    """
    outer_left, outer_interval = _outer_timer()
    if outer_left is None or 0 < outer_left <= seconds:
        yield
        return
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _over_budget)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            if outer_left:
                left = max(outer_left - (time.monotonic() - started), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _outer_timer() -> tuple[float | None, float]:
    """The timer already running (0 if none), or None when no timer can be set here."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not (in_main_thread and hasattr(signal, "setitimer")):
        return None, 0.0
    return signal.getitimer(signal.ITIMER_REAL)


def _over_budget(signum: int, frame: object) -> None:
    raise FileTimeBudgetExceeded


@contextmanager
def _registration(*, keep: bool) -> Iterator[None]:
    """Take back the DAGs Airflow auto-registered in the block, unless it succeeds and ``keep``.

    ``with DAG(...)`` registers the DAG with the DAG file being parsed, even
    when the block fails half way: a half-built DAG must not be bagged. A DAG
    left open (the time budget can interrupt ``DAG.__exit__``) is closed too.
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    registered = DagContext.autoregistered_dags
    before = {id(dag) for dag, _ in registered}
    outer = DagContext.get_current()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        while not succeeded and DagContext.active and DagContext.get_current() is not outer:
            DagContext.pop()
        if not (succeeded and keep):
            earlier = [entry for entry in registered if id(entry[0]) in before]
            registered.clear()
            registered.update(earlier)
