"""The storage layout: one function per artifact, all under one workspace URI.

```
<ws>/raw/TAG=<feature_tag>/dt=YYYY-MM-DD/        merge output
<ws>/encoded/TAG=<feature_tag>/dt=.../            encode output (Parquet)
<ws>/tfrecord/TAG=<feature_tag>/dt=.../           encode output (TFRecord, optional)
<ws>/femodel/TAG=<feature_tag>/dt=<model_date>/   fmap + normalizer statistics
<ws>/model/TAG=<model_tag>/dt=<model_date>/       saved model + training history
<ws>/evaluate/TAG=<model_tag>/dt=.../             metrics.json
<ws>/predict/TAG=<model_tag>/dt=.../              predictions (Parquet)
<ws>/champion/TAG=<model_tag>/dt=.../             the rows encoded for the blessed model
```
A partition is complete only when it holds a ``_SUCCESS`` marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as _date

SUCCESS_MARKER = "_SUCCESS"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

ARTIFACTS = (
    "raw",
    "encoded",
    "tfrecord",
    "femodel",
    "model",
    "evaluate",
    "predict",
    "champion",
)


class PartitionDateError(ValueError):
    """A partition date is not an ISO date (YYYY-MM-DD)."""


def check_date(value: str) -> str:
    """Return ``value`` if it is an ISO date, else raise :class:`PartitionDateError`."""
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise PartitionDateError(f"partition date {value!r} is not YYYY-MM-DD")
    try:
        _date.fromisoformat(value)
    except ValueError as exc:
        raise PartitionDateError(f"partition date {value!r} is not a calendar date") from exc
    return value


def normalize_workspace(uri: str) -> str:
    """A workspace URI without a trailing slash; a bare path becomes ``file://``."""
    uri = uri.rstrip("/")
    if "://" not in uri:
        if not uri.startswith("/"):
            raise ValueError(f"workspace {uri!r} must be an absolute path or a URI")
        uri = "file://" + uri
    return uri


@dataclass(frozen=True)
class Layout:
    """Where every artifact of a pipeline lives under one workspace."""

    workspace: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspace", normalize_workspace(self.workspace))

    def partition(self, artifact: str, tag: str, date: str) -> str:
        """The one function that renders a partition URI."""
        if artifact not in ARTIFACTS:
            raise ValueError(f"unknown artifact {artifact!r}; known: {', '.join(ARTIFACTS)}")
        return f"{self.workspace}/{artifact}/TAG={tag}/dt={check_date(date)}"

    def root(self, artifact: str, tag: str) -> str:
        """The folder holding every dated partition of one artifact and tag."""
        return f"{self.workspace}/{artifact}/TAG={tag}"

    def raw(self, feature_tag: str, date: str) -> str:
        return self.partition("raw", feature_tag, date)

    def encoded(self, feature_tag: str, date: str) -> str:
        return self.partition("encoded", feature_tag, date)

    def tfrecord(self, feature_tag: str, date: str) -> str:
        return self.partition("tfrecord", feature_tag, date)

    def femodel(self, feature_tag: str, model_date: str) -> str:
        return self.partition("femodel", feature_tag, model_date)

    def model(self, model_tag: str, model_date: str) -> str:
        return self.partition("model", model_tag, model_date)

    def evaluate(self, model_tag: str, date: str) -> str:
        return self.partition("evaluate", model_tag, date)

    def predict(self, model_tag: str, date: str) -> str:
        return self.partition("predict", model_tag, date)

    def champion(self, model_tag: str, date: str) -> str:
        return self.partition("champion", model_tag, date)

    def upstream(self, table: str, date: str) -> str:
        """The demo's upstream tables (``demo_data`` writes them, merge reads them)."""
        return f"{self.workspace}/upstream/{table}/dt={check_date(date)}"


def local_path(uri: str) -> str:
    """The local file-system path of a ``file://`` URI (or a bare path)."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri:
        raise ValueError(f"{uri!r} is not on the local file system")
    return uri


def success_marker(partition_uri: str) -> str:
    return f"{partition_uri}/{SUCCESS_MARKER}"
