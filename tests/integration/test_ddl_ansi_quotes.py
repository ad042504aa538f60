"""DDL on mapped MariaDB tables read from the binlog with the quoting of the session that ran it.

Under sql_mode ANSI_QUOTES a `"t"` is a name, as `` `t` `` is; without it a string. The binlog reader finds a
mapped table renamed away (RENAME TABLE, ALTER TABLE ... RENAME) and a TRUNCATE in the statement's text, so it
reads that text with the ANSI_QUOTES of the statement's own sql_mode (the QueryEvent's status variables): every
DDL it sees on a mapped table written with backquotes must be seen the same written with double quotes in an
ANSI_QUOTES session -- schema-qualified names, quotes inside names, comments before the statement, keywords in
any case. Read through the daemon's own BinlogSource from a real server's binlog.
"""
from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from replicator.changes import BinlogPosition, Op, TableRef, Transaction
from replicator.config import Account, Connection, Secret
from replicator.loopguard import LoopGuard
from replicator.sources.binlog import BinlogSource
from replicator.testing.devservers import Database
from tests.integration.harness import master_position

ODD = 'q"u`o'  # a mapped table whose name holds both quote characters


class _Watch:
    """A ShapeWatch that records, in order, what the reader told it."""

    def __init__(self, seen: list[tuple[Any, ...]]):
        self.out = seen

    def seen(self, table: TableRef, shape: Any) -> None:
        self.out.append(("shape", table.name, tuple(c for c, _ in shape)))

    def left(self, table: TableRef, how: str) -> None:
        self.out.append(("left", table.name, how))


def _run(db: Database, statements: list[str], ansi: bool) -> list[tuple[Any, ...]]:
    """Run `statements` in one session (ANSI_QUOTES added to its sql_mode or not), then read them back through
    BinlogSource: what it told its watch and the TRUNCATEs it handed on, in order."""
    start = master_position(db)
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            if ansi:
                cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()
    end = master_position(db)
    acc = Account(db.user, Secret(db.password))
    conn_cfg = Connection("erp", "mariadb", db.host, db.port, db.dbname, acc, acc,
                          server_id=random.randrange(10 ** 6, 10 ** 9))
    out: list[tuple[Any, ...]] = []
    tables = [TableRef(db.dbname, n) for n in ("t", "Mixed", ODD)]
    source = BinlogSource(conn_cfg, "erp_to_crm", tables, LoopGuard("replicator", "crm_to_erp"),
                          BinlogPosition(*start), chunk_rows=100_000, heartbeat_seconds=1.0, shapes=_Watch(out))
    timer = threading.Timer(30, source.stop)
    timer.start()
    try:
        gen = source.transactions()
        for txn in gen:
            if isinstance(txn, Transaction):
                out.extend(("truncate", c.table.name) for c in txn.changes if c.op == Op.TRUNCATE)
                if txn.final and (txn.position.file, txn.position.pos) >= end:
                    break
        source.stop()
        gen.close()
    finally:
        timer.cancel()
    return out


def _quote(text: str, q: str) -> str:
    """Every name written {like this} in `text` quoted with `q`, a `q` inside doubled."""
    out, i = [], 0
    while True:
        j = text.find("{", i)
        if j < 0:
            return "".join(out) + text[i:]
        k = text.index("}", j)
        out.append(text[i:j] + q + text[j + 1:k].replace("\x00", ODD).replace(q, q + q) + q)
        i = k + 1


# each {name} is quoted per run, {\x00} is ODD
STATEMENTS = [
    "CREATE TABLE {t} (id INT PRIMARY KEY, v INT)",
    "CREATE TABLE {Mixed} (id INT PRIMARY KEY)",
    "CREATE TABLE {\x00} (id INT PRIMARY KEY)",
    "INSERT INTO t VALUES (1, 1)",
    "TRUNCATE {t}",
    "truncate table {DB}.{t};",
    "/* a comment */ TRUNCATE TABLE {t}",
    "-- a comment\nTRUNCATE TABLE {t}",
    "# a comment\nTRUNCATE TABLE {t}",
    "TRUNCATE TABLE {Mixed}",
    "TRUNCATE TABLE {\x00}",
    "TRUNCATE TABLE {t} WAIT 5",
    "RENAME TABLE {t} TO {t_old}",
    "RENAME TABLE {DB}.{t_old} TO {DB} . {t}",
    "RENAME TABLE IF EXISTS {t} NOWAIT TO {t_old}",
    "RENAME TABLE {t_old} TO {t}",
    "Rename Table {Mixed} To {m2}, {m2} TO {Mixed}",
    "ALTER TABLE {DB}.{t} RENAME TO {t2}",
    "ALTER TABLE {t2} RENAME {t}",
    "ALTER TABLE IF EXISTS {t} WAIT 5 RENAME TO {t2}",
    "ALTER TABLE {t2} RENAME {t}",
    "/* c */ ALTER TABLE {\x00} ADD COLUMN x INT, RENAME AS {DB}.{odd2}",
    "RENAME TABLE {odd2} TO {\x00}",
    "ALTER TABLE {t} ADD COLUMN {w} INT",
    "INSERT INTO t (id, v, w) VALUES (2, 2, 2)",
    "DROP TABLE {t}",
    "CREATE TABLE {t} (id INT PRIMARY KEY, v INT)",
    "INSERT INTO t VALUES (3, 3)",
]


def _statements(db: Database, q: str) -> list[str]:
    return [_quote(s.replace("{DB}", "{" + db.dbname + "}"), q) for s in STATEMENTS]


def test_ddl_with_double_quoted_names_under_ansi_quotes_is_read_as_with_backquotes(maria_db: Database) -> None:
    db = maria_db.dbname
    ansi = _run(maria_db, _statements(maria_db, '"'), ansi=True)
    conn = maria_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(_quote("DROP TABLE {t}, {Mixed}, {\x00}", "`"))
    finally:
        conn.close()
    plain = _run(maria_db, _statements(maria_db, "`"), ansi=False)
    assert ansi == plain
    assert ansi == [
        ("shape", "t", ("id", "v")), ("truncate", "t"), ("truncate", "t"), ("truncate", "t"), ("truncate", "t"),
        ("truncate", "t"), ("truncate", "Mixed"), ("truncate", ODD), ("truncate", "t"),
        ("left", "t", f"renamed to {db}.t_old"), ("left", "t", f"renamed to {db}.t_old"),
        ("left", "Mixed", f"renamed to {db}.m2"), ("left", "t", f"renamed to {db}.t2"),
        ("left", "t", f"renamed to {db}.t2"), ("left", ODD, f"renamed to {db}.odd2"),
        ("shape", "t", ("id", "v", "w")), ("truncate", "t"), ("shape", "t", ("id", "v")),
    ]
