"""A DBA's ALTER TABLE on mapped tables while the daemon runs (docs/operations.md, "Schema changes while running").

Each case on either side as the source, with rows before, during and after the DDL (on PostgreSQL in the same
transaction as the DDL). The stream either carries on with every value exact, columns matched by name, or
stops before the first row it cannot carry, naming table, column and what to do -- never a NULL, a rounded
value or a skipped column.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from decimal import Decimal

import pytest

from replicator.errors import EXIT_CONFIG
from tests.integration.harness import Pair, checkout_env, reload, wait_until, write_mappings

PG_SCHEMA = """
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, credit numeric(12,2), note varchar(50),
                       seen timestamp(0))
"""
MY_SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(200) NOT NULL, credit decimal(12,2),
                        note varchar(200), seen datetime)
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: {erp: customer_name}
      credit: ~
      note: ~
      seen: ~
"""
SIDES = {  # origin: (table, name column, other side's table, name column)
    "crm": ("customer", "name", "customers", "customer_name"),
    "erp": ("customers", "customer_name", "customer", "name"),
}


@pytest.fixture
def pair(make_pair):
    p = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)
    p.start()
    yield p
    p.stop()


def write(pair: Pair, origin: str, *statements: str) -> None:
    """The statements in one transaction of the origin side (MariaDB commits before and after a DDL itself)."""
    db = pair.pg if origin == "crm" else pair.maria
    conn = db.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def rows(pair: Pair, side: str, columns: str = "id, credit, note") -> list[tuple]:
    table = "customer" if side == "crm" else "customers"
    query = pair.pg_query if side == "crm" else pair.my_query
    return [tuple(r) for r in query(f"SELECT {columns} FROM {table} ORDER BY id")]


def other(origin: str) -> str:
    return "erp" if origin == "crm" else "crm"


def insert(origin: str, key: int, credit: str = "1.50", note: str = "n") -> str:
    table, name, _, _ = SIDES[origin]
    return f"INSERT INTO {table} (id, {name}, credit, note) VALUES ({key}, 'c{key}', {credit}, '{note}')"


# ---------------------------------------------------------------- 1. an unmapped column added


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_an_unmapped_column_added_mid_stream_changes_nothing_downstream(pair, origin):
    table = SIDES[origin][0]
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")], what="row before the DDL")
    if origin == "crm":  # rows before, the DDL, rows after: one transaction
        write(pair, origin, insert(origin, 2), f"ALTER TABLE {table} ADD COLUMN extra int",
              insert(origin, 3), f"ALTER TABLE {table} ADD COLUMN flag text DEFAULT 'x' NOT NULL",
              f"UPDATE {table} SET note = 'u', extra = 4 WHERE id = 1")
    else:  # MariaDB: columns put first and in the middle shift every mapped column's position
        write(pair, origin, insert(origin, 2), f"ALTER TABLE {table} ADD COLUMN extra int FIRST",
              insert(origin, 3), f"ALTER TABLE {table} ADD COLUMN flag varchar(5) NOT NULL DEFAULT 'x' AFTER credit",
              f"UPDATE {table} SET note = 'u', extra = 4 WHERE id = 1")
    write(pair, origin, insert(origin, 4, "99.99", "after"))
    expected = [(1, Decimal("1.50"), "u"), (2, Decimal("1.50"), "n"), (3, Decimal("1.50"), "n"),
                (4, Decimal("99.99"), "after")]
    wait_until(lambda: rows(pair, other(origin)) == expected, what="rows after the DDL, values in their columns")
    assert pair.proc.poll() is None, pair.log()
    direction = f"{origin}_to_{other(origin)}"
    wait_until(lambda: pair.metric("replicator_source_schema_changes_total", direction=direction) >= 1,
               what="the schema change counted")
    assert "changed while streaming" in pair.log()


# ---------------------------------------------------------------- 3. a mapped column dropped or renamed


