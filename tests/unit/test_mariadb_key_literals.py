"""The MariaDB applier's key statements (`_count_existing`'s SELECT COUNT(*) of an unchecked update run, and
`_key_params` for it and `_delete`) against PyMySQL's own path: the same text sent as
`cur.execute(sql, [convert_key of every row])` sends, for random keys of either escaping mode, single and
composite, with and without converters on the key columns."""
from __future__ import annotations

import uuid
from typing import Any

import pymysql
from hypothesis import given, settings, strategies as st
from pymysql.constants import SERVER_STATUS
from pymysql.cursors import Cursor

from replicator.appliers import mariadb
from replicator.appliers.base import Run
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret

T = TableRef("erp", "it%em`s")


class _Recording(Cursor):
    """PyMySQL's cursor with the network left out: the text it would send, a count of 0 back."""

    def __init__(self, conn: Any, sent: list[str]):
        super().__init__(conn)
        self.sent = sent

    def _query(self, q: str) -> int:
        self.sent.append(q)
        return 0

    def fetchone(self) -> tuple[int]:
        return (0,)


class _Db(pymysql.connections.Connection):  # type: ignore[misc]
    def __init__(self, no_backslash: bool):
        super().__init__(defer_connect=True, charset="utf8mb4")
        self.server_status = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES if no_backslash else 0
        self.sent: list[str] = []

    def cursor(self, cursor: Any = None) -> _Recording:
        return _Recording(self, self.sent)


def _applier(no_backslash: bool, key_converters: bool) -> mariadb.MariaDBApplier:
    acc = Account("u", Secret(""))
    a = mariadb.MariaDBApplier(Connection("erp", "mariadb", "h", 3306, "erp", acc, acc), "crm_to_erp")
    a.db = _Db(no_backslash)
    a._converters[T] = {"code": mariadb._uuid_text, "at": mariadb._datetime} if key_converters else {"at": mariadb._datetime}
    return a


keys = st.one_of(st.integers(-2**63, 2**64 - 1), st.text(max_size=8), st.binary(max_size=4), st.uuids())


@settings(max_examples=200, deadline=None)
@given(key_columns=st.sampled_from([("id",), ("code",), ("id", "code")]), no_backslash=st.booleans(),
       key_converters=st.booleans(), data=st.data(), n=st.integers(1, 7))
def test_count_existing_sends_what_pymysql_sends(key_columns: tuple[str, ...], no_backslash: bool,
                                                 key_converters: bool, data: Any, n: int) -> None:
    a = _applier(no_backslash, key_converters)
    rows = [TargetChange(T, Op.UPDATE, key_columns, tuple(data.draw(keys) for _ in key_columns), {"id": 1})
            for _ in range(n)]
    run = Run(T, Op.UPDATE, key_columns, ("id",), {r.key: r for r in rows})
    old_params = [v for r in rows for v in a.convert_key(run, r.key)]
    assert a._key_params(run, rows) == old_params and \
        [type(v) for v in a._key_params(run, rows)] == [type(v) for v in old_params]
    assert a._count_existing(run, rows) == 0
    sql = (f"SELECT COUNT(*) FROM {mariadb.quote(T.schema, T.name)} "
           f"WHERE {a._key_condition(run, len(rows))}")
    expected = Cursor(a.db).mogrify(sql, old_params)
    assert a.db.sent == [expected]


def test_a_uuid_key_into_a_text_column_is_converted_first() -> None:
    a = _applier(False, True)
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    rows = [TargetChange(T, Op.UPDATE, ("code",), (u,), {"id": 1})]
    run = Run(T, Op.UPDATE, ("code",), ("id",), {r.key: r for r in rows})
    a._count_existing(run, rows)
    assert a.db.sent == ["SELECT COUNT(*) FROM `erp`.`it%em``s` WHERE `code` IN ('12345678-1234-5678-1234-567812345678')"]
