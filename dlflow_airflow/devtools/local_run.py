"""Run a pipeline for dates through the demo's local Airflow: one ``airflow dags test`` each.

``dlflow-airflow run`` (one date, or a range oldest first, stopping at the
first failure) and ``dlflow-airflow demo`` (the demo pipeline, one date) both
go through :func:`run_dates`. Every date gets its own log of Airflow's output.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from dlflow_airflow.contract.layout import PartitionDateError, check_date
from dlflow_airflow.devtools import demo, report
from dlflow_airflow.devtools.demo import DemoSetup
from dlflow_airflow.pipeline.build import Pipeline


class RunRequestError(ValueError):
    """A bad date, range or pipeline name; the message is one line for the user."""


def requested_dates(on: str | None, start: str | None, end: str | None) -> list[str]:
    """The dates of ``--date`` or ``--from``/``--to`` (both ends included), oldest first.

    :raises RunRequestError: neither or both forms given, half a range, a date
        that is not YYYY-MM-DD, or ``--from`` after ``--to``.
    """
    if on is not None and (start is not None or end is not None):
        raise RunRequestError("give either --date or --from/--to, not both")
    if on is None and (start is None or end is None):
        raise RunRequestError("give --date D, or both --from D1 and --to D2")
    try:
        if on is not None:
            return [check_date(on)]
        first = date.fromisoformat(check_date(start or ""))
        last = date.fromisoformat(check_date(end or ""))
    except PartitionDateError as exc:
        raise RunRequestError(str(exc)) from None
    if first > last:
        raise RunRequestError(f"--from {first} is after --to {last}")
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def pipeline_file(pipeline: str, dags_folder: Path) -> Path:
    """The YAML of ``pipeline``: a name in ``<dags_folder>/pipelines/`` or a file there.

    Airflow runs only the DAGs its DAG folder loads, so a file elsewhere is refused.

    :raises RunRequestError: no such pipeline (with close names), or a file
        outside the DAG folder's ``pipelines/``.
    """
    folder = (dags_folder / "pipelines").resolve()
    if pipeline.endswith((".yaml", ".yml")) or "/" in pipeline:
        path = Path(pipeline).resolve()
        if not path.is_file():
            raise RunRequestError(f"{pipeline}: no such file")
        if path.parent != folder:
            raise RunRequestError(
                f"{pipeline} is not in the DAG folder's pipelines/ ({folder}), so Airflow "
                "would not load it: copy it there or pass --dags <the folder above its pipelines/>"
            )
        return path
    for suffix in (".yaml", ".yml"):
        if (folder / f"{pipeline}{suffix}").is_file():
            return folder / f"{pipeline}{suffix}"
    names = sorted(path.stem for path in folder.glob("*.y*ml"))
    close = difflib.get_close_matches(pipeline, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; there: {', '.join(names) or 'none'}"
    raise RunRequestError(f"no pipeline {pipeline!r} in {folder}{hint}")


def log_file(setup: DemoSetup, dag_id: str, day: str) -> Path:
    """Where Airflow's output for one date goes (unless shown on the terminal)."""
    return setup.home / "logs" / dag_id / f"{day}.log"


@dataclass(frozen=True)
class DateRun:
    """One date's run.

    :param exit_code: ``airflow``'s (``db migrate`` for the first date, then ``dags test``).
    :param complete: every stage's partition is there afterwards (written or reused).
    :param report: what ``dlflow-airflow report`` prints for the date.
    :param log: Airflow's output; None when it went to the terminal.
    """

    date: str
    exit_code: int
    complete: bool
    seconds: float
    report: str
    log: Path | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.complete

    def summary(self) -> str:
        """``<date> ok|failed in N s`` (failed: with the exit code and where the log is)."""
        line = f"{self.date} {'ok' if self.ok else 'failed'} in {self.seconds:.0f} s"
        if self.ok:
            return line
        why = f"airflow exit code {self.exit_code}" if self.exit_code else "partitions missing"
        return f"{line} ({why}); log: {self.log or 'above'}"


def run_dates(
    setup: DemoSetup,
    pipeline: Pipeline,
    dates: list[str],
    *,
    verbose: bool = False,
    starting: Callable[[str, Path | None], object] = lambda day, log: None,
) -> Iterator[DateRun]:
    """Run ``pipeline`` for each date in order, through ``airflow dags test``.

    Yields each date's :class:`DateRun` as it ends and stops after the first
    that is not ok.

    :param verbose: Airflow's output on the terminal instead of a log per date.
    :param starting: called with the date and its log before the date runs.
    """
    dag_id = pipeline.spec.dag_id
    setup.airflow_home.mkdir(parents=True, exist_ok=True)
    migrated = False
    for day in dates:
        log = None if verbose else log_file(setup, dag_id, day)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")  # a rerun of the date starts a fresh log
        starting(day, log)
        started = time.monotonic()
        code = 0 if migrated else demo.airflow(setup, "db", "migrate", log=log)
        migrated = True
        if code == 0:
            code = demo.airflow(setup, "dags", "test", dag_id, day, log=log)
        text, complete = report.render(pipeline, day)
        run = DateRun(day, code, complete, time.monotonic() - started, text, log)
        yield run
        if not run.ok:
            return