@pytest.mark.parametrize("origin", ["crm", "erp"])
@pytest.mark.parametrize("ddl", ["DROP COLUMN note", "RENAME COLUMN note TO memo"])
def test_a_mapped_column_dropped_or_renamed_stops_before_its_rows_naming_it(pair, origin, ddl):
    table = SIDES[origin][0]
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")], what="row before the DDL")
    write(pair, origin, f"ALTER TABLE {table} {ddl}")
    table_, name, _, _ = SIDES[origin]
    write(pair, origin, f"INSERT INTO {table} (id, {name}, credit) VALUES (2, 'c2', 2)")
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    log = pair.log()
    assert f"{table}, column note" in log and "is gone from the table" in log, log
    if ddl.startswith("RENAME"):
        assert "renamed to memo?" in log
    # nothing of the new shape's rows arrived, and the earlier row kept its value (no NULL written)
    assert rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")]
    # the start-up check refuses the mapping too, until it or the table is fixed
    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_CONFIG and "column note does not exist" in check.stdout + check.stderr


# ---------------------------------------------------------------- 4. a mapped column's type changed


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_a_type_widened_past_what_the_other_side_holds_stops_before_rounding(pair, origin):
    table = SIDES[origin][0]
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")], what="row before the DDL")
    alter = (f"ALTER TABLE {table} ALTER COLUMN credit TYPE numeric(14,4)" if origin == "crm"
             else f"ALTER TABLE {table} MODIFY credit decimal(14,4)")
    write(pair, origin, alter)
    write(pair, origin, insert(origin, 2, "1.2345"))
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    log = pair.log()
    old, new = ("numeric(12,2)", "numeric(14,4)") if origin == "crm" else ("decimal(12,2)", "decimal(14,4)")
    assert f"{table}, column credit: its type changed from {old} to {new}" in log, log
    assert "check` now refuses" in log and "fix:" in log
    # the other side never got 1.23 for 1.2345
    assert rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")]
    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_CONFIG and "lossy" in check.stdout


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_a_quiet_table_altered_after_the_start_up_check_is_checked_at_its_first_row(pair, origin):
    """No row of the table since the start: the reader's first description of it already has the new type."""
    wait_until(lambda: pair.log().count("streaming from") >= 2, what="both directions streaming")
    table = SIDES[origin][0]
    write(pair, origin, f"ALTER TABLE {table} ALTER COLUMN credit TYPE numeric(14,4)" if origin == "crm"
          else f"ALTER TABLE {table} MODIFY credit decimal(14,4)")
    write(pair, origin, insert(origin, 1, "1.2345"))
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    new = "numeric(14,4)" if origin == "crm" else "decimal(14,4)"
    assert f"{table}, column credit: the table changed after the start-up check" in pair.log(), pair.log()
    assert f"{new.split('(')[0].upper()}(14, 4)" in pair.log() and "`check` now refuses" in pair.log()
    assert rows(pair, other(origin)) == []


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_a_type_widened_within_what_the_other_side_holds_carries_on(pair, origin):
    table = SIDES[origin][0]
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")], what="row before the DDL")
    if origin == "crm":  # varchar(50) -> varchar(120) into a MariaDB varchar(200); numeric(12,2) -> (10,2)
        ddl = [f"ALTER TABLE {table} ALTER COLUMN note TYPE varchar(120)",
               f"ALTER TABLE {table} ALTER COLUMN credit TYPE numeric(10,2)"]
    else:  # varchar(200) -> varchar(40) (narrowed) and credit decimal(12,2) -> decimal(10,2)
        ddl = [f"ALTER TABLE {table} MODIFY note varchar(40)", f"ALTER TABLE {table} MODIFY credit decimal(10,2)"]
    long_note = "x" * 40
    if origin == "crm":
        write(pair, origin, insert(origin, 2), *ddl, insert(origin, 3, "12345678.91", long_note))
    else:
        write(pair, origin, insert(origin, 2), *ddl[:1])
        write(pair, origin, *ddl[1:])
        write(pair, origin, insert(origin, 3, "12345678.91", long_note))
    expected = [(1, Decimal("1.50"), "n"), (2, Decimal("1.50"), "n"), (3, Decimal("12345678.91"), long_note)]
    wait_until(lambda: rows(pair, other(origin)) == expected, what="rows of the new types")
    assert pair.proc.poll() is None, pair.log()


