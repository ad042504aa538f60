"""Both databases of one kind on one server (two PostgreSQL databases, two MariaDB databases), configured as
README.md shows (no `slot`, `server_id` or `state_schema` given): `check` refuses with a message naming the
setting, never a traceback; with that setting given, setup, both directions and no echo loop
(docs/walkthrough-suitecrm-idempiere.md, "Both on one kind of server")."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

from replicator.testing.devservers import Database, free_port
from tests.integration.harness import checkout_env, wait_until

MAPPINGS = """\
mappings:
  customers:
    direction: both
    left: {table: customer, key: [id]}
    right: {table: customer, key: [id]}
    fields: {id: ~, name: ~}
"""


def _config(tmp: Path, kind: str, dbs: list[Database], extra: tuple[str, str] = ("", "")) -> tuple[Path, int]:
    (tmp / "mappings").mkdir(exist_ok=True)
    (tmp / "mappings" / "m.yaml").write_text(MAPPINGS)
    lines = ["connections:"]
    for name, db, more in zip(("left", "right"), dbs, extra):
        (tmp / f"{name}.pw").write_text(db.password)
        lines += [f"  {name}:", f"    kind: {kind}", f"    host: {db.host}", f"    port: {db.port}",
                  f"    database: {db.dbname}", f"    user: {db.user}", f"    password_file: {name}.pw"]
        lines += [f"    {line}" for line in more.splitlines()]
    port = free_port()
    lines += ["mappings: mappings", f"metrics: {{port: {port}}}", "reconnect: {initial_seconds: 0.2, max_seconds: 2}"]
    path = tmp / "replicator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, port


def _cli(config: Path, *args: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "replicator", *args, "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=config.parent, env=checkout_env())
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    return result.returncode, out


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _streams_both_ways(config: Path, port: int, dbs: list[Database],
                       query: Callable[[Database, str], list[tuple[Any, ...]]]) -> None:
    log_path = config.parent / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "replicator", "run", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, cwd=config.parent, env=checkout_env())
    try:
        wait_until(lambda: _metric(port, "replicator_transactions_applied_total") >= 0 or proc.poll() is not None,
                   30, "metrics")
        assert proc.poll() is None, log_path.read_text()
        query(dbs[0], "INSERT INTO customer VALUES (1, 'from left')")
        query(dbs[1], "INSERT INTO customer VALUES (2, 'from right')")
        wait_until(lambda: query(dbs[1], "SELECT name FROM customer WHERE id = 1") == [("from left",)], 30, "1 right")
        wait_until(lambda: query(dbs[0], "SELECT name FROM customer WHERE id = 2") == [("from right",)], 30, "2 left")
        query(dbs[0], "UPDATE customer SET name = 'edited' WHERE id = 2")
        wait_until(lambda: query(dbs[1], "SELECT name FROM customer WHERE id = 2") == [("edited",)], 30, "the edit")
        # no echo loop: once quiet, nothing more is applied, and the echoes were dropped
        applied = _metric(port, "replicator_rows_applied_total")
        time.sleep(2)
        assert _metric(port, "replicator_rows_applied_total") == applied
        assert _metric(port, "replicator_loop_dropped_batches_total") >= 1
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def _pg_query(db: Database, sql: str) -> list[tuple[Any, ...]]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def _my_query(db: Database, sql: str) -> list[tuple[Any, ...]]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def test_two_postgresql_databases_on_one_server(pg_server, tmp_path):
    dbs = [pg_server.create_database(f"t_same_pg_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    slots = ("replicator", "replicator_right")
    try:
        for db in dbs:
            _pg_query(db, "CREATE TABLE customer (id int PRIMARY KEY, name text)")
        config, _ = _config(tmp_path, "postgresql", dbs)
        code, out = _cli(config, "check")
        assert code == 78 and "both use replication slot 'replicator'" in out and "slot: replicator_right" in out, out
        config, port = _config(tmp_path, "postgresql", dbs, ("", f"slot: {slots[1]}"))
        code, out = _cli(config, "setup")
        assert code == 0, out
        code, out = _cli(config, "check")
        assert code == 0 and "0 failed" in out, out
        _streams_both_ways(config, port, dbs, _pg_query)
    finally:
        _pg_query(dbs[0], "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          f"WHERE slot_name IN {slots!r} AND NOT active")
        for db in dbs:
            pg_server.drop_database(db.dbname)


def test_a_slot_of_another_database_is_refused_by_setup(pg_server, tmp_path):
    """The slot name taken by another database of the server (another installation, a host alias the
    configuration cannot see through): `setup` and `check` name the database it belongs to."""
    dbs = [pg_server.create_database(f"t_same_pg_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    slot = f"taken_{uuid.uuid4().hex[:8]}"
    other = pg_server.create_database(f"t_other_{uuid.uuid4().hex[:8]}")
    try:
        _pg_query(other, f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
        for db in dbs:
            _pg_query(db, "CREATE TABLE customer (id int PRIMARY KEY, name text)")
        config, _ = _config(tmp_path, "postgresql", dbs, (f"slot: {slot}", "slot: right_slot"))
        code, out = _cli(config, "setup")
        assert code != 0 and f"replication slot {slot} belongs to database {other.dbname}" in out, out
        code, out = _cli(config, "check")
        assert code == 78 and f"replication slot {slot} belongs to database {other.dbname}" in out, out
    finally:
        _pg_query(other, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         f"WHERE slot_name IN ('{slot}', 'right_slot')")
        for db in (*dbs, other):
            pg_server.drop_database(db.dbname)


def test_two_mariadb_databases_on_one_server(maria_server, tmp_path):
    dbs = [maria_server.create_database(f"t_same_my_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    states = [f"rs_{db.dbname}" for db in dbs]
    try:
        for db in dbs:
            _my_query(db, "CREATE TABLE customer (id int PRIMARY KEY, name varchar(100))")
        config, _ = _config(tmp_path, "mariadb", dbs)
        code, out = _cli(config, "check")
        assert code == 78 and "both read its binlog as server_id 4242" in out and "server_id: 4243" in out, out
        config, _ = _config(tmp_path, "mariadb", dbs, ("", "server_id: 4243"))
        code, out = _cli(config, "check")
        assert code == 78 and "both keep replicator's tables in database 'replicator'" in out, out
        config, port = _config(tmp_path, "mariadb", dbs, (f"state_schema: {states[0]}",
                                                          f"server_id: 4243\nstate_schema: {states[1]}"))
        code, out = _cli(config, "setup")
        assert code == 0, out
        code, out = _cli(config, "check")
        assert code == 0 and "0 failed" in out, out
        _streams_both_ways(config, port, dbs, _my_query)
    finally:
        for state in states:
            _my_query(dbs[0], f"DROP DATABASE IF EXISTS `{state}`")
        for db in dbs:
            maria_server.drop_database(db.dbname)


def test_check_names_the_schema_that_has_the_table(pg_server, tmp_path):
    """iDempiere keeps its tables in schema `adempiere`; a mapping's `table: customer` means public.customer."""
    dbs = [pg_server.create_database(f"t_schema_pg_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    try:
        _pg_query(dbs[0], "CREATE TABLE customer (id int PRIMARY KEY, name text)")
        _pg_query(dbs[1], "CREATE SCHEMA adempiere; CREATE TABLE adempiere.customer (id int PRIMARY KEY, name text)")
        config, _ = _config(tmp_path, "postgresql", dbs, ("", "slot: right_slot"))
        code, out = _cli(config, "check")
        assert code == 78 and "table public.customer does not exist; adempiere.customer does" in out, out
        assert "fix: write `table: adempiere.customer` in the mapping" in out, out
    finally:
        for db in dbs:
            pg_server.drop_database(db.dbname)
