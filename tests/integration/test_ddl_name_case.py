"""Table and database names in binlog DDL and rows matched as the MariaDB server matches them.

With lower_case_table_names=1 the server stores and binlogs every table and database name in lower case and
matches a statement's names without regard to case: `TRUNCATE T` empties the mapped `t`, a mapping naming
`Erp.Customers` is the table the binlog calls `erp`.`customers`. With 0 (the default on Linux) names are
case-sensitive: `T` and `t` are two tables and a DDL on `T` must not be read as one on `t`. Read through the
daemon's own BinlogSource, which reads the setting from the server at its start, from real servers' binlogs: a
throwaway MariaDB started with lower_case_table_names=1 (about a second), and the shared one (0).
"""
from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy

from replicator.changes import BinlogPosition, Op, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.loopguard import LoopGuard
from replicator.mapping.check.catalog import read_catalog
from replicator.mapping.check.serverside import read_server_side
from replicator.sources.binlog import BinlogSource
from replicator.testing.devservers import Database, MariaDBServer
from tests.integration.harness import master_position


class _Watch:
    """A ShapeWatch that records, in order, what the reader told it."""

    def __init__(self, seen: list[tuple[Any, ...]]):
        self.out = seen

    def seen(self, table: TableRef, shape: Any) -> None:
        self.out.append(("shape", str(table)))

    def left(self, table: TableRef, how: str) -> None:
        self.out.append(("left", str(table), how))


def _run(db: Database, tables: list[TableRef], statements: list[str]) -> tuple[BinlogSource, list[tuple[Any, ...]]]:
    """Run `statements`, then read them back through a BinlogSource of `tables` that reads the server's
    lower_case_table_names itself: what it told its watch, the rows and the TRUNCATEs it handed on, in order."""
    start = master_position(db)
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()
    end = master_position(db)
    acc = Account(db.user, Secret(db.password))
    conn_cfg = Connection("erp", "mariadb", db.host, db.port, db.dbname, acc, acc,
                          server_id=random.randrange(10 ** 6, 10 ** 9))
    out: list[tuple[Any, ...]] = []
    source = BinlogSource(conn_cfg, "erp_to_crm", tables, LoopGuard("replicator", "crm_to_erp"),
                          BinlogPosition(*start), chunk_rows=100_000, heartbeat_seconds=1.0, shapes=_Watch(out))
    timer = threading.Timer(30, source.stop)
    timer.start()
    try:
        gen = source.transactions()
        for txn in gen:
            if isinstance(txn, Transaction):
                out.extend((c.op.value, str(c.table)) + ((c.after,) if c.after else ()) for c in txn.changes)
                if txn.final and (txn.position.file, txn.position.pos) >= end:
                    break
        source.stop()
        gen.close()
    finally:
        timer.cancel()
    return source, out


@pytest.fixture(scope="module")
def lower_case_server(server_root: Path, require_mariadb: None) -> Iterator[MariaDBServer]:
    server = MariaDBServer(server_root / "mariadb-lower-case", {"lower_case_table_names": 1})
    server.start()
    yield server
    server.stop()


def test_with_lower_case_table_names_1_names_in_any_case_are_the_mapped_tables(lower_case_server: MariaDBServer) -> None:
    name = f"Erp_{uuid.uuid4().hex[:8]}"  # stored as erp_...: the mappings spell it in mixed case
    db = lower_case_server.create_database(name)
    customers, t = TableRef(name, "Customers"), TableRef(name, "t")
    try:
        # what `check` and the shape watch read (DESCRIBE, information_schema): the mapping's spelling finds it
        engine = sqlalchemy.create_engine(db.url(), poolclass=sqlalchemy.pool.NullPool)
        lower_case_server.execute(f"CREATE TABLE `{name}`.Customers (id INT PRIMARY KEY, v INT)")
        lower_case_server.execute(f"CREATE TABLE `{name}`.Orders (id INT PRIMARY KEY, customer INT, FOREIGN KEY "
                                  f"(customer) REFERENCES Customers (id) ON DELETE CASCADE)")
        lower_case_server.execute(f"CREATE TRIGGER `{name}`.stamp BEFORE INSERT ON `{name}`.Customers FOR EACH ROW "
                                  f"SET NEW.v = 1")
        orders = TableRef(name, "Orders")
        try:
            assert set(read_catalog(engine, [customers])[customers]) == {"id", "v"}
            # the cascade and trigger rules of `check` see them under the mappings' spelling
            side = read_server_side(engine, [customers, orders])
            assert [(fk.child, fk.parent, fk.on_delete) for fk in side.foreign_keys] == [(orders, customers, "CASCADE")]
            assert [(tr.name, tr.table) for tr in side.triggers] == [("stamp", customers)]
        finally:
            engine.dispose()
        lower_case_server.execute(f"DROP TABLE `{name}`.Orders")
        lower_case_server.execute(f"DROP TRIGGER `{name}`.stamp")
        source, out = _run(db, [customers, t], [
            "CREATE TABLE T (id INT PRIMARY KEY)",
            "INSERT INTO CUSTOMERS VALUES (1, 1)",
            "INSERT INTO T VALUES (2)",
            "TRUNCATE T",
            f"TRUNCATE TABLE `{name.upper()}`.`CUSTOMERS`",
            "RENAME TABLE T TO t_old",
            "RENAME TABLE T_OLD TO T",
            f"ALTER TABLE {name.lower()}.customers RENAME TO c2",
            "ALTER TABLE C2 RENAME TO CUSTOMERS",
            "INSERT INTO customers VALUES (3, 3)",
        ])
        assert source.lower_case_table_names == 1
        low = name.lower()
        assert out == [
            ("shape", str(customers)), ("insert", str(customers), {"id": 1, "v": 1}),
            ("shape", str(t)), ("insert", str(t), {"id": 2}),
            ("truncate", str(t)), ("truncate", str(customers)),
            ("left", str(t), f"renamed to {low}.t_old"), ("left", str(customers), f"renamed to {low}.c2"),
            ("shape", str(customers)), ("insert", str(customers), {"id": 3, "v": 3}),
        ]
    finally:
        lower_case_server.drop_database(name)