def test_fractional_seconds_added_on_one_side_stop_until_the_other_side_holds_them(pair):
    """datetime -> datetime(6) on the MariaDB source while the PostgreSQL column is timestamp(0), which would
    round the microseconds away: the stream stops before the row; once the other side is widened too, the
    start carries the row exactly (it was never applied, so it is read again)."""
    pair.my_query("INSERT INTO customers (id, customer_name, seen) VALUES (1, 'a', '2024-01-02 03:04:05')")
    wait_until(lambda: rows(pair, "crm", "id, seen::text") == [(1, "2024-01-02 03:04:05")], what="before")
    pair.my_query("ALTER TABLE customers MODIFY seen datetime(6)")
    pair.my_query("INSERT INTO customers (id, customer_name, seen) VALUES (2, 'b', '2024-01-02 03:04:05.123456')")
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    assert "customers, column seen: its type changed from datetime to datetime(6)" in pair.log(), pair.log()
    assert rows(pair, "crm", "id, seen::text") == [(1, "2024-01-02 03:04:05")]
    pair.pg_query("ALTER TABLE customer ALTER COLUMN seen TYPE timestamp(6)")
    pair.start()
    wait_until(lambda: rows(pair, "crm", "id, seen::text") == [(1, "2024-01-02 03:04:05"),
                                                               (2, "2024-01-02 03:04:05.123456")],
               what="microseconds carried after the fix")
    assert pair.proc.poll() is None, pair.log()


# ---------------------------------------------------------------- 2. a new column, then mapped


def test_a_column_added_then_mapped_carries_new_changes_and_sync_copies_the_rest(pair):
    pair.pg_query("INSERT INTO customer (id, name) VALUES (1, 'a'), (2, 'b')")
    wait_until(lambda: len(rows(pair, "erp")) == 2, what="rows before")
    # the application upgrade: the column on the target first, then on the source
    pair.my_query("ALTER TABLE customers ADD COLUMN tier varchar(10)")
    pair.pg_query("ALTER TABLE customer ADD COLUMN tier varchar(10)")
    pair.pg_query("UPDATE customer SET tier = 'gold'")  # existing values, before the mapping names the column
    write_mappings(pair, MAPPINGS + "      tier: ~\n")
    reload(pair)
    wait_until(lambda: "mappings reloaded" in pair.log(), what="reload")
    pair.pg_query("UPDATE customer SET tier = 'silver', name = 'b2' WHERE id = 2")
    wait_until(lambda: rows(pair, "erp", "id, tier")[1] == (2, "silver"), what="the new column carried")
    # row 1's 'gold' was set before the mapping named the column: carried only if that change was still
    # ahead of the checkpoint when the reload resumed from it; a sync of the mapping copies it in any case
    # the value set before the mapping named it is only copied by a sync of the mapping
    pair.cli("sync", "--mapping", "customers", timeout=120)
    wait_until(lambda: rows(pair, "erp", "id, tier") == [(1, "gold"), (2, "silver")], what="sync copied the rest")
    assert pair.proc.poll() is None, pair.log()


# ---------------------------------------------------------------- 6. the target's table altered


def test_target_column_narrowed_or_dropped_is_a_row_error_naming_it(pair):
    pair.pg_query("INSERT INTO customer (id, name, note) VALUES (1, 'a', 'short')")
    wait_until(lambda: rows(pair, "erp") == [(1, None, "short")], what="before")
    pair.my_query("ALTER TABLE customers MODIFY note varchar(5)")
    pair.pg_query("INSERT INTO customer (id, name, note) VALUES (2, 'b', 'far too long')")
    assert pair.wait_exit(60) == 1, pair.log()
    log = pair.log()
    assert "key (2,)" in log and "column note" in log, log
    assert rows(pair, "erp") == [(1, None, "short")]


