"""What a pipeline file may ask of the Spark workers: the deployment decides (parse time).

A YAML author chooses data settings (memory, partitions, shuffle...). Spark conf
keys that choose what *runs* on the driver and the executors — an executable,
code or a classpath, JVM options, environment variables, a container image,
mounted volumes and secrets, the job's credentials — are refused in
``spark.conf``, and so is ``spark.python`` (the Python both sides run), unless
the deployment lists them in the Airflow option ``[dlflow] allowed_spark_conf``
(see ``docs/operations.md``, "Who may write YAML").

The option is read only when a file sets a guarded key, so a pipeline that
sets none costs no configuration lookup at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from dlflow_airflow.pipeline.errors import Issue, SpecError

if TYPE_CHECKING:
    from dlflow_airflow.pipeline.spec import PipelineSpec

CONFIG_SECTION = "dlflow"
CONFIG_OPTION = "allowed_spark_conf"
CONFIG_ENV = f"AIRFLOW__{CONFIG_SECTION.upper()}__{CONFIG_OPTION.upper()}"

_EXECUTABLE = "chooses an executable the Spark driver or executors run"
_CODE = "puts code on the Spark driver or executors (files, archives, jars, a classpath)"
_JVM = "sets JVM options of the Spark driver or executors (agents, -XX:OnError commands)"
_ENV = "sets environment variables of the Spark processes (PATH, PYTHONPATH, LD_PRELOAD)"
_IMAGE = "chooses the container image or pod template the Spark driver or executors run"
_MOUNT = "mounts volumes or secrets into the Spark pods"
_IDENTITY = "chooses the credentials the Spark job runs with"

# Key (a glob: ``*`` matches any run of characters, dots included) -> why it is guarded.
GUARDED_SPARK_CONF: dict[str, str] = {
    "spark.pyspark.python": _EXECUTABLE,
    "spark.pyspark.driver.python": _EXECUTABLE,
    "spark.python.daemon.module": _EXECUTABLE,
    "spark.python.worker.module": _EXECUTABLE,
    "spark.r.command": _EXECUTABLE,
    "spark.r.driver.command": _EXECUTABLE,
    "spark.*.resource.*.discoveryScript": _EXECUTABLE,
    "spark.jars": _CODE,
    "spark.jars.*": _CODE,  # packages, repositories, ivy, ivySettings
    "spark.files": _CODE,
    "spark.submit.pyFiles": _CODE,
    "spark.archives": _CODE,
    "spark.yarn.dist.*": _CODE,
    "spark.yarn.jars": _CODE,
    "spark.yarn.archive": _CODE,
    "spark.driver.extraClassPath": _CODE,
    "spark.executor.extraClassPath": _CODE,
    "spark.driver.extraLibraryPath": _CODE,
    "spark.executor.extraLibraryPath": _CODE,
    "spark.yarn.am.extraLibraryPath": _CODE,
    "spark.sql.hive.metastore.jars*": _CODE,
    "spark.driver.extraJavaOptions": _JVM,
    "spark.executor.extraJavaOptions": _JVM,
    "spark.driver.defaultJavaOptions": _JVM,
    "spark.executor.defaultJavaOptions": _JVM,
    "spark.yarn.am.extraJavaOptions": _JVM,
    "spark.executorEnv.*": _ENV,
    "spark.yarn.appMasterEnv.*": _ENV,
    "spark.kubernetes.driverEnv.*": _ENV,
    "spark.mesos.driverEnv.*": _ENV,
    "spark.kubernetes.container.image": _IMAGE,
    "spark.kubernetes.driver.container.image": _IMAGE,
    "spark.kubernetes.executor.container.image": _IMAGE,
    "spark.kubernetes.driver.podTemplateFile": _IMAGE,
    "spark.kubernetes.executor.podTemplateFile": _IMAGE,
    "spark.kubernetes.driver.volumes.*": _MOUNT,
    "spark.kubernetes.executor.volumes.*": _MOUNT,
    "spark.kubernetes.driver.secrets.*": _MOUNT,
    "spark.kubernetes.executor.secrets.*": _MOUNT,
    "spark.kubernetes.driver.secretKeyRef.*": _MOUNT,
    "spark.kubernetes.executor.secretKeyRef.*": _MOUNT,
    "spark.kubernetes.authenticate.*": _IDENTITY,
    "spark.kubernetes.kerberos.*": _IDENTITY,
    "spark.kerberos.*": _IDENTITY,
    "spark.yarn.keytab": _IDENTITY,
    "spark.yarn.principal": _IDENTITY,
}

# ``spark.python`` (the YAML key) is these two conf keys at once.
SPARK_PYTHON_KEYS = ("spark.pyspark.python", "spark.pyspark.driver.python")


def guarded_reason(key: str) -> str | None:
    """Why ``key`` may not be set from YAML by default, or None when it may."""
    key = key.strip()
    for pattern, reason in GUARDED_SPARK_CONF.items():
        if fnmatchcase(key, pattern):
            return reason
    return None


def parse_allowed(value: str) -> tuple[str, ...]:
    """The entries of ``allowed_spark_conf``: comma-separated keys or globs (``spark.jars.*``)."""
    return tuple(entry.strip() for entry in value.replace("\n", ",").split(",") if entry.strip())


def configured_allowed() -> tuple[str, ...]:
    """``[dlflow] allowed_spark_conf`` from Airflow's configuration (airflow.cfg or the env)."""
    from airflow.configuration import conf

    return parse_allowed(conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback="") or "")


def is_allowed(key: str, allowed: Iterable[str]) -> bool:
    key = key.strip()
    return any(fnmatchcase(key, entry) for entry in allowed)


def spark_conf_issues(spec: PipelineSpec, allowed: Sequence[str] | None = None) -> list[Issue]:
    """One issue per guarded ``spark.conf`` key (and ``spark.python``) not allowed:
    the key path, why it is guarded, and the option that allows it.

    :param allowed: the allow-list; None reads ``[dlflow] allowed_spark_conf``, only
        when the file sets a guarded key.
    """
    guarded = {key: reason for key in spec.spark.conf if (reason := guarded_reason(key))}
    if spec.spark.python is not None:
        guarded["spark.python"] = _EXECUTABLE
    if not guarded:
        return []
    allowed = configured_allowed() if allowed is None else tuple(allowed)
    issues = []
    for key, reason in guarded.items():
        if key == "spark.python":
            path, needed = "spark.python", SPARK_PYTHON_KEYS
        else:
            path, needed = f"spark.conf.{key}", (key.strip(),)
        if not all(is_allowed(k, allowed) for k in needed):
            issues.append(Issue(path, _refusal(reason, needed)))
    return issues


def check_spark_conf(spec: PipelineSpec, source: str, allowed: Sequence[str] | None = None) -> None:
    """:func:`spark_conf_issues` as an error.

    :raises SpecError: naming the file and every refused key.
    """
    issues = spark_conf_issues(spec, allowed)
    if issues:
        raise SpecError(source, issues)


def _refusal(reason: str, keys: Sequence[str]) -> str:
    value = ", ".join(keys)
    return (
        f"not allowed in a pipeline file: it {reason}. A deployment that trusts its YAML "
        f"authors with it lists it in the Airflow option [{CONFIG_SECTION}] {CONFIG_OPTION} "
        f"(or {CONFIG_ENV}), e.g. {CONFIG_OPTION} = {value}"
    )
