"""The throwaway servers start, carry the CDC settings, accept overrides and survive a crash."""
from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pymysql
import pytest
from psycopg2.extras import LogicalReplicationConnection

from replicator.testing.devservers import Database, MariaDBServer, PostgresServer

REPO = Path(__file__).resolve().parents[2]


def test_both_servers_start(pg_server: PostgresServer, maria_server: MariaDBServer) -> None:
    assert pg_server.running and maria_server.running
    assert pg_server.host == maria_server.host == "127.0.0.1"
    assert pg_server.port != maria_server.port
    assert int(pg_server.execute("SHOW server_version_num")[0][0]) >= 150000
    assert "MariaDB" in maria_server.execute("SELECT VERSION()")[0][0]


def test_mariadb_has_cdc_settings(maria_server: MariaDBServer) -> None:
    row = maria_server.execute("SELECT @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@log_bin, "
                               "@@server_id, @@gtid_domain_id, @@character_set_server, @@bind_address")[0]
    assert row == ("ROW", "FULL", "FULL", 1, 101, 1, "utf8mb4", "127.0.0.1")
    assert "STRICT_TRANS_TABLES" in maria_server.execute("SELECT @@sql_mode")[0][0]


def test_postgres_has_cdc_settings(pg_server: PostgresServer) -> None:
    def show(name: str) -> str:
        return str(pg_server.execute(f"SHOW {name}")[0][0])

    assert show("wal_level") == "logical"
    assert int(show("max_replication_slots")) >= 10
    assert int(show("max_wal_senders")) >= 10
    assert show("timezone") == "UTC"
    assert show("listen_addresses") == "127.0.0.1"


def test_passwords_are_checked(pg_server: PostgresServer, maria_server: MariaDBServer) -> None:
    with pytest.raises(psycopg2.OperationalError):
        pg_server.connect(password="wrong")
    with pytest.raises(pymysql.err.OperationalError):
        maria_server.connect(password="wrong")


def test_pg_db_allows_logical_replication(pg_db: Database) -> None:
    with pg_db.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    repl = pg_db.connect(connection_factory=LogicalReplicationConnection)
    try:
        cur = repl.cursor()
        # left behind on purpose: the pg_db fixture must still drop the database
        cur.create_replication_slot("devservers_test", output_plugin="test_decoding")
        with pg_db.connect() as conn, conn.cursor() as c2:
            c2.execute("INSERT INTO t VALUES (1, 'a')")
        cur.start_replication("devservers_test", decode=True)
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while not any("INSERT" in p for p in seen) and time.monotonic() < deadline:
            msg = cur.read_message()
            if msg is None:
                select.select([cur], [], [], 1.0)
            else:
                seen.append(msg.payload)
        assert any("table public.t: INSERT: id[integer]:1 v[text]:'a'" in p for p in seen), seen
    finally:
        repl.close()