@pytest.mark.parametrize("target", ["erp", "crm"])
def test_target_scale_narrowed_in_a_two_way_mapping_stops_naming_the_column(pair, target):
    """decimal(12,2) -> decimal(12,1) on one side: both databases round what is written into it without an
    error. The direction writing into it finds the new shape before it commits its first write into it (the
    table's reader would see it only at the table's next change, the echo of that write), rolls it back and
    stops: no rounded row is committed."""
    origin = other(target)
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, target) == [(1, Decimal("1.50"), "n")], what="before")
    ttable = SIDES[target][0]
    if target == "erp":
        pair.my_query(f"ALTER TABLE {ttable} MODIFY credit decimal(12,1)")
    else:
        pair.pg_query(f"ALTER TABLE {ttable} ALTER COLUMN credit TYPE numeric(12,1)")
    write(pair, origin, insert(origin, 2, "1.25"))
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    log = pair.log()
    # its type changed from (12,2) to (12,1) -- or, when the reader's first sight of the table already came
    # after the ALTER, the table changed after the start-up check: the catalog's types are in check's words
    assert f"{ttable}, column credit: " in log and "`check` now refuses" in log, log
    assert "(12,1)" in log or "(12, 1)" in log
    assert "rolled back, nothing of it was committed" in log, log
    assert [r[0] for r in rows(pair, target)] == [1]
    check = pair.cli("check", check=False)
    assert check.returncode == EXIT_CONFIG and "credit" in check.stdout


# ---------------------------------------------------------------- 5. a mapped table renamed, dropped, created again


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_a_mapped_table_renamed_stops_before_its_rows_under_the_new_name(pair, origin):
    table, name, _, _ = SIDES[origin]
    write(pair, origin, insert(origin, 1))
    wait_until(lambda: rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")], what="before")
    (pair.pg_query if origin == "crm" else pair.my_query)(f"ALTER TABLE {table} RENAME TO {table}_old")
    write(pair, origin, f"INSERT INTO {table}_old (id, {name}, credit, note) VALUES (2, 'x', 2, 'n')")
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    assert f"{table} was renamed to " in pair.log() and f"{table}_old" in pair.log(), pair.log()
    assert rows(pair, other(origin)) == [(1, Decimal("1.50"), "n")]


def test_a_mariadb_table_renamed_with_double_quotes_under_ansi_quotes_stops_the_same(pair):
    """The session's sql_mode ANSI_QUOTES makes "customers" a name: the binlog carries the statement's sql_mode and
    the reader reads the rename with it (tests/integration/test_ddl_ansi_quotes.py: every such DDL)."""
    write(pair, "erp", insert("erp", 1))
    wait_until(lambda: rows(pair, "crm") == [(1, Decimal("1.50"), "n")], what="before")
    write(pair, "erp", "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
          f'RENAME TABLE "{pair.maria.dbname}"."customers" TO "customers_old"',
          """INSERT INTO "customers_old" (id, customer_name, credit, note) VALUES (2, 'x', 2, 'n')""")
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    assert "customers was renamed to " in pair.log() and "customers_old" in pair.log(), pair.log()
    assert rows(pair, "crm") == [(1, Decimal("1.50"), "n")]


def test_a_postgresql_table_dropped_and_created_again_stops_it_is_in_no_publication(pair):
    write(pair, "crm", insert("crm", 1))
    wait_until(lambda: rows(pair, "erp") == [(1, Decimal("1.50"), "n")], what="before")
    pair.pg_query("DROP TABLE customer")
    pair.pg_query(PG_SCHEMA)
    write(pair, "crm", insert("crm", 3))  # never sent: the new table is in no publication
    assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
    assert "public.customer is no longer in publication" in pair.log(), pair.log()
    # the fix the message gives: setup (the publication), start, sync the mapping
    pair.pg_query("ALTER TABLE customer REPLICA IDENTITY FULL")
    pair.setup()
    pair.start()
    pair.cli("sync", "--mapping", "customers", timeout=120)
    wait_until(lambda: (3, Decimal("1.50"), "n") in rows(pair, "erp"), what="the row of the new table copied")


def test_a_mariadb_table_dropped_and_created_again_stops_as_a_truncate_does(pair):
    """The rows a DROP TABLE took are gone from the ERP as after a TRUNCATE; going on by name (as before) left them
    in the CRM without a word. The reader reads the DROP as a TRUNCATE: `truncate: stop` (the default) stops."""
    write(pair, "erp", insert("erp", 1))
    wait_until(lambda: rows(pair, "crm") == [(1, Decimal("1.50"), "n")], what="before")
    pair.my_query("DROP TABLE customers")
    pair.my_query(MY_SCHEMA)
    write(pair, "erp", insert("erp", 3, "3.25", "new"))
    code = pair.wait_exit(60)
    log = pair.log()
    assert code not in (None, 0), log
    assert "customers was dropped (DROP TABLE `customers` /* generated by server */)" in log and "customers was truncated on erp" in log, log
    assert rows(pair, "crm") == [(1, Decimal("1.50"), "n")]  # nothing after the DROP applied


def test_a_mariadb_table_dropped_and_created_again_with_truncate_propagate_empties_the_other_side(make_pair):
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS.replace("direction: both", "direction: both\n    truncate: propagate"))
    pair.start()
    write(pair, "erp", insert("erp", 1))
    wait_until(lambda: rows(pair, "crm") == [(1, Decimal("1.50"), "n")], what="before")
    pair.my_query("DROP TABLE customers")
    pair.my_query(MY_SCHEMA)
    write(pair, "erp", insert("erp", 3, "3.25", "new"))
    wait_until(lambda: rows(pair, "crm") == [(3, Decimal("3.25"), "new")], what="emptied, then the new table's row")
    assert pair.proc.poll() is None, pair.log()
    pair.stop()


