"""A PostgreSQL server of its own for the local Airflow: ``initdb`` + ``pg_ctl`` in one folder.

Why: on SQLite, Airflow refuses to create a backfill while another component
writes ("Database is locked. Backfill creation is not supported on SQLite under
concurrent access"); on PostgreSQL, backfills and concurrent runs behave as in
production. The server programs come from the machine (Debian's ``postgresql``
package, which ``scripts/bootstrap.sh`` installs for the test command, or any
``initdb`` on PATH); Airflow talks to it through ``psycopg2`` and ``asyncpg``
(the ``postgres`` extra).

Layout of ``folder``: ``data/`` (the cluster), ``server.log`` and ``password``
(0600; the role's password, never logged). The server listens on 127.0.0.1
only, on a free port chosen at each start, with password authentication, and
opens no Unix socket (its default folder may not be writable). Data survive a
stop: the next :meth:`LocalPostgres.start` on the same folder reuses them.

PostgreSQL refuses to run as root: as root, the server runs as ``os_user``
(default ``postgres``, the user Debian's package creates), which then owns the
folder; a parent folder it could not enter gets search permission (``x``, not
read; ``o+x`` for a folder of root's), named in :attr:`LocalPostgres.notes`.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Where distributions put the server programs when they are not on PATH.
SERVER_BIN_GLOBS = ("/usr/lib/postgresql/*/bin",)  # Debian, Ubuntu
INSTALL_HINT = (
    "install PostgreSQL's server programs (Debian/Ubuntu: apt-get install postgresql; "
    "macOS: brew install postgresql) or run scripts/bootstrap.sh --postgres as root"
)
# Settings of this throwaway server, appended to its postgresql.conf once.
SERVER_SETTINGS = """
# dlflow-airflow: loopback TCP only, no Unix socket; a crash may lose the last
# commits but never corrupts the cluster (synchronous_commit, not fsync).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
synchronous_commit = off
"""


class PostgresError(RuntimeError):
    """The server programs are missing, or the server did not start or stop."""


def server_bin_dir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: PATH first, then the newest distribution one.

    :raises PostgresError: neither has them (one line, saying how to install them).
    """
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = [
        folder
        for pattern in SERVER_BIN_GLOBS
        for folder in Path("/").glob(pattern.lstrip("/"))
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()
    ]
    if not found:
        raise PostgresError(
            "PostgreSQL's initdb and pg_ctl were not found (PATH, /usr/lib/postgresql/*/bin): "
            + INSTALL_HINT
        )
    return max(found, key=lambda folder: _version_key(folder.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit()) or (0,)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalPostgres:
    """Start, use and stop a PostgreSQL server whose files all live in ``folder``.

    :param folder: holds the cluster (``data/``), ``server.log`` and ``password``; created.
    :param database: the database created for the caller (Airflow's metadata DB).
    :param role: the superuser role the caller connects as.
    :param os_user: the system user the server runs as; default: the current user, or
        ``postgres`` when running as root (PostgreSQL refuses root).
    """

    folder: Path
    database: str = "airflow"
    role: str = "airflow"
    os_user: str | None = None
    port: int | None = field(default=None, init=False)
    notes: list[str] = field(default_factory=list, init=False)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def _password_file(self) -> Path:
        return self.folder / "password"

    def url(self, driver: str = "psycopg2") -> str:
        """The SQLAlchemy URL of the database (it holds the password: do not log it)."""
        if self.port is None:
            raise PostgresError("the PostgreSQL server is not started")
        password = quote(self._password_file.read_text().strip(), safe="")
        return f"postgresql+{driver}://{self.role}:{password}@127.0.0.1:{self.port}/{self.database}"

    def connect(self, database: str | None = None) -> Any:
        """A psycopg2 connection to ``database`` (default: the caller's)."""
        try:
            import psycopg2
        except ImportError:
            raise PostgresError(
                "psycopg2 is missing: pip install 'dlflow-airflow[postgres]'"
            ) from None
        if self.port is None:
            raise PostgresError("the PostgreSQL server is not started")
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.role,
            password=self._password_file.read_text().strip(),
            dbname=database or self.database,
            connect_timeout=10,
        )

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Create the cluster on first use, start the server (or reuse the one already
        running on this folder) and create the database if it is missing.

        :raises PostgresError: the server programs are missing, or the server did not start
            (the end of ``server.log`` is in the message).
        """
        bin_dir = server_bin_dir()
        self._prepare_folder()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bin_dir)
        elif not self._password_file.is_file():
            raise PostgresError(
                f"{self._password_file} is missing: remove {self.folder} to start a new cluster"
            )
        running = self._running_port(bin_dir)
        if running is not None:
            self.port = running
            self.notes.append(f"reused the PostgreSQL server already running on {self.data_dir}")
        else:
            self._start_server(bin_dir, timeout)
        self._create_database()

    def stop(self, timeout: float = 60) -> None:
        """Stop the server (fast shutdown: sessions are ended); a no-op when it is not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            self.port = None
            return
        bin_dir = server_bin_dir()
        # Search permission on a parent may have been taken back meanwhile (pytest resets
        # its temporary root to 0700 when a session starts): pg_ctl must reach the data.
        self._prepare_folder()
        proc = self._run(
            [
                bin_dir / "pg_ctl",
                "stop",
                "-D",
                self.data_dir,
                "-m",
                "fast",
                "-w",
                "-t",
                int(timeout),
            ],
            check=False,
        )
        if proc.returncode != 0 and self._running_port(bin_dir) is not None:
            raise PostgresError(f"pg_ctl stop failed:\n{proc.stdout}{proc.stderr}")
        self.port = None

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------

    def _server_user(self) -> pwd.struct_passwd | None:
        """Whom to run the server as, or None for the current user."""
        name = self.os_user or ("postgres" if os.geteuid() == 0 else None)
        if name is None:
            return None
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise PostgresError(
                f"PostgreSQL cannot run as root and its user {name!r} does not exist: "
                + INSTALL_HINT
            ) from None
        return None if user.pw_uid == os.geteuid() else user

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        user = self._server_user()
        if user is None:
            return
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        opened = [str(p) for p in reversed(self.folder.resolve().parents) if _open_for(p, user)]
        if opened:
            self.notes.append(
                f"gave search permission (x, not read) on {', '.join(opened)} "
                f"so that PostgreSQL, running as {user.pw_name}, reaches {self.folder}"
            )

    def _initdb(self, bin_dir: Path) -> None:
        password = secrets.token_urlsafe(24)
        self._password_file.touch(mode=0o600)
        self._password_file.chmod(0o600)
        self._password_file.write_text(password + "\n")
        # initdb reads the password from a file the server's user can read; removed at once.
        pwfile = self.folder / ".initdb-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        user = self._server_user()
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._run(
                [
                    bin_dir / "initdb",
                    "-D",
                    self.data_dir,
                    "-U",
                    self.role,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_SETTINGS)

    def _start_server(self, bin_dir: Path, timeout: float) -> None:
        # A port can be taken between choosing and binding it: try another one.
        for attempt in range(3):
            port = free_loopback_port()
            proc = self._run(
                [
                    bin_dir / "pg_ctl",
                    "start",
                    "-D",
                    self.data_dir,
                    "-l",
                    self.log_file,
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    int(timeout),
                ],
                check=False,
            )
            if proc.returncode == 0:
                self.port = port
                return
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            if "could not bind" not in log or attempt == 2:
                raise PostgresError(
                    f"PostgreSQL did not start on {self.data_dir}:\n{proc.stdout}{proc.stderr}"
                    f"--- end of {self.log_file}:\n{log[-3000:]}"
                )

    def _running_port(self, bin_dir: Path) -> int | None:
        """The port of the server running on this cluster, or None."""
        status = self._run([bin_dir / "pg_ctl", "status", "-D", self.data_dir], check=False)
        if status.returncode != 0:
            return None
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])  # pid, data dir, start time, port, ...

    def _create_database(self) -> None:
        connection = self.connect(database="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cursor.fetchone() is None:
                    from psycopg2 import sql

                    cursor.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                    )
        finally:
            connection.close()

    def _run(self, cmd: list[Any], *, check: bool = True) -> subprocess.CompletedProcess:
        """Run a server program, as the server's user when we are root."""
        user = self._server_user()
        as_user: dict[str, Any] = {}
        env = {**os.environ, "LC_ALL": "C"}
        if user is not None:
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        proc = subprocess.run(
            [str(part) for part in cmd],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            **as_user,
        )
        if check and proc.returncode != 0:
            name = Path(str(cmd[0])).name
            raise PostgresError(f"{name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc


def _open_for(folder: Path, user: pwd.struct_passwd) -> bool:
    """Give ``user``'s class (owner, group or others) search permission on ``folder`` if it
    cannot enter it; True if changed."""
    info = folder.stat()
    groups = {g.gr_gid for g in _groups_of(user)} | {user.pw_gid}
    if info.st_uid == user.pw_uid:
        bit = stat.S_IXUSR
    elif info.st_gid in groups:
        bit = stat.S_IXGRP
    else:
        bit = stat.S_IXOTH
    if info.st_mode & bit:
        return False
    folder.chmod(stat.S_IMODE(info.st_mode) | bit)
    return True


def _groups_of(user: pwd.struct_passwd) -> list[Any]:
    import grp

    return [g for g in grp.getgrall() if user.pw_name in g.gr_mem]
