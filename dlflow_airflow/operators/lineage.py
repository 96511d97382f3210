"""OpenLineage: every stage reports the partitions it read and wrote as datasets.

Airflow's OpenLineage provider asks each task for its lineage through the
operator hooks its ``DefaultExtractor`` calls: ``get_openlineage_facets_on_start``
(before ``execute``), ``get_openlineage_facets_on_complete`` (after a success or
a skip) and ``get_openlineage_facets_on_failure``. :class:`StageLineage`, a base
of :class:`~dlflow_airflow.operators.bookkeeping.StageBookkeeping`, answers them
for every stage operator from the artifact contract
(:func:`~dlflow_airflow.contract.artifacts.stage_io`): the same partitions the
bookkeeping records, the assets announce and ``report`` shows.

- **start**: what the stage will read (its ``read`` and ``reuse`` partitions, an
  fmap that is there, merge's seed and sources) and write (its ``write``
  partitions, an fmap it has to fit).
- **complete**: what the run really did, as the bookkeeping recorded it when
  ``execute`` ended: the partitions it wrote are outputs (with their row counts),
  everything else it used is an input; a reused fmap or model is never an output.
  A stage skipped because its outputs stand unchanged wrote nothing: the
  complete partitions it left standing are its inputs.
- **failure**: the start view (what the run was reading and writing).

Dataset names follow OpenLineage's naming spec (:func:`dataset_naming`), the
way its Spark integration names the same paths. The provider is optional:
nothing here imports it but the hooks themselves, which only its listener calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dlflow_airflow.contract.artifacts import Partition, Role, StageIO

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

# Object stores whose dataset name is the object key (no leading slash); s3a:// and s3n://
# are Hadoop's names for S3, gcs:// fsspec's for GCS.
_OBJECT_STORES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs", "wasbs": "wasbs"}
_LOCAL_HOSTS = ("", "localhost")


def dataset_naming(uri: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a workspace URI (a partition, a table path).

    Follows OpenLineage's dataset naming spec as its Spark integration applies
    it, so a dataset named by a stage and by a Spark listener is one dataset:

    - local file system (``file:///p``, ``/p``): ``("file", "/p")``; a remote
      ``file://host/p``: ``("file://host", "/p")``
    - S3 (``s3://``, ``s3a://``, ``s3n://``), GCS (``gs://``), WASBS:
      ``("s3://bucket", "key")`` -- the name is the object key
    - any other file system: ``("scheme://authority", "/path")``, e.g.
      ``hdfs://namenode:8020``, ``abfss://container@account.dfs.core.windows.net``

    A trailing slash is dropped; so are credentials (``user:secret@``) in the authority.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    path = parts.path.rstrip("/") or "/"
    authority = parts.netloc
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:  # a password: never into lineage (abfss' container@ has none)
        authority = host
    if scheme in ("", "file"):
        if authority.lower() in _LOCAL_HOSTS:
            return "file", path
        return f"file://{authority}", path
    if scheme in _OBJECT_STORES:
        return f"{_OBJECT_STORES[scheme]}://{authority}", path.lstrip("/") or "/"
    return (f"{scheme}://{authority}" if authority else scheme), path


@dataclass(frozen=True)
class StageDatasets:
    """The URIs a stage run read and wrote.

    :param rows: rows of a written tabular partition, by URI (the asset event's count).
    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    rows: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs)

    def with_inputs(self, extra: Iterable[str]) -> StageDatasets:
        inputs = tuple(dict.fromkeys((*self.inputs, *extra)))
        return StageDatasets(inputs, self.outputs, self.rows)

    def operator_lineage(self) -> OperatorLineage:
        """The provider's ``OperatorLineage`` (imports the provider: call from the hooks only)."""
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        def input_(uri: str) -> InputDataset:
            namespace, name = dataset_naming(uri)
            return InputDataset(namespace=namespace, name=name)

        def output(uri: str) -> OutputDataset:
            namespace, name = dataset_naming(uri)
            if uri not in self.rows:
                return OutputDataset(namespace=namespace, name=name)
            stats = OutputStatisticsOutputDatasetFacet(rowCount=self.rows[uri])
            return OutputDataset(
                namespace=namespace, name=name, outputFacets={"outputStatistics": stats}
            )

        return OperatorLineage(
            inputs=[input_(uri) for uri in self.inputs],
            outputs=[output(uri) for uri in self.outputs],
        )


