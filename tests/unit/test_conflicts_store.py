"""The conflict store's SQL and its value round trip, against a fake connection that records statements."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Sequence

import pymysql
import pytest

from replicator import metrics
from replicator.appliers.mariadb import quote as my_quote
from replicator.changes import TableRef
from replicator.config import Account, Connection, Secret
from replicator.conflicts import store
from replicator.conflicts.model import KEPT, LATEST, MANUAL, PENDING, RESOLVED, UPDATE_DIFFERS, UPDATE_MISSING, Conflict


def conn(kind: str, name: str) -> Connection:
    acc = Account("u", Secret(""))
    return Connection(name, kind, "h", 1, "db", acc, acc, state_schema="repl")


class FakeDb:
    """Records statements; answers queries from `answers` in order."""

    def __init__(self, kind: str, name: str = "erp", answers: Sequence[list[tuple]] = ()):
        self.conn = conn(kind, name)
        self.statements: list[tuple[str, list[Any]]] = []
        self.answers = list(answers)

    def quote_table(self, table: TableRef) -> str:
        if self.conn.kind == "postgresql":
            return f'"{table.schema}"."{table.name}"'
        return my_quote(table.schema, table.name)

    def quote_col(self, column: str) -> str:
        return f'"{column}"' if self.conn.kind == "postgresql" else my_quote(column)

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        self.statements.append((sql, list(params)))
        return self.answers.pop(0) if self.answers else []

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        self.statements.append((sql, list(params)))
        return 1


def conflict(**kw: Any) -> Conflict:
    base = dict(stream="crm_to_erp", mapping="acct", kind=UPDATE_DIFFERS, table=TableRef("erp", "acct"),
                target_key=(42,), source_key=(42,), field="credit", source_value=Decimal("10.50"),
                target_value=Decimal("7.00"), rule=LATEST, winner="erp", resolution=KEPT,
                source_commit_time=datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc), detail="erp's edit is later")
    base.update(kw)
    return Conflict(**base)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_record_is_one_insert_with_bound_values_and_no_commit(kind: str) -> None:
    db = FakeDb(kind)
    store.record(db, [conflict(), conflict(target_key=(43,), source_key=(43,))])
    assert len(db.statements) == 1
    sql, params = db.statements[0]
    assert sql.startswith("INSERT INTO ") and "repl" in sql and "conflicts" in sql
    assert sql.count("%s") == len(params) == 2 * len(store.COLUMNS)
    row = dict(zip(store.COLUMNS, params[:len(store.COLUMNS)]))
    assert row["target_key"] == "[42]" and row["target_table"] == "erp.acct"
    assert row["source_value"] == '{"$d":"10.50"}' and row["target_value"] == '{"$d":"7.00"}'
    assert "42" not in sql  # values are bound, never written into the statement
    when = row["source_commit_time"]
    if kind == "mariadb":  # DATETIME holds naive UTC
        assert when == datetime(2026, 12, 6, 9, 0)
    else:
        assert when.tzinfo is not None


def test_record_chunks_large_batches() -> None:
    db = FakeDb("postgresql")
    store.record(db, [conflict(target_key=(i,)) for i in range(store.CHUNK + 3)])
    assert [len(p) // len(store.COLUMNS) for _s, p in db.statements] == [store.CHUNK, 3]


def test_record_nothing_writes_nothing() -> None:
    db = FakeDb("mariadb")
    store.record(db, [])
    assert db.statements == []


def test_row_kind_without_field_stores_null_values() -> None:
    row = dict(zip(store.COLUMNS, store.row_values(conflict(kind=UPDATE_MISSING, field=None, source_value=None,
                                                            target_value=None), "postgresql")))
    assert row["field"] is None and row["source_value"] is None and row["target_value"] is None


def test_ddl_has_every_column_and_the_indexes() -> None:
    for stmts in (store.postgres_ddl('"repl"'), store.mariadb_ddl("`repl`")):
        table = stmts[0]
        for col in store.READ_COLUMNS:
            assert f" {col} " in table, col
        text = " ".join(stmts)
        assert "conflicts_time" in text and "conflicts_row" in text and "(detected_at)" in text


def test_listing_filters_are_bound_and_newest_first() -> None:
    db = FakeDb("mariadb")
    since = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
    sql, params = store.select_sql(db, store.Filter(since=since, mapping="acct", keys=((42,), ("42",)),
                                                    pending_only=True,
                                                    limit=7))
    assert "ORDER BY `detected_at` DESC, `id` DESC LIMIT 7" in sql
    assert "(`target_key` IN (%s, %s) OR `source_key` IN (%s, %s))" in sql
    assert params == [datetime(2026, 12, 6, 8, 0), "acct", "[42]", '["42"]', "[42]", '["42"]', PENDING]
    sql, params = store.select_sql(db, store.Filter())
    assert " WHERE " not in sql and params == []


def stored_row(**kw: Any) -> tuple:
    r = {"id": 5, "detected_at": datetime(2026, 12, 6, 9, 1), "stream": "crm_to_erp", "mapping": "acct",
         "kind": UPDATE_DIFFERS, "target_table": "erp.acct", "target_key": "[42]", "source_key": "[42]",
         "field": "since", "source_value": '{"$da":"2026-01-02"}', "target_value": "null", "rule": MANUAL,
         "winner": "", "resolution": PENDING, "detail": "", "source_commit_time": None, "resolved_at": None,
         "resolved_by": None}
    r.update(kw)
    return tuple(r[c] for c in store.READ_COLUMNS)


def test_rows_read_back_keep_types_and_get_utc() -> None:
    db = FakeDb("mariadb", answers=[[stored_row()]])
    (rec,) = store.list_conflicts(db, mapping="acct", key=(42,))
    assert db.statements[0][1] == ["acct", "[42]", "[42]"]
    assert rec.ref == "erp:5" and rec.source_side == "crm" and rec.target_side == "erp"
    assert rec.source_value == date(2026, 1, 2) and rec.target_value is None
    assert rec.detected_at == datetime(2026, 12, 6, 9, 1, tzinfo=timezone.utc)
    assert rec.value_of("crm") == date(2026, 1, 2) and rec.value_of("erp") is None
    assert rec.key_of("crm") == (42,)


def test_mark_resolved_only_touches_pending() -> None:
    db = FakeDb("postgresql")
    at = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
    assert store.mark_resolved(db, [3, 4], by="alice", at=at) == 1
    sql, params = db.statements[0]
    assert sql.startswith('UPDATE "repl"."conflicts" SET')
    assert params == [RESOLVED, at, "alice", PENDING, 3, 4]
    assert store.mark_resolved(db, [], by="alice") == 0 and len(db.statements) == 1


def test_trim_keeps_pending_records() -> None:
    db = FakeDb("mariadb")
    cutoff = datetime(2026, 11, 6, tzinfo=timezone.utc)
    store.trim(db, cutoff)
    sql, params = db.statements[0]
    assert sql.startswith("DELETE FROM `repl`.`conflicts` WHERE `detected_at` < %s AND `resolution` <> %s")
    assert params == [datetime(2026, 11, 6), PENDING]


def test_pending_by_table() -> None:
    db = FakeDb("mariadb", answers=[[("erp.acct", 2, datetime(2026, 12, 6, 9, 0))]])
    assert store.pending_by_table(db) == {"erp.acct": (2, datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc))}


def test_count_conflicts_labels_are_bounded() -> None:
    before = metrics.REGISTRY.get_sample_value(
        "replicator_conflicts_total", {"direction": "crm_to_erp", "table": "erp.acct", "kind": UPDATE_DIFFERS,
                                       "resolution": KEPT}) or 0
    metrics.count_conflicts("crm_to_erp", [conflict(), conflict(target_key=(99,))])
    after = metrics.REGISTRY.get_sample_value(
        "replicator_conflicts_total", {"direction": "crm_to_erp", "table": "erp.acct", "kind": UPDATE_DIFFERS,
                                       "resolution": KEPT})
    assert after == before + 2
    for family in metrics.REGISTRY.collect():
        if family.name == "replicator_conflicts":
            for s in family.samples:
                assert "42" not in s.labels.values() and "99" not in " ".join(s.labels.values())


def test_value_codec_round_trip() -> None:
    from replicator.codec import dumps_value, loads_value

    for v in (None, 1, "x", Decimal("1.10"), date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=timezone.utc),
              timedelta(seconds=3), b"\x00\xff", {"a": [1, 2]}, 1.5):
        assert loads_value(dumps_value(v)) == v


def test_record_into_a_missing_table_says_run_setup() -> None:
    from replicator.errors import ConfigError

    class Missing(FakeDb):
        def execute(self, sql: str, params: Sequence[Any]) -> int:
            # what PyMySQL raises, classified by its errno (1146), not its English text
            raise pymysql.err.ProgrammingError(1146, "Table 'repl.conflicts' doesn't exist")

    db = Missing("mariadb")
    db.conn = conn("mariadb", "erp")
    with pytest.raises(ConfigError, match=r"repl.conflicts is missing in mariadb://u@h:1/db: run `replicator setup`"):
        store.record(db, [conflict()])

    class Other(FakeDb):
        def execute(self, sql: str, params: Sequence[Any]) -> int:
            raise RuntimeError("deadlock")

    with pytest.raises(RuntimeError, match="deadlock"):
        store.record(Other("postgresql"), [conflict()])
