"""Fail closed: a lost slot, purged binlogs, a stale checkpoint or a TRUNCATE stop the stream with a
clear error instead of silently skipping or re-creating; `setup` never moves existing positions."""
from __future__ import annotations

import json

import pytest

from replicator.changes import LSN
from tests.integration.harness import Pair, wait_until

PG_SCHEMA = "CREATE TABLE items (id int PRIMARY KEY, name text)"
MY_SCHEMA = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100))"
MAPPINGS = """
mappings:
  items:
    direction: both
    crm: {table: items, key: [id]}
    erp: {table: items, key: [id]}
    fields:
      id: ~
      name: ~
"""


def mappings(truncate: str | None = None) -> str:
    return MAPPINGS.replace("    direction: both\n", f"    direction: both\n    truncate: {truncate}\n") \
        if truncate else MAPPINGS


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)


def pg_ids(pair: Pair) -> list[int]:
    return [r[0] for r in pair.pg_query("SELECT id FROM items ORDER BY id")]


def my_ids(pair: Pair) -> list[int]:
    return [r[0] for r in pair.my_query("SELECT id FROM items ORDER BY id")]


def pg_checkpoint(pair: Pair) -> str:
    """The erp_to_crm position stored in PostgreSQL."""
    return pair.pg_query("SELECT position FROM replicator.checkpoint WHERE stream = 'erp_to_crm'")[0][0]


def my_checkpoint(pair: Pair) -> str:
    """The crm_to_erp position stored in MariaDB."""
    return pair.my_query(f"SELECT position FROM `{pair.state_schema}`.checkpoint WHERE stream = 'crm_to_erp'")[0][0]


def slot(pair: Pair):
    rows = pair.pg_query("SELECT confirmed_flush_lsn::text, restart_lsn::text FROM pg_replication_slots "
                         "WHERE slot_name = %s", (pair.pg.dbname,))
    return rows[0] if rows else None


def run_until_exit(pair: Pair, *args: str):
    """`replicator run` in the foreground; it must exit by itself (a hang fails the test)."""
    result = pair.cli("run", *args, check=False, timeout=90)
    return result.returncode, result.stdout + result.stderr


def replicate_one_row_each_way(pair: Pair, pg_id: int, my_id: int) -> None:
    pair.pg_query("INSERT INTO items VALUES (%s, 'from crm')", (pg_id,))
    pair.my_query("INSERT INTO items VALUES (%s, 'from erp')", (my_id,))
    wait_until(lambda: pg_id in my_ids(pair) and my_id in pg_ids(pair), what=f"rows {pg_id} and {my_id} replicated")


# ------------------------------------------------------------------------------------------------
# (a) replication slot dropped while the daemon is down


