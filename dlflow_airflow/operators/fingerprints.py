"""Safe reruns: skip a stage whose output is complete and whose inputs and spec are unchanged.

Every stage commits its output partitions atomically (staging folder, then a
rename, ``_SUCCESS`` last). After a successful run the task writes a content
fingerprint beside ``_SUCCESS`` (``_FINGERPRINT.json``): a hash of the job
(stage, date, the whole job config) and of every partition it read or reused
(file names and sizes; Spark names its part files uniquely per write, so a
rewritten input changes its listing). A later run of the same task computes
the fingerprint again; when every partition it writes is complete and
carries that fingerprint, the task is skipped with a log line saying why.

Which partitions count comes from the artifact contract
(:func:`dlflow_airflow.contract.artifacts.stage_io`), nowhere else.
Run-time only; pyarrow is imported lazily.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import Partition, Role, StageIO
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import SUCCESS_MARKER
from dlflow_airflow.contract.model_resolution import BLESSED_MARKER, MANIFEST_FILE

FINGERPRINT_FILE = "_FINGERPRINT.json"
# Files that record a partition's state, not its content: evaluate blesses a
# model after predict may have read it, which must not make predict rerun.
STATE_FILES = frozenset({FINGERPRINT_FILE, BLESSED_MARKER})


@dataclass(frozen=True)
class Decision:
    skip: bool
    reason: str
    fingerprint: str | None = None


def partition_digest(uri: str) -> str | None:
    """A hash of a complete partition's file listing (relative names + sizes); None if absent."""
    from pyarrow import fs

    if not storage.is_complete(uri):
        return None
    filesystem, path = storage.resolve(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    entries = sorted(
        (info.path[len(path) :].lstrip("/"), _content_size(filesystem, info))
        for info in infos
        if info.type == fs.FileType.File and info.base_name not in STATE_FILES
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _content_size(filesystem: Any, info: Any) -> int:
    """A file's size; a model manifest's as if no human decision were recorded in it.

    Approving or rejecting a model writes an ``approval`` entry into its
    manifest after evaluate (and maybe predict) read it, which must not make them rerun.
    """
    if info.base_name != MANIFEST_FILE:
        return info.size or 0
    with filesystem.open_input_stream(info.path) as stream:
        try:
            manifest = json.loads(stream.read())
        except ValueError:  # not JSON: its size is all we can say
            return info.size or 0
    if not isinstance(manifest, dict) or "approval" not in manifest:
        return info.size or 0
    # Train writes the manifest as indent=1 JSON, as record_decision does.
    rest = {key: value for key, value in manifest.items() if key != "approval"}
    return len(json.dumps(rest, indent=1).encode())


def fingerprint(config: JobConfig, io: StageIO) -> str | None:
    """The stage's fingerprint, or None when a required input is missing (then it must run).

    Hashed: reads, reuses, extra inputs (all required) and ``fit_or_reuse``
    partitions when present (absent ones hash as absent, so fitting one
    changes the fingerprint).
    """
    digests: dict[str, str | None] = {}
    required = [p.uri for p in io.by_role(Role.READ, Role.REUSE)] + list(io.extra_inputs)
    for uri in required:
        digest = partition_digest(uri)
        if digest is None:
            return None
        digests[uri] = digest
    for p in io.by_role(Role.FIT_OR_REUSE):
        digests[p.uri] = partition_digest(p.uri)
    doc = {"date": config.date, "config": config.body(), "inputs": digests}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def stored_fingerprint(partition_uri: str) -> dict | None:
    """The ``_FINGERPRINT.json`` document of a partition, or None."""
    uri = f"{partition_uri}/{FINGERPRINT_FILE}"
    if not storage.exists(uri):
        return None
    try:
        doc = json.loads(storage.read_text(uri))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def decide(config: JobConfig, io: StageIO, *, force: bool) -> Decision:
    """Whether the stage may be skipped, and the fingerprint to record when it runs."""
    if not io.known:
        return Decision(False, "the contract cannot list this stage's inputs: always runs")
    current = fingerprint(config, io)
    if force:
        return Decision(False, "params.force is set: recomputing", current)
    if current is None:
        return Decision(False, "an input partition is missing or incomplete", None)
    if not io.writes:
        return Decision(False, "the stage writes no partition of its own: always runs", current)
    for out in io.writes:
        if not storage.is_complete(out.uri):
            return Decision(False, f"{out.uri} has no {SUCCESS_MARKER}", current)
        stored = stored_fingerprint(out.uri) or {}
        if stored.get("fingerprint") != current:
            return Decision(False, f"inputs or spec changed since {out.uri} was written", current)
    where = ", ".join(o.uri for o in io.writes)
    return Decision(True, f"outputs complete and inputs + spec unchanged: {where}", current)


def record(config: JobConfig, written: tuple[Partition, ...], value: str, run_id: str) -> None:
    """Write the fingerprint beside ``_SUCCESS`` in every partition the run wrote."""
    doc = json.dumps(
        {"fingerprint": value, "stage": config.stage.name, "date": config.date, "run_id": run_id}
    )
    for out in written:
        if storage.is_complete(out.uri):
            storage.write_text(f"{out.uri}/{FINGERPRINT_FILE}", doc)


def written_by(partition: Partition, date: str) -> bool:
    """Whether the run of ``date`` wrote this partition (per its fingerprint record)."""
    doc = stored_fingerprint(partition.uri) or {}
    return doc.get("date") == date


def count_rows(uri: str) -> int | None:
    """Rows of a Parquet partition (from file footers); None if unreadable."""
    try:
        import pyarrow.dataset as ds

        filesystem, path = storage.resolve(uri)
        return ds.dataset(path, filesystem=filesystem, format="parquet").count_rows()
    except Exception:  # metadata is best effort: never fail a finished stage over it
        return None
