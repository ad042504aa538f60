"""Fixtures for integration tests against real, throwaway PostgreSQL and MariaDB servers.

- ``pg_server`` / ``maria_server`` (session): one running server each, configured for CDC.
- ``pg_db`` / ``maria_db`` (function): a fresh, uniquely named database on that server, dropped afterwards;
  a ``replicator.testing.devservers.Database`` with host, port, user, password, dbname, ``connect()`` and ``url()``.

Every test under this directory is marked ``integration``. Missing server binaries skip the tests, except
under CI (``CI`` set), where they are an error.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from replicator.testing.devservers import Database, MariaDBServer, PostgresServer, missing_binaries

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # this hook sees every collected item of the session, not just this directory's
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


DAEMON_LOG_TAIL = 4000  # characters of each daemon log shown with a failed test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """A failed test shows the end of each daemon log its pairs wrote (harness.Pair writes `daemon.log` under the
    test's tmp_path): a timing failure in CI says what the daemon was doing, instead of only what the test waited
    for."""
    outcome = yield
    report = outcome.get_result()
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or not isinstance(tmp, Path):
        return
    for log in sorted(tmp.glob("**/daemon.log")):
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        if text:
            report.sections.append((f"daemon log {log.relative_to(tmp)} (last {DAEMON_LOG_TAIL} characters)",
                                    text[-DAEMON_LOG_TAIL:]))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_server(server: str) -> None:
    """Skip (or fail under CI) when ``server`` ("postgres" or "mariadb") cannot run on this machine."""
    missing = missing_binaries(server)
    if missing:
        reason = f"{server} integration tests need {', '.join(missing)} (run scripts/test to install them)"
        if _in_ci():
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)


def unique_name(request: pytest.FixtureRequest) -> str:
    """A database name from the test name plus a random suffix, valid on both servers (<= 63 chars)."""
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def require_postgres() -> None:
    """For tests that start their own PostgresServer."""
    require_server("postgres")


@pytest.fixture(scope="session")
def require_mariadb() -> None:
    """For tests that start their own MariaDBServer."""
    require_server("mariadb")


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    """Server data directories live outside pytest's numbered temp dirs, which a concurrent pytest
    session may prune while this one still runs its servers; removed at the end of the session."""
    root = Path(tempfile.mkdtemp(prefix="replicator-servers-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(server_root: Path) -> Iterator[PostgresServer]:
    require_server("postgres")
    server = PostgresServer(server_root / "postgres")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def maria_server(server_root: Path) -> Iterator[MariaDBServer]:
    require_server("mariadb")
    server = MariaDBServer(server_root / "mariadb")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_db(pg_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    pg_server.start()  # no-op unless an earlier test stopped or killed the shared server
    db = pg_server.create_database(unique_name(request))
    yield db
    pg_server.start()
    pg_server.drop_database(db.dbname)


@pytest.fixture
def maria_db(maria_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[Database]:
    maria_server.start()
    db = maria_server.create_database(unique_name(request))
    yield db
    maria_server.start()
    maria_server.drop_database(db.dbname)


@pytest.fixture
def make_pair(tmp_path: Path, pg_db: Database, maria_db: Database) -> Iterator:
    """make_pair(pg_schema_sql, maria_schema_sql, mappings_yaml) -> a set-up harness.Pair (daemon not started).
    `names=(pg_name, maria_name)` and `maria_first=True` build a pair with other connection names and order
    (docs/walkthrough-suitecrm-idempiere.md: the CRM on MariaDB, the ERP on PostgreSQL)."""
    from tests.integration.harness import Pair

    pairs: list[Pair] = []

    def make(pg_sql: str, maria_sql: str, mappings: str, extra_config: str = "", setup: bool = True,
             names: tuple[str, str] = ("crm", "erp"), maria_first: bool = False) -> Pair:
        for stmt in filter(str.strip, pg_sql.split(";")):
            _exec(pg_db, stmt)
        for stmt in filter(str.strip, maria_sql.split(";")):
            _exec(maria_db, stmt)
        pair = Pair(tmp_path, pg_db, maria_db, mappings, extra_config, names=names, maria_first=maria_first)
        pairs.append(pair)
        if setup:
            pair.setup()
        return pair

    yield make
    for pair in pairs:
        pair.close()


def _exec(db: Database, sql: str) -> None:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
