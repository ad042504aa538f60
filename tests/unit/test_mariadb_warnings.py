"""Which warnings a MariaDB/MySQL write leaves stop the direction (appliers/mariadb.MariaDBApplier._warned).

A warning about a value stored otherwise than written stops, naming table, key and column; a warning about the
statement itself (MySQL 8.0.20+ deprecates `VALUES(c)` in ON DUPLICATE KEY UPDATE and says so on every upsert)
concerns no value and must not stop every write."""
from typing import Any

import pytest

from replicator.appliers.base import Run
from replicator.appliers.mariadb import MariaDBApplier
from replicator.changes import Op, TableRef
from replicator.errors import RowError


class _Cursor:
    def __init__(self, warnings: list[tuple[str, int, str]]):
        self.warnings = warnings
        self.executed: list[str] = []

    def execute(self, stmt: str) -> None:
        self.executed.append(stmt)

    def fetchall(self) -> list[tuple[str, int, str]]:
        return self.warnings


class _Conn:
    def describe(self) -> str:
        return "MariaDB erp"


def _applier(lossy: set[tuple[TableRef, str]] = set()) -> Any:
    applier: Any = object.__new__(MariaDBApplier)
    applier._shapes = {}
    applier.lossy = set(lossy)
    applier.conn = _Conn()
    return applier


T = TableRef("erp", "orders")
RUN = Run(T, Op.UPDATE, ("id",), ("id", "amount"), {})


@pytest.mark.parametrize("code, text", [
    (1287, "'VALUES function' is deprecated and will be removed in a future release. Please use an alias "
           "(INSERT INTO ... VALUES (...) AS alias) and replace VALUES(col) in the ON DUPLICATE KEY UPDATE clause"),
    (1592, "Unsafe statement written to the binary log using statement format since BINLOG_FORMAT = STATEMENT"),
])
def test_a_warning_about_the_statement_not_a_value_lets_the_write_stand(code: int, text: str) -> None:
    cur = _Cursor([("Warning", code, text)])
    _applier()._warned(cur, RUN, None)
    assert cur.executed == ["SHOW WARNINGS"]


def test_a_rounded_value_stops_naming_table_key_and_column_even_beside_a_deprecation() -> None:
    cur = _Cursor([("Warning", 1287, "'VALUES function' is deprecated"),
                   ("Note", 1265, "Data truncated for column 'amount' at row 1")])
    rows: Any = [type("Row", (), {"key": (7,)})()]
    with pytest.raises(RowError) as e:
        _applier()._warned(cur, RUN, rows)
    assert e.value.column == "amount" and e.value.key == (7,) and "Data truncated" in str(e.value)


def test_a_rounding_note_on_a_lossy_column_is_what_the_mapping_allows() -> None:
    cur = _Cursor([("Note", 1265, "Data truncated for column 'amount' at row 1")])
    _applier({(T, "amount")})._warned(cur, RUN, None)