def test_dropped_slot_stops_the_daemon_and_is_not_recreated(pair):
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    assert pair.stop() == 0
    wait_until(lambda: pair.pg_query("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                     (pair.pg.dbname,)) == [(False,)], what="slot released")
    pair.pg_query("SELECT pg_drop_replication_slot(%s)", (pair.pg.dbname,))
    pair.pg_query("INSERT INTO items VALUES (2, 'written while the slot is gone')")
    checkpoint = my_checkpoint(pair)

    for args in ((), ("--skip-check",)):  # refused by the preflight, and by the stream itself
        code, out = run_until_exit(pair, *args)
        assert code != 0, out
        assert pair.pg.dbname in out, out  # the slot's name
        assert "re-sync" in out, f"`run {' '.join(args)}` does not say the changes are lost / re-sync:\n{out}"
        assert slot(pair) is None, "the daemon re-created the slot"
        assert my_ids(pair) == [1, 1001] and my_checkpoint(pair) == checkpoint

    # an operator who only runs `setup` gets a new slot, but the stream still refuses to skip the gap
    pair.setup()
    assert slot(pair) is not None
    code, out = run_until_exit(pair)
    assert code != 0, out
    assert "checkpoint" in out and pair.pg.dbname in out, out
    assert my_ids(pair) == [1, 1001] and my_checkpoint(pair) == checkpoint


# ------------------------------------------------------------------------------------------------
# (b) binlogs purged past the checkpoint


def test_purged_binlog_stops_the_daemon_naming_the_file(pair):
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    assert pair.stop() == 0
    checkpoint = pg_checkpoint(pair)
    needed = json.loads(checkpoint)["file"]

    pair.my_query("INSERT INTO items VALUES (1002, 'written before the purge')")
    for _ in range(3):
        pair.my_query("FLUSH BINARY LOGS")
    newest = pair.my_query("SHOW MASTER STATUS")[0][0]

    def purged() -> bool:  # MariaDB keeps a file until its binlog checkpoint is written: try again
        pair.my_query(f"PURGE BINARY LOGS TO '{newest}'")
        return [r[0] for r in pair.my_query("SHOW BINARY LOGS")] == [newest]
    wait_until(purged, what=f"binlogs purged up to {newest}")
    assert needed != newest

    code, out = run_until_exit(pair)
    assert code != 0, out
    assert needed in out, out  # the binlog file it needed
    assert "re-sync" in out, out
    assert pg_ids(pair) == [1, 1001], "something was applied"
    assert pg_checkpoint(pair) == checkpoint


# ------------------------------------------------------------------------------------------------
# (c) the target's checkpoint is older than the slot: a restored backup of the target


def test_checkpoint_older_than_the_slot_is_a_checkpoint_error(pair):
    pair.start()
    pair.pg_query("INSERT INTO items VALUES (1, 'before the backup')")
    wait_until(lambda: my_ids(pair) == [1], what="row 1 in MariaDB")
    backup = my_checkpoint(pair)
    # at or past row 1's LSN: once idle, the daemon may also confirm the WAL end beyond it (b5398e1)
    wait_until(lambda: LSN.parse(slot(pair)[0]) >= LSN.parse(json.loads(backup)["lsn"]), what="row 1 acknowledged")

    pair.pg_query("INSERT INTO items VALUES (2, 'after the backup')")
    wait_until(lambda: my_ids(pair) == [1, 2], what="row 2 in MariaDB")
    newer = LSN.parse(json.loads(my_checkpoint(pair))["lsn"])
    wait_until(lambda: LSN.parse(slot(pair)[0]) >= newer, what="row 2 acknowledged to the slot")
    assert pair.stop() == 0

    # restore the "backup": the old checkpoint and the data as it was, in one transaction
    conn = pair.maria.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"UPDATE `{pair.state_schema}`.checkpoint SET position = %s WHERE stream = 'crm_to_erp'",
                    (backup,))
        cur.execute("DELETE FROM items WHERE id = 2")
    conn.commit()
    conn.close()

    code, out = run_until_exit(pair)
    assert code != 0, out
    assert "checkpoint error" in out.lower(), out  # CheckpointError, by kind
    assert "older than slot" in out and pair.pg.dbname in out, out
    assert my_ids(pair) == [1] and my_checkpoint(pair) == backup


# ------------------------------------------------------------------------------------------------
# (d) setup is idempotent; --print-sql prints what it would run


def test_setup_twice_keeps_the_positions_and_loses_nothing(pair):
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    assert pair.stop() == 0
    before = (pg_checkpoint(pair), my_checkpoint(pair), slot(pair))
    # written while the daemon is down: a second setup must not skip them
    pair.pg_query("INSERT INTO items VALUES (2, 'while down')")
    pair.my_query("INSERT INTO items VALUES (1002, 'while down')")

    result = pair.cli("setup")
    assert "checkpoint kept" in result.stdout, result.stdout
    assert (pg_checkpoint(pair), my_checkpoint(pair), slot(pair)) == before
    pair.cli("setup")
    assert (pg_checkpoint(pair), my_checkpoint(pair), slot(pair)) == before
    assert pair.pg_query("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'replicator'") \
        == [("public", "items")]

    pair.start()
    wait_until(lambda: pg_ids(pair) == [1, 2, 1001, 1002] and my_ids(pair) == [1, 2, 1001, 1002],
               what="the rows written while down")
    assert pair.stop() == 0


def test_setup_print_sql_prints_runnable_sql_and_changes_nothing(make_pair):
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, setup=False)
    result = pair.cli("setup", "--print-sql")
    sql = result.stdout
    slot_name = pair.pg.dbname
    for expected in ('CREATE SCHEMA IF NOT EXISTS "replicator"',
                     'CREATE TABLE IF NOT EXISTS "replicator".checkpoint',
                     'CREATE PUBLICATION "replicator" FOR TABLE "public"."items"',
                     f"pg_create_logical_replication_slot('{slot_name}', 'pgoutput')",
                     f"CREATE DATABASE IF NOT EXISTS `{pair.state_schema}`",
                     f"CREATE TABLE IF NOT EXISTS `{pair.state_schema}`.checkpoint"):
        assert expected in sql, f"{expected!r} not in:\n{sql}"
    # printing ran nothing
    assert slot(pair) is None
    assert pair.pg_query("SELECT count(*) FROM pg_publication") == [(0,)]
    assert pair.pg_query("SELECT to_regclass('replicator.checkpoint')") == [(None,)]
    assert pair.my_query("SHOW DATABASES LIKE %s", (pair.state_schema,)) == []

    # a DBA runs the printed SQL by hand; `setup` then only records the positions
    section = None
    statements: dict[str, list[str]] = {"crm": [], "erp": []}
    current: list[str] = []
    for line in sql.splitlines():
        if line.startswith("-- on "):
            section = line.split()[2]
            continue
        if line.startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements[section].append("\n".join(current).rstrip().rstrip(";"))
            current = []
    assert statements["crm"] and statements["erp"] and not current, sql
    for stmt in statements["crm"]:
        pair.pg_query(stmt)
    for stmt in statements["erp"]:
        pair.my_query(stmt)
    lsn = slot(pair)[0]
    out = pair.cli("setup").stdout
    assert f"slot {slot_name} exists" in out, out
    assert slot(pair)[0] == lsn  # the DBA's slot is used, not replaced
    assert pair.cli("check", check=False).returncode == 0
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    assert pair.stop() == 0