# ---------------------------------------------------------------- 6. a table only written, altered while running

NARROW_PG = "CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, credit numeric(14,4), seen timestamp(6))"
NARROW_MY = """
CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(200) NOT NULL, credit decimal(14,4),
                        seen datetime(6))
"""
ONE_WAY = """
mappings:
  customers:
    direction: {direction}
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [id]}}
    fields:
      id: ~
      name: {{erp: customer_name}}
      credit: ~
      seen: ~
"""
ALTERS = {  # (target, column): (from, to); spelled as each server's catalog spells the type
    ("erp", "credit"): ("decimal(14,4)", "decimal(12,2)"),
    ("erp", "seen"): ("datetime(6)", "datetime"),
    ("crm", "credit"): ("numeric(14,4)", "numeric(12,2)"),
    ("crm", "seen"): ("timestamp(6) without time zone", "timestamp(0) without time zone"),
}


def alter(pair: Pair, target: str, column: str, to: str) -> None:
    if target == "erp":
        pair.my_query(f"ALTER TABLE customers MODIFY {column} {to}")
    else:
        pair.pg_query(f"ALTER TABLE customer ALTER COLUMN {column} TYPE {to}")


def one_way(make_pair, target: str) -> Pair:
    p = make_pair(NARROW_PG, NARROW_MY, ONE_WAY.format(direction=f"{other(target)}_to_{target}"))
    p.start()
    return p


def exact_row(origin: str, key: int, credit: str, seen: str) -> str:
    table, name, _, _ = SIDES[origin]
    return f"INSERT INTO {table} (id, {name}, credit, seen) VALUES ({key}, 'c{key}', {credit}, '{seen}')"


def target_rows(pair: Pair, target: str) -> list[tuple]:
    return rows(pair, target, "id, credit, seen")


ROW1 = (1, Decimal("1.2345"), datetime(2026, 1, 2, 3, 4, 5, 123456))
ROW2 = (2, Decimal("2.3456"), datetime(2026, 1, 2, 3, 4, 5, 654321))


