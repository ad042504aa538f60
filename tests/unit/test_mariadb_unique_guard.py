"""The MariaDB upsert on a table with a unique index besides the mapping's key (appliers/mariadb.py `_upsert`,
`_guarded_execute`, `other_unique`): ON DUPLICATE KEY UPDATE must not take a collision on that index for the
row. tests/integration/test_server_side_changes.py runs it against MariaDB 10.11."""
from typing import Any

import pymysql
import pytest

from replicator.appliers.mariadb import MariaDBApplier, _guarded_execute
from replicator.changes import TableRef

T = TableRef("erp", "dst")
POSTFIX = b" ON DUPLICATE KEY UPDATE `id` = IF(`id` <=> VALUES(`id`), `id`, 1 / 0), `email` = VALUES(`email`)"
ROW = b"INSERT INTO `erp`.`dst` (`id`, `email`) VALUES (8, 'c@x')"


class _Cursor:
    def __init__(self, *errors: BaseException | None):
        self.errors = list(errors)
        self.executed: list[bytes] = []

    def execute(self, stmt: bytes) -> None:
        self.executed.append(stmt)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


def test_a_collision_on_another_unique_index_gets_the_servers_own_error_for_the_row() -> None:
    duplicate = pymysql.IntegrityError(1062, "Duplicate entry 'c@x' for key 'uq_dst_mail'")
    cur = _Cursor(pymysql.OperationalError(1365, "Division by 0"), duplicate)
    with pytest.raises(pymysql.IntegrityError) as e:
        _guarded_execute(cur, ROW + POSTFIX, 1, POSTFIX)
    assert e.value is duplicate and cur.executed == [ROW + POSTFIX, ROW]


def test_the_plain_insert_goes_in_when_the_other_row_is_gone_meanwhile() -> None:
    cur = _Cursor(pymysql.OperationalError(1365, "Division by 0"), None)
    _guarded_execute(cur, ROW + POSTFIX, 1, POSTFIX)
    assert cur.executed == [ROW + POSTFIX, ROW]


@pytest.mark.parametrize("rows, error", [(2, pymysql.OperationalError(1365, "Division by 0")),
                                         (1, pymysql.IntegrityError(1062, "Duplicate entry '8' for key 'PRIMARY'"))])
def test_several_rows_or_another_error_go_up_as_they_are(rows: int, error: BaseException) -> None:
    # several rows: the batch is replayed row by row, where each row that collides gets its own 1062
    cur = _Cursor(error)
    with pytest.raises(type(error)):
        _guarded_execute(cur, ROW + POSTFIX, rows, POSTFIX)
    assert cur.executed == [ROW + POSTFIX]


def test_only_a_unique_index_other_than_the_key_guards() -> None:
    applier: Any = object.__new__(MariaDBApplier)
    applier._other_unique = {}
    applier._unique = {T: (frozenset({"id"}), frozenset({"email"})), TableRef("erp", "plain"): (frozenset({"id"}),)}
    assert applier.other_unique(T, ("id",))
    assert not applier.other_unique(TableRef("erp", "plain"), ("id",))
    assert not applier.other_unique(TableRef("erp", "unread"), ("id",))
    # keyed by its unique e-mail (the primary key numbered by the database): the id index is the other one
    assert applier.other_unique(T, ("email",))
