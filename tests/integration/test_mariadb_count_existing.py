"""The MariaDB applier's count of existing rows for an unchecked update run (`_count_existing`, behind the
`replicator_rows_missing_total` metric), keys formatted by the Formatter, against a real server: the count
PyMySQL's own `cur.execute(sql, params)` gets for the same keys, on random keys of which some exist (texts
with quotes, backslashes and non-ASCII characters, a composite key)."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replicator.appliers.base import Run
from replicator.appliers.mariadb import MariaDBApplier, quote
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret

TEXTS = ["", "a", "it's", "back\\slash", 'say "hi"', "\u00e9\u4e2d\U0001f600", "%s", "x" * 20]


@pytest.fixture
def applier(maria_db: Any) -> Any:
    conn = maria_db.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE item (id BIGINT PRIMARY KEY, v INT)")
        cur.execute("CREATE TABLE pair (a VARCHAR(20), b INT, v INT, PRIMARY KEY (a, b))")
        cur.executemany("INSERT INTO item VALUES (%s, 0)", [(i,) for i in range(0, 40, 2)])
        cur.executemany("INSERT INTO pair VALUES (%s, %s, 0)", [(t, b) for t in TEXTS for b in (1, 2)])
    conn.commit()
    conn.close()
    acc = Account(maria_db.user, Secret(maria_db.password))
    a = MariaDBApplier(Connection("erp", "mariadb", maria_db.host, maria_db.port, maria_db.dbname, acc, acc,
                                  server_id=4244), "crm_to_erp")
    a.connect()
    a.item, a.pair = TableRef(maria_db.dbname, "item"), TableRef(maria_db.dbname, "pair")
    a.load_types([a.item, a.pair])
    yield a
    a.rollback()
    a.close()


def _pymysql_count(a: MariaDBApplier, run: Run, rows: list[TargetChange]) -> int:
    params = [v for r in rows for v in a.convert_key(run, r.key)]
    with a.db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {quote(run.table.schema, run.table.name)} "
                    f"WHERE {a._key_condition(run, len(rows))}", params)
        return int(cur.fetchone()[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(-3, 45), min_size=1, max_size=30, unique=True),
       pairs=st.lists(st.tuples(st.sampled_from(TEXTS), st.integers(0, 3)), min_size=1, max_size=12, unique=True))
def test_count_existing_counts_what_pymysql_counts(applier: MariaDBApplier, ids: list[int],
                                                   pairs: list[tuple[str, int]]) -> None:
    a = applier
    for table, key_columns, keys in ((a.item, ("id",), [(i,) for i in ids]), (a.pair, ("a", "b"), pairs)):  # type: ignore[attr-defined]
        rows = [TargetChange(table, Op.UPDATE, key_columns, k, {"v": 1}) for k in keys]
        run = Run(table, Op.UPDATE, key_columns, ("v",), {r.key: r for r in rows})
        expected = _pymysql_count(a, run, rows)
        assert a._count_existing(run, rows) == expected
    assert sum(1 for i in ids if 0 <= i < 40 and i % 2 == 0) == _pymysql_count(
        a, Run(a.item, Op.UPDATE, ("id",), ("v",), {}),  # type: ignore[attr-defined]
        [TargetChange(a.item, Op.UPDATE, ("id",), (i,), {}) for i in ids])  # type: ignore[attr-defined]
