"""The local PostgreSQL server of ``serve --db postgres`` and the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlflow_airflow.devtools import postgres
from dlflow_airflow.devtools.postgres import LocalPostgres, PostgresError, server_bin_dir

pytestmark = pytest.mark.postgres


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalPostgres]:
    try:
        server_bin_dir()
    except PostgresError as exc:
        if os.environ.get("CI"):  # scripts/bootstrap.sh --postgres installs them in CI
            raise
        pytest.skip(f"no PostgreSQL server programs here: {exc}")
    server = LocalPostgres(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_start_connect_stop_and_the_data_stay(server: LocalPostgres):
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user")
        assert cursor.fetchone() == ("airflow", "airflow")
        cursor.execute("CREATE TABLE kept (day text)")
        cursor.execute("INSERT INTO kept VALUES ('2026-01-01')")
    first_port = server.port
    server.stop()
    assert server.port is None
    assert not (server.data_dir / "postmaster.pid").exists()

    again = LocalPostgres(server.folder)
    again.start()  # the same cluster: no initdb, the table is still there
    try:
        with again.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT day FROM kept")
            assert cursor.fetchall() == [("2026-01-01",)]
        assert again.port is not None and first_port is not None
    finally:
        again.stop()


def test_only_loopback_and_a_password(server: LocalPostgres):
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone() == ("127.0.0.1",)
        cursor.execute("SHOW unix_socket_directories")
        assert cursor.fetchone() == ("",)
    assert (server.folder / "password").stat().st_mode & 0o077 == 0
    hba = (server.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)


def test_the_password_is_in_the_url_only(server: LocalPostgres):
    password = (server.folder / "password").read_text().strip()
    assert password in server.url()
    assert server.url("asyncpg").startswith("postgresql+asyncpg://airflow:")
    assert password not in repr(server)
    assert password not in (server.log_file.read_text() + "".join(server.notes))


def test_a_running_server_is_reused(server: LocalPostgres):
    other = LocalPostgres(server.folder)
    other.start()  # e.g. after a serve that was killed: no second server on one cluster
    assert other.port == server.port
    assert any("reused" in note for note in other.notes)


def test_missing_server_programs_say_how_to_install_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres, "SERVER_BIN_GLOBS", (str(tmp_path / "none/*/bin"),))
    with pytest.raises(PostgresError) as info:
        LocalPostgres(tmp_path / "pg").start()
    message = str(info.value)
    assert "\n" not in message
    assert "initdb and pg_ctl were not found" in message
    assert "apt-get install postgresql" in message
    assert not (tmp_path / "pg").exists()


def test_the_url_needs_a_started_server(tmp_path: Path):
    with pytest.raises(PostgresError, match="not started"):
        LocalPostgres(tmp_path).url()
