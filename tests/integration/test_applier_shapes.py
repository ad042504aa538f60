"""The planned shape of a target table on real servers: what `load_types` reads at start-up (and how many round
trips it takes), and the confirmation before each commit that the tables written keep that shape -- an ALTER
TABLE that narrowed a column since is found, never written over silently.

PostgreSQL: one query per table for the columns, one for the plan (the SELECT privilege the staging table needs,
the shape digest `commit` compares, the types' names). MariaDB: a statement that warns reads the table's shape
at once (`_warned`); the commit does not read it again for that table."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest

from replicator.appliers import make_applier
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import load
from replicator.errors import RowError, TargetShapeChanged

PG = ("CREATE TABLE a1 (id int PRIMARY KEY, amount numeric(12,4), note text); "
      "CREATE TABLE a2 (id int PRIMARY KEY, amount numeric(12,4), note text); "
      "CREATE TABLE a3 (id int PRIMARY KEY, amount numeric(12,4), note text)")
MY = ("CREATE TABLE a1 (id INT PRIMARY KEY, amount DECIMAL(12,4), note TEXT); "
      "CREATE TABLE a2 (id INT PRIMARY KEY, amount DECIMAL(12,4), note TEXT); "
      "CREATE TABLE a3 (id INT PRIMARY KEY, amount DECIMAL(12,4), note TEXT)")
MAPPINGS = "mappings:\n" + "".join(f"""  {t}:
    direction: both
    crm: {{table: {t}, key: [id]}}
    erp: {{table: {t}, key: [id]}}
    fields: {{id: ~, amount: ~, note: ~}}
""" for t in ("a1", "a2", "a3"))
EXTRA = "sync: {on_first_run: false}\n"


def _applier(pair: Any, side: str, stream: str) -> Any:
    a = make_applier(load(pair.config_path).side(side), stream, "")
    a.connect()
    return a


def _row(table: TableRef, key: int, amount: str) -> TargetChange:
    return TargetChange(table, Op.INSERT, ("id",), (key,), {"id": key, "amount": Decimal(amount), "note": "n"})


def test_postgresql_load_types_reads_a_table_in_two_round_trips_and_commit_confirms_its_shape(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config=EXTRA)
    a = _applier(pair, "crm", "erp_to_crm")
    statements: list[str] = []

    class Counting(psycopg2.extensions.cursor):  # type: ignore[misc]
        def execute(self, query: Any, vars: Any = None) -> Any:
            statements.append(str(query))
            return super().execute(query, vars)
    try:
        a.db.cursor_factory = Counting
        tables = [TableRef("public", t) for t in ("a1", "a2", "a3")]
        a.load_types(tables)
        # the columns (information_schema), then the plan: privilege, digest, types (before: four a table)
        assert len(statements) == 2 * len(tables), statements
        assert a.planned[tables[0]] == {"id": "integer", "amount": "numeric(12,4)", "note": "text"}
        assert tables[0] in a._stageable
        position = a.read_checkpoint()
        assert position is not None

        # the digest load_types read is the one the commit reads: an unchanged table commits
        a.begin()
        a.apply([_row(tables[0], 1, "1.2345"), _row(tables[1], 1, "1.2345")])
        a.commit(position, None)
        assert pair.pg_query("SELECT amount FROM a1") == [(Decimal("1.2345"),)]

        # narrowed after load_types: the commit finds it, and nothing of the transaction stays
        pair.pg_query("ALTER TABLE a2 ALTER amount TYPE numeric(12,2)")
        a.begin()
        a.apply([_row(tables[0], 2, "2.2345"), _row(tables[1], 2, "2.2345")])
        with pytest.raises(TargetShapeChanged) as raised:
            a.commit(position, None)
        assert raised.value.tables == [tables[1]], raised.value.tables
        assert pair.pg_query("SELECT id FROM a1 ORDER BY id") == [(1,)]
        assert pair.pg_query("SELECT id, amount FROM a2 ORDER BY id") == [(1, Decimal("1.23"))]
    finally:
        a.close()