# ------------------------------------------------------------------------------------------------
# (e) TRUNCATE of a mapped table


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_truncate_stops_the_stream_by_default(make_pair, origin):
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    target_ids = my_ids if origin == "crm" else pg_ids
    (pair.pg_query if origin == "crm" else pair.my_query)("TRUNCATE TABLE items")

    code = pair.wait_exit(60)
    log = pair.log()
    assert code != 0, log
    assert "was truncated on " + origin in log, log
    assert "truncate: propagate" in log and "truncate: ignore" in log, log  # what to do
    assert target_ids(pair) == [1, 1001], "the other side was changed"

    # not skipped on restart either
    code, out = run_until_exit(pair)
    assert code != 0 and "was truncated on " + origin in out, out
    assert target_ids(pair) == [1, 1001]


@pytest.mark.parametrize("ansi", [False, True])
def test_mariadb_truncate_of_a_qualified_quoted_name_stops_the_stream_too(make_pair, ansi):
    """`TRUNCATE TABLE `db`.`t``, as tools write it, is the same truncate; and `"db"."t"` in a session whose
    sql_mode has ANSI_QUOTES (read with the statement's own sql_mode, which the binlog carries)."""
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)
    if ansi:
        conn = pair.maria.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
                cur.execute(f'TRUNCATE TABLE "{pair.maria.dbname}"."items"')
        finally:
            conn.close()
    else:
        pair.my_query(f"TRUNCATE TABLE `{pair.maria.dbname}`.`items`")
    pair.my_query("INSERT INTO items VALUES (1002, 'after the truncate')")
    try:
        code = pair.wait_exit(30)
    except Exception:  # still running: it missed the truncate
        code = None
    log = pair.log()
    assert code is not None and code != 0, f"the daemon kept running after the truncate:\n{log}"
    assert "was truncated on erp" in log, log
    assert pg_ids(pair) == [1, 1001]


