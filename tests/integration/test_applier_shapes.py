"""The planned shape of a target table on real servers: what `load_types` reads at start-up (and how many round
trips it takes), and the confirmation before each commit that the tables written keep that shape -- an ALTER
TABLE that narrowed a column since is found, never written over silently.

PostgreSQL: one query per table for the columns, one for the plan (the SELECT privilege the staging table needs,
the shape digest `commit` compares, the types' names). MariaDB: a statement that warns reads the table's shape
at once (`_warned`); the commit does not read it again for that table."""
from __future__ import annotations

import re
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
        # the columns (information_schema), then the plan: privilege, digest, types (before: four a table); and one
        # read of all their constraints' columns, for row errors to name whatever the server's language, and one of
        # which have a BEFORE ROW trigger that may skip a row (whose writes are then counted)
        assert len(statements) == 2 * len(tables) + 2, statements
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


def _count_shape_reads(a: Any) -> list[str]:
    """The MariaDB applier's `SELECT ... LIMIT 0` shape reads from now on (every statement goes through the
    connection's `query`)."""
    reads: list[str] = []
    query = a.db.query

    def counted(sql: Any, *args: Any, **kwargs: Any) -> Any:
        text = sql.decode() if isinstance(sql, bytes) else str(sql)
        if text.endswith(" LIMIT 0"):
            reads.append(text)
        return query(sql, *args, **kwargs)
    a.db.query = counted
    return reads


def test_mariadb_a_statement_that_warns_on_a_narrowed_table_stops_the_transaction(make_pair):
    """The warning path reads the table's shape first: a column narrowed since load_types is a shape change
    (the stream checks the new shape), not a rounding note passed as `lossy: allow` nor written."""
    pair = make_pair(PG, MY, MAPPINGS, extra_config=EXTRA)
    a = _applier(pair, "erp", "crm_to_erp")
    try:
        table = TableRef(pair.maria.dbname, "a1")
        a.load_types([table])
        a.lossy.add((table, "amount"))  # even where the mapping allows the rounding note
        pair.my_query("ALTER TABLE a1 MODIFY amount DECIMAL(12,2)")
        position = a.read_checkpoint()
        reads = _count_shape_reads(a)
        a.begin()
        with pytest.raises(TargetShapeChanged) as raised:
            a.apply([_row(table, 1, "1.2345")])  # rounded to 1.23: Note 1265
        assert raised.value.tables == [table] and len(reads) == 1, (raised.value.tables, reads)
        assert pair.my_query("SELECT COUNT(*) FROM a1") == [(0,)]
        a.load_types([table])  # planned anew: the note on a lossy field is what the mapping allows
        a.begin()
        a.apply([_row(table, 1, "1.2345")])
        a.commit(position, None)
        assert pair.my_query("SELECT amount FROM a1") == [(Decimal("1.23"),)]
    finally:
        a.close()


def test_mariadb_the_shape_a_warning_confirmed_is_not_read_again_at_commit(make_pair):
    """A statement that warns on a table reads its shape; the commit then reads only the other tables written
    (the metadata lock our write holds keeps the confirmed shape until the commit). A table narrowed before
    its write is still found, at the commit, and a warning that is not the mapping's stops naming the row."""
    pair = make_pair(PG, MY, MAPPINGS, extra_config=EXTRA)
    a = _applier(pair, "erp", "crm_to_erp")
    try:
        t1, t2, t3 = (TableRef(pair.maria.dbname, t) for t in ("a1", "a2", "a3"))
        a.load_types([t1, t2, t3])
        a.lossy.add((t1, "amount"))
        position = a.read_checkpoint()
        reads = _count_shape_reads(a)
        a.begin()
        a.apply([_row(t1, 1, "1.23456"), _row(t2, 1, "1.2345")])  # a1's row rounded (allowed): a1 read
        a.apply([_row(t1, 2, "2.23456")])  # rounded again: a1's shape was confirmed in this transaction
        a.commit(position, None)
        # (before: a1 at each note, then a1 and a2 at the commit)
        assert [re.findall(r"`(a\d)` t\d", r) for r in reads] == [["a1"], ["a2"]], reads
        assert pair.my_query("SELECT id, amount FROM a1 ORDER BY id") == [(1, Decimal("1.2346")),
                                                                          (2, Decimal("2.2346"))]

        # undone to a savepoint (the dead-letter queue's): the locks taken after it may be given up, so a1 is
        # read again at the commit
        del reads[:]
        a.begin()
        a.execute("SAVEPOINT replicator_row", [])
        a.apply([_row(t1, 5, "5.23456")])
        a.execute("ROLLBACK TO SAVEPOINT replicator_row", [])
        a.apply([_row(t1, 6, "6.2345")])  # no note
        a.commit(position, None)
        assert [re.findall(r"`(a\d)` t\d", r) for r in reads] == [["a1"], ["a1"]], reads
        assert pair.my_query("SELECT id FROM a1 WHERE id > 4") == [(6,)]

        # a2 narrowed: a1's note confirms a1 only; the commit reads a2 and finds it
        pair.my_query("ALTER TABLE a2 MODIFY amount DECIMAL(12,2)")
        del reads[:]
        a.begin()
        a.apply([_row(t1, 3, "3.23456"), _row(t2, 3, "3.2")])
        with pytest.raises(TargetShapeChanged) as raised:
            a.commit(position, None)
        assert raised.value.tables == [t2] and len(reads) == 2, (raised.value.tables, reads)
        assert pair.my_query("SELECT COUNT(*) FROM a1 WHERE id = 3") == [(0,)]

        # a note on a field the mapping does not allow: the row error names table, key and column
        a.load_types([t1, t2, t3])
        a.begin()
        with pytest.raises(RowError) as refused:
            a.apply([_row(t3, 4, "4.23456")])
        assert (refused.value.table, refused.value.key, refused.value.column) == (str(t3), (4,), "amount")
        a.rollback()
        assert pair.my_query("SELECT COUNT(*) FROM a3") == [(0,)]
    finally:
        a.close()
