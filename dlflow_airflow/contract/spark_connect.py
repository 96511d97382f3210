"""Spark Connect mode: what a pipeline may set, and what the operator hands its job.

``spark: {mode: connect}`` runs a Spark stage's job as a Spark Connect client
(a subprocess of the Airflow worker) against a long-lived Connect server,
instead of a ``spark-submit`` that starts a Spark application of its own.

- A session can set only *runtime* SQL settings (``spark.sql.*`` that are not
  static): the application's launch settings (memory, cores, UI, jars...) and
  Spark's static SQL settings belong to the server. :func:`connect_conf_error`
  names the keys a pipeline cannot set, for the spec and the operator.
- The operator tells its job where the server is and how to set up its
  session through the environment (:class:`ConnectSession`): the URL in
  :data:`REMOTE_ENV` (it may carry the connection's token, so it is never part
  of a logged document), the rest as JSON in :data:`SESSION_ENV`.

Pure Python: the spec (parse time), the operator and ``spark_jobs`` read it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal, get_args

SparkMode = Literal["submit", "connect"]
SPARK_MODES: tuple[str, ...] = get_args(SparkMode)
"""``submit`` (default): a ``spark-submit`` per task; ``connect``: a Spark Connect session."""
DEFAULT_CONNECT_CONN_ID = "spark_connect_default"
"""The Spark provider's default ``spark_connect`` connection."""

REMOTE_ENV = "DLFLOW_SPARK_REMOTE"
"""The Connect URL (``sc://host:port/;session_id=...``) a job connects to; set: connect mode."""
SESSION_ENV = "DLFLOW_SPARK_SESSION"
"""JSON: the session's tag, artifacts and runtime settings (:class:`ConnectSession`)."""

# Spark 4.2's static SQL settings (``SQLConf.staticConfKeys`` with StaticSQLConf, HiveUtils
# and the Connect plugin loaded; tests/dlflow_airflow/contract/test_spark_connect.py checks
# the list against the JVM): fixed when the server starts, refused by a session.
STATIC_SQL_CONF: tuple[str, ...] = (
    "spark.sql.broadcastExchange.maxThreadThreshold",
    "spark.sql.cache.serializer",
    "spark.sql.catalog.spark_catalog.defaultDatabase",
    "spark.sql.catalogImplementation",
    "spark.sql.codegen.cache.maxEntries",
    "spark.sql.codegen.comments",
    "spark.sql.connect.ui.*",
    "spark.sql.debug",
    "spark.sql.defaultUrlStreamHandlerFactory.enabled",
    "spark.sql.event.truncate.length",
    "spark.sql.extensions",
    "spark.sql.extensions.*",
    "spark.sql.filesourceTableRelationCacheSize",
    "spark.sql.globalTempDatabase",
    "spark.sql.hive.metastore.*",
    "spark.sql.hive.thriftServer.singleSession",
    "spark.sql.hive.version",
    "spark.sql.legacy.sessionInitWithConfigDefaults",
    "spark.sql.metadataCacheTTLSeconds",
    "spark.sql.queryExecutionListeners",
    "spark.sql.resultQueryStage.maxThreadThreshold",
    "spark.sql.shuffleExchange.maxThreadThreshold",
    "spark.sql.sources.disabledJdbcConnProviderList",
    "spark.sql.sources.schemaStringLengthThreshold",
    "spark.sql.streaming.streamingQueryListeners",
    "spark.sql.streaming.ui.*",
    "spark.sql.subquery.maxThreadThreshold",
    "spark.sql.ui.retainedExecutions",
    "spark.sql.warehouse.dir",
)

CONNECT_CONF_RULE = (
    "a Spark Connect session sets only runtime SQL settings (spark.sql.*, not static); "
    "set the others where the Connect server starts (its spark-submit --conf or "
    "spark-defaults.conf)"
)


def connect_conf_refusal(key: str) -> str | None:
    """Why a Spark Connect session cannot set ``key`` (what kind of setting it is), or None."""
    key = key.strip()
    if not key.startswith("spark.sql."):
        return "a launch setting"
    if any(fnmatchcase(key, pattern) for pattern in STATIC_SQL_CONF):
        return "a static SQL setting"
    return None


def connect_conf_error(keys: Iterable[str]) -> str | None:
    """The one-line error for the ``keys`` a Spark Connect session cannot set, or None."""
    refused = [f"{key} ({why})" for key in keys if (why := connect_conf_refusal(key))]
    if not refused:
        return None
    return f"not settable with mode: connect: {', '.join(refused)}; {CONNECT_CONF_RULE}"


PRIVATE_SESSION_JOBS: frozenset[str] = frozenset({"merge"})
"""Jobs that keep state in their session (merge registers its inputs as temp views for its
SQL steps): each run gets a session of its own. The others share their pipeline's session."""


def shared_session_id(*parts: str) -> str:
    """A session id (a UUID, as Spark Connect wants) that the same ``parts`` always give."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def private_session_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ConnectSession:
    """How a job in connect mode sets up its session; the operator builds it, the job
    reads it back (:meth:`from_environ`).

    :param url: the server's URL from the connection (may carry a token: never log it).
    :param session_id: the server-side session the job joins.
    :param shared: other tasks use the session too (:func:`shared_session_id`): the job
        leaves it open when it ends, so the server's Python workers stay warm; a private
        session is released.
    :param tag: the operation tag of the task's try (the operator interrupts by it).
    :param artifacts: Python files or zips added to the session (``pyfile``), so the
        server's Python workers import this project's code and the user's modules.
    :param conf: runtime SQL settings (the pipeline's ``spark.conf``), set on the session.
    """

    url: str
    session_id: str
    tag: str
    shared: bool = False
    artifacts: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=dict)

    def session_url(self, session_id: str | None = None) -> str:
        """:attr:`url` naming the session (``sc://host:port/;...;session_id=<id>``)."""
        url = self.url if "/;" in self.url else self.url.rstrip("/") + "/"
        return f"{url};session_id={session_id or self.session_id}"

    def environ(self) -> dict[str, str]:
        document = {
            "session_id": self.session_id,
            "shared": self.shared,
            "tag": self.tag,
            "artifacts": list(self.artifacts),
            "conf": dict(self.conf),
        }
        return {REMOTE_ENV: self.url, SESSION_ENV: json.dumps(document, sort_keys=True)}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ConnectSession | None:
        """The session the operator asked for, or None (not in connect mode)."""
        url = environ.get(REMOTE_ENV)
        if not url:
            return None
        document = json.loads(environ.get(SESSION_ENV) or "{}")
        return cls(
            url=url,
            session_id=document.get("session_id") or private_session_id(),
            tag=document.get("tag") or "dlflow",
            shared=bool(document.get("shared")),
            artifacts=tuple(document.get("artifacts") or ()),
            conf={str(k): str(v) for k, v in (document.get("conf") or {}).items()},
        )