@pytest.mark.parametrize("target,column", list(ALTERS))
def test_a_written_table_narrowed_stops_before_a_rounded_row_commits(make_pair, target, column):
    """A one-way mapping's target: nothing reads it. The applier confirms, before each commit, that the tables it
    wrote still have the shape it planned with: the transaction written into the narrowed column is rolled back,
    the direction stops (78) naming table, column, old and new type, and the checkpoint stays before it: widened
    back, the next start carries the row exactly."""
    origin, (old, new) = other(target), ALTERS[(target, column)]
    pair = one_way(make_pair, target)
    try:
        write(pair, origin, exact_row(origin, 1, "1.2345", "2026-01-02 03:04:05.123456"))
        wait_until(lambda: target_rows(pair, target) == [ROW1], what="row 1 exact")
        alter(pair, target, column, new)
        write(pair, origin, exact_row(origin, 2, "2.3456", "2026-01-02 03:04:05.654321"))
        assert pair.wait_exit(60) == EXIT_CONFIG, pair.log()
        log = pair.log()
        ttable = SIDES[target][0]
        assert f"{ttable}, column {column}: its type changed from {old} to {new}" in log, log
        assert "`check` now refuses" in log and "rolled back, nothing of it was committed" in log, log
        assert [r[0] for r in target_rows(pair, target)] == [1]  # row 2 never committed, rounded or not
        alter(pair, target, column, old)
        pair.start()
        wait_until(lambda: target_rows(pair, target)[1:] == [ROW2], what="row 2 exact after the fix")
    finally:
        pair.stop()


@pytest.mark.parametrize("target", ["erp", "crm"])
def test_a_written_table_widened_while_running_carries_on_exactly(make_pair, target):
    origin = other(target)
    pair = one_way(make_pair, target)
    try:
        write(pair, origin, exact_row(origin, 1, "1.2345", "2026-01-02 03:04:05.123456"))
        wait_until(lambda: target_rows(pair, target) == [ROW1], what="row 1 exact")
        alter(pair, target, "credit", "decimal(16,6)" if target == "erp" else "numeric(16,6)")
        write(pair, origin, exact_row(origin, 2, "2.3456", "2026-01-02 03:04:05.654321"))
        wait_until(lambda: target_rows(pair, target) == [ROW1, ROW2], what="row 2 exact")
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()
        assert pair.metric("replicator_target_schema_changes_total", direction=f"{origin}_to_{target}") == 1
        assert "changed while streaming: credit" in pair.log()
    finally:
        pair.stop()


@pytest.mark.parametrize("target", ["erp", "crm"])
def test_verify_finds_a_row_the_target_rounded_and_repair_rewrites_it_once_widened(make_pair, target):
    """Narrowed while nothing was written (the ALTER itself rounds the rows it holds): verify compares a copied
    decimal and timestamp with the source value, not at the target's scale, so it reports the row; widened back,
    `verify --repair` rewrites it exactly."""
    origin = other(target)
    pair = one_way(make_pair, target)
    try:
        write(pair, origin, exact_row(origin, 1, "1.2345", "2026-01-02 03:04:05.123456"))
        wait_until(lambda: target_rows(pair, target) == [ROW1], what="row 1 exact")
        pair.stop()
        for column in ("credit", "seen"):
            alter(pair, target, column, ALTERS[(target, column)][1])
        assert target_rows(pair, target) != [ROW1]
        verified = pair.cli("verify", check=False)
        assert verified.returncode != 0 and "1 differing" in verified.stdout, verified.stdout + verified.stderr
        for column in ("credit", "seen"):
            alter(pair, target, column, ALTERS[(target, column)][0])
        pair.cli("verify", "--repair", check=False)
        assert target_rows(pair, target) == [ROW1]
        assert pair.cli("verify", check=False).returncode == 0
    finally:
        pair.stop()