def test_databases_are_fresh_and_unique(pg_db: Database, maria_db: Database) -> None:
    assert pg_db.dbname != maria_db.dbname or pg_db.port != maria_db.port
    conn = maria_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE(), COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()")
            assert cur.fetchone() == (maria_db.dbname, 0)
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
            cur.execute("INSERT INTO t VALUES (1, %s)", ("\U0001f600",))
            cur.execute("SELECT v FROM t")
            assert cur.fetchone() == ("\U0001f600",)
    finally:
        conn.close()
    pconn = pg_db.connect()
    try:
        with pconn.cursor() as cur:
            cur.execute("SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone() == (pg_db.dbname, 0)
    finally:
        pconn.close()


def test_sqlalchemy_urls(pg_db: Database, maria_db: Database) -> None:
    import sqlalchemy

    for db in (pg_db, maria_db):
        engine = sqlalchemy.create_engine(db.url())
        try:
            with engine.connect() as conn:
                assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


@pytest.mark.usefixtures("require_mariadb")
def test_mariadb_overrides_and_restart(tmp_path: Path) -> None:
    with MariaDBServer(tmp_path, settings={"binlog_row_metadata": "MINIMAL", "binlog_format": "MIXED"}) as m:
        assert m.execute("SELECT @@binlog_row_metadata, @@binlog_format") == [("MINIMAL", "MIXED")]
        m.overrides.clear()
        m.restart()
        assert m.execute("SELECT @@binlog_row_metadata, @@binlog_format") == [("FULL", "ROW")]
    assert not m.running


@pytest.mark.usefixtures("require_postgres")
def test_postgres_overrides(tmp_path: Path) -> None:
    with PostgresServer(tmp_path, settings={"wal_level": "replica", "max_replication_slots": 0},
                        password="s3cret'x") as pg:
        assert pg.execute("SHOW wal_level") == [("replica",)]
        assert pg.execute("SHOW max_replication_slots") == [("0",)]
        assert pg.connect(password="s3cret'x").closed == 0


@pytest.mark.usefixtures("require_postgres", "require_mariadb")
def test_kill_and_start_recover_committed_data(tmp_path: Path) -> None:
    # synchronous_commit=off (fast mode) may lose the latest commits in a crash; this test wants none lost
    pg = PostgresServer(tmp_path / "pg", settings={"synchronous_commit": "on"})
    maria = MariaDBServer(tmp_path / "maria")
    try:
        pg.start()
        maria.start()
        pg.execute("CREATE TABLE t (id int PRIMARY KEY)")
        pg.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        maria.create_database("d")
        maria.execute("CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        maria.execute("INSERT INTO d.t VALUES " + ",".join(f"({i})" for i in range(1, 1001)))
        ports = (pg.port, maria.port)

        pg.kill()
        maria.kill()
        assert not pg.running and not maria.running
        with pytest.raises(psycopg2.OperationalError):
            pg.connect(connect_timeout=2)

        pg.start()
        maria.start()
        assert (pg.port, maria.port) == ports
        assert pg.execute("SELECT count(*) FROM t") == [(1000,)]
        assert maria.execute("SELECT COUNT(*) FROM d.t") == [(1000,)]
        assert maria.execute("SHOW BINARY LOGS")
    finally:
        pg.stop()
        maria.stop()


@pytest.mark.usefixtures("require_postgres", "require_mariadb")
def test_command_line_prints_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "replicator.testing.devservers", "--dir", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"postgres", "mariadb"}
        pg = info["postgres"]
        conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                                dbname="postgres")
        conn.close()
        m = info["mariadb"]
        pymysql.connect(host=m["host"], port=m["port"], user=m["user"], password=m["password"]).close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=m["host"], port=m["port"], user=m["user"], password=m["password"],
                            connect_timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_restart_survives_another_pytest_session_closing_the_base_directory(tmp_path: Path) -> None:
    """Run as root, PostgreSQL runs as `postgres` and needs to search the directories above its data
    directory. A pytest session started meanwhile on the same machine resets /tmp/pytest-of-root to 0700
    (its own permission check); the next start must grant the search right again, not only initdb."""
    import os
    import stat

    pg = PostgresServer(tmp_path / "pg")
    try:
        pg.start()
        pg.execute("CREATE TABLE t (id int)")
        pg.stop()
        if os.geteuid() != 0:
            pytest.skip("only root runs PostgreSQL as another user")
        ours = tmp_path.parent.parent  # pytest's /tmp/pytest-of-root/pytest-N
        closed = [d for d in (tmp_path / "pg", *(tmp_path / "pg").parents)
                  if d.is_relative_to(ours) and d.stat().st_uid == 0 and d.stat().st_mode & stat.S_IXOTH]
        assert closed, "the start granted nothing to take back"
        for d in closed:  # what the other session's pytest did
            os.chmod(d, stat.S_IMODE(d.stat().st_mode) & ~stat.S_IXOTH)
        pg.start()
        assert pg.execute("SELECT count(*) FROM t") == [(0,)]
    finally:
        pg.stop()