def used(
    io: StageIO, written: Iterable[Partition], extras: Mapping[str, Mapping[str, Any]] | None = None
) -> StageDatasets:
    """What a run touched: ``written`` are its outputs; every other partition, and the
    extra inputs (merge's seed and sources), its inputs.

    :param extras: the bookkeeping's asset-event extras by tag (``partition``, ``rows``).
    """
    outputs = tuple(dict.fromkeys(p.uri for p in written))
    inputs = [p.uri for p in io.partitions if p.uri not in outputs]
    rows = {
        str(extra["partition"]): int(extra["rows"])
        for extra in (extras or {}).values()
        if extra.get("rows") is not None and extra.get("partition") in outputs
    }
    return StageDatasets(tuple(dict.fromkeys((*inputs, *io.extra_inputs))), outputs, rows)


def planned(io: StageIO) -> StageDatasets:
    """Before the job runs: it writes its ``write`` partitions and an fmap that is not there."""
    from dlflow_airflow.contract import storage

    fits = tuple(p for p in io.by_role(Role.FIT_OR_REUSE) if not storage.is_complete(p.uri))
    return used(io, (*io.writes, *fits))


def standing(io: StageIO) -> StageDatasets:
    """A skipped stage: it wrote nothing; the complete partitions it left are its inputs."""
    from dlflow_airflow.contract import storage

    return StageDatasets(tuple(p.uri for p in io.partitions if storage.is_complete(p.uri)))


class StageLineage:
    """The OpenLineage provider's operator hooks for a pipeline stage.

    A base of :class:`~dlflow_airflow.operators.bookkeeping.StageBookkeeping`,
    which supplies the stage's partitions (:meth:`lineage_io`) and records what
    a run wrote (:meth:`record_lineage`). When the contract knows no partition
    of the stage (a user kind), the backend operator's own hooks answer, if it
    has any.
    """

    _dlflow_lineage: StageDatasets | None = None

    def lineage_io(self) -> StageIO:
        """The stage's partitions for the run's date (none known here)."""
        return StageIO(known=False)

    def lineage_extra_inputs(self) -> tuple[str, ...]:
        """Inputs found while running that the contract cannot list (a sensor's paths)."""
        return ()

    def record_lineage(
        self,
        io: StageIO,
        written: Iterable[Partition],
        extras: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Keep what the run wrote, for the complete event (sent after ``execute``)."""
        self._dlflow_lineage = used(io, written, extras)

    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        return self._lineage(planned(self.lineage_io()), "get_openlineage_facets_on_start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        # Nothing recorded: the bookkeeping skipped the stage before its job ran.
        recorded = self._dlflow_lineage
        datasets = recorded if recorded is not None else standing(self.lineage_io())
        return self._lineage(datasets, "get_openlineage_facets_on_complete", task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage | None:
        datasets = planned(self.lineage_io())
        return self._lineage(datasets, "get_openlineage_facets_on_failure", task_instance)

    def _lineage(self, datasets: StageDatasets, hook: str, *args: Any) -> OperatorLineage | None:
        datasets = datasets.with_inputs(self.lineage_extra_inputs())
        if datasets:
            return datasets.operator_lineage()
        backend = getattr(super(), hook, None)
        return backend(*args) if callable(backend) else None


def openlineage_active() -> bool:
    """Whether this worker has the OpenLineage provider installed and enabled."""
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    return not conf.is_disabled()