@pytest.mark.parametrize("target,column", [("erp", "seen"), ("crm", "credit")])
def test_a_table_narrowed_during_a_repair_stops_it_before_a_rounded_row_commits(make_pair, target, column):
    """`verify --repair` commits without a checkpoint (`commit_untracked`), and is held to the shape check all the
    same: the column is narrowed after the repair planned its types and before it writes (it waits on the source
    row's lock the test holds), the write would be rounded without an error (fractional seconds on MariaDB, a
    numeric on PostgreSQL), so the repair is rolled back and stops (78) naming table, column, old and new type."""
    origin, (old, new) = other(target), ALTERS[(target, column)]
    pair = one_way(make_pair, target)
    try:
        write(pair, origin, exact_row(origin, 1, "1.2345", "2026-01-02 03:04:05.123456"))
        wait_until(lambda: target_rows(pair, target) == [ROW1], what="row 1 exact")
        pair.stop()
        broken = (1, Decimal("9.0000"), datetime(2020, 1, 1))
        ttable = SIDES[target][0]
        (pair.my_query if target == "erp" else pair.pg_query)(
            f"UPDATE {ttable} SET credit = 9, seen = '2020-01-01' WHERE id = 1")
        # the source row locked: the repair plans the target's types, then waits to read it
        db = pair.pg if origin == "crm" else pair.maria
        holder = db.connect(autocommit=False)
        repair = None
        try:
            with holder.cursor() as cur:
                cur.execute(f"SELECT id FROM {SIDES[origin][0]} WHERE id = 1 FOR UPDATE")
            repair = subprocess.Popen([sys.executable, "-m", "replicator", "verify", "--repair", "--config",
                                       str(pair.config_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, cwd=pair.tmp, env=checkout_env())
            waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'" if origin == "crm" else
                       "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
            query = pair.pg_query if origin == "crm" else pair.my_query
            wait_until(lambda: query(waiting)[0][0] > 0 or repair.poll() is not None, 60, "the repair waiting")
            assert repair.poll() is None, repair.communicate()[0]
            alter(pair, target, column, new)
        finally:
            holder.rollback()
            holder.close()
        out = repair.communicate(timeout=120)[0] if repair is not None else ""
        assert repair is not None and repair.returncode == EXIT_CONFIG, out
        assert f"{ttable}, column {column}: its type changed from {old} to {new}" in out, out
        assert target_rows(pair, target) == [broken]  # nothing of the repair committed, rounded or not
        alter(pair, target, column, old)
        pair.cli("verify", "--repair", check=False)
        assert target_rows(pair, target) == [ROW1]
    finally:
        pair.stop()


def test_a_mariadb_rounding_note_no_mapping_allows_stops_naming_table_key_and_column(make_pair):
    """`run --skip-check` waived check's refusal of numeric(14,4) into decimal(12,2): MariaDB rounds the value
    with a Note 1265 and no error. The applier reads every write's warning count: the table's shape is the
    planned one, no field allows the loss, so the direction stops naming table, key, column and the note."""
    pair = make_pair(NARROW_PG, NARROW_MY.replace("decimal(14,4)", "decimal(12,2)"),
                     ONE_WAY.format(direction="crm_to_erp"))
    pair.start("--skip-check")
    try:
        write(pair, "crm", exact_row("crm", 7, "1.2345", "2026-01-02 03:04:05.123456"))
        assert pair.wait_exit(60) == 1, pair.log()
        log = pair.log()
        assert "key (7,), column credit" in log and "Data truncated for column 'credit'" in log, log
        assert target_rows(pair, "erp") == []
    finally:
        pair.stop()


def test_a_mariadb_rounding_note_on_a_lossy_field_is_what_the_mapping_allows(make_pair):
    mappings = ONE_WAY.format(direction="crm_to_erp").replace("      credit: ~", "      credit: {lossy: allow}")
    pair = make_pair(NARROW_PG, NARROW_MY.replace("decimal(14,4)", "decimal(12,2)"), mappings)
    pair.start()
    try:
        write(pair, "crm", exact_row("crm", 7, "1.2345", "2026-01-02 03:04:05.123456"))
        wait_until(lambda: target_rows(pair, "erp") == [(7, Decimal("1.23"), ROW1[2])], what="row 7, rounded")
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()
    finally:
        pair.stop()