def test_with_lower_case_table_names_0_another_case_is_another_table_and_a_string_is_no_rename(maria_db: Database) -> None:
    t = TableRef(maria_db.dbname, "t")
    source, out = _run(maria_db, [t], [
        "CREATE TABLE t (id INT PRIMARY KEY)",
        "CREATE TABLE T (id INT PRIMARY KEY)",
        "INSERT INTO T VALUES (1)",
        "TRUNCATE T",
        "RENAME TABLE T TO t_old",
        "ALTER TABLE t_old RENAME TO T",
        "INSERT INTO t VALUES (2)",
        # a string renames nothing; under NO_BACKSLASH_ESCAPES a backslash ends no string, the rename is real
        "ALTER TABLE t COMMENT 'x, RENAME TO y'",
        "ALTER TABLE t COMMENT 'a\\', RENAME TO y'",
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')",
        "ALTER TABLE t COMMENT 'a\\', RENAME TO t2",
        "RENAME TABLE t2 TO t",
    ])
    assert source.lower_case_table_names == 0
    assert out == [("shape", str(t)), (Op.INSERT.value, str(t), {"id": 2}),
                   ("left", str(t), f"renamed to {maria_db.dbname}.t2")]


PAIR_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: Customers, key: [id]}
    fields:
      id: ~
      name: ~
"""


def test_a_mapping_in_mixed_case_on_a_lower_case_server_is_checked_streamed_and_stops_at_its_truncate(
        tmp_path: Path, pg_db: Database, lower_case_server: MariaDBServer) -> None:
    """End to end on a lower_case_table_names=1 server: a database and a state schema in mixed case (stored and
    binlogged in lower case), a mapping naming `Customers`. `check` passes, rows go both ways without an echo
    coming back, and a `TRUNCATE customers` written in another case than the mapping's stops the direction."""
    from tests.integration.harness import Pair, wait_until

    name = f"Erp_{uuid.uuid4().hex[:8]}"
    db = lower_case_server.create_database(name)
    pair = None
    try:
        lower_case_server.execute(f"CREATE TABLE `{name}`.Customers (id INT PRIMARY KEY, name VARCHAR(50))")
        conn = pg_db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE customer (id int PRIMARY KEY, name varchar(50))")
                cur.execute("ALTER TABLE customer REPLICA IDENTITY FULL")
            conn.commit()
        finally:
            conn.close()
        pair = Pair(tmp_path, pg_db, db, PAIR_MAPPINGS)
        assert pair.state_schema != pair.state_schema.lower()
        pair.setup()
        pair.cli("check")
        pair.start()
        pair.my_query("INSERT INTO CUSTOMERS VALUES (1, 'from the erp')")
        wait_until(lambda: pair.pg_query("SELECT id, name FROM customer") == [(1, "from the erp")], what="erp row")
        pair.pg_query("INSERT INTO customer VALUES (2, 'from the crm')")
        wait_until(lambda: pair.my_query("SELECT id FROM customers ORDER BY id") == [(1,), (2,)], what="crm row")
        # the crm row's write into the erp comes back through the binlog as an echo, tagged in rs_Erp_... (stored
        # as rs_erp_...): recognised and dropped
        wait_until(lambda: pair.metric("replicator_loop_dropped_batches_total", direction="erp_to_crm") >= 1,
                   what="the echo dropped")
        pair.my_query("TRUNCATE customers")
        assert pair.wait_exit(60) != 0, pair.log()
        assert "was truncated on erp" in pair.log(), pair.log()
        assert pair.pg_query("SELECT id FROM customer ORDER BY id") == [(1,), (2,)]
    finally:
        if pair is not None:
            pair.close()
        lower_case_server.drop_database(name)