def test_truncate_propagate_empties_the_other_side(make_pair):
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, mappings("propagate"))
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)

    pair.pg_query("TRUNCATE TABLE items")
    wait_until(lambda: my_ids(pair) == [], what="MariaDB emptied")
    pair.pg_query("INSERT INTO items VALUES (2, 'after the truncate')")
    wait_until(lambda: my_ids(pair) == [2], what="the stream goes on")

    pair.my_query("TRUNCATE TABLE items")
    wait_until(lambda: pg_ids(pair) == [], what="PostgreSQL emptied")
    pair.my_query("INSERT INTO items VALUES (1002, 'after the truncate')")
    wait_until(lambda: pg_ids(pair) == [1002] and my_ids(pair) == [1002], what="the stream goes on")

    assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp", op="truncate") == 1
    assert pair.metric("replicator_rows_applied_total", direction="erp_to_crm", op="truncate") == 1
    assert pair.proc.poll() is None
    assert pair.stop() == 0


def test_truncate_ignore_is_counted_and_the_other_side_kept(make_pair):
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, mappings("ignore"))
    pair.start()
    replicate_one_row_each_way(pair, 1, 1001)

    pair.pg_query("TRUNCATE TABLE items")
    pair.pg_query("INSERT INTO items VALUES (2, 'after the truncate')")
    wait_until(lambda: 2 in my_ids(pair), what="the stream goes on")
    assert my_ids(pair) == [1, 2, 1001]
    wait_until(lambda: pair.metric("replicator_truncates_ignored_total", direction="crm_to_erp",
                                   table="public.items") == 1, what="crm truncate counted")

    pair.my_query("TRUNCATE TABLE items")
    pair.my_query("INSERT INTO items VALUES (1002, 'after the truncate')")
    wait_until(lambda: 1002 in pg_ids(pair), what="the stream goes on")
    assert pg_ids(pair) == [2, 1002]  # crm had only 2 left; erp's truncate was not applied here
    wait_until(lambda: pair.metric("replicator_truncates_ignored_total", direction="erp_to_crm",
                                   table=f"{pair.maria.dbname}.items") == 1, what="erp truncate counted")
    assert pair.metric("replicator_rows_applied_total", op="truncate") == 0
    assert pair.proc.poll() is None
    assert pair.stop() == 0


def test_a_stop_right_after_applying_leaves_the_checkpoint_at_least_at_the_slot(pair: Pair) -> None:
    """psycopg2 confirms the server's WAL end on its own once every data message was acknowledged,
    and a stopping reader sends that confirmation. The checkpoint must then be at least as far as the
    slot, or the next start sees "checkpoint older than slot" and stops with exit 79 (what a restored
    target looks like). `replicator sync` stops like this right after its last chunk."""
    def slot() -> LSN:
        return LSN.parse(pair.pg_query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                                       "WHERE slot_name = %s", (pair.pg.dbname,))[0][0])

    def checkpoint() -> LSN:
        row = pair.my_query(f"SELECT position FROM `{pair.state_schema}`.checkpoint WHERE stream = 'crm_to_erp'")
        return LSN.parse(json.loads(row[0][0])["lsn"])
    for i in range(1, 6):
        pair.start()
        pair.pg_query("INSERT INTO items VALUES (%s, 'a')", (i,))
        wait_until(lambda: i in my_ids(pair), what=f"row {i} applied")
        assert pair.stop() == 0
        assert checkpoint() >= slot(), f"stop {i}: checkpoint {checkpoint()} is behind the slot at {slot()}"
    pair.start()  # and it starts again
    pair.pg_query("INSERT INTO items VALUES (99, 'b')")
    wait_until(lambda: 99 in my_ids(pair), what="streaming again")
    assert pair.stop() == 0
