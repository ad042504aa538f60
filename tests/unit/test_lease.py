"""The lease that fences a paused or cut-off active instance (stream/lease.py), without servers."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

from replicator.config import Account, Connection, Secret, load
from replicator.stream import lease
from tests.unit.test_config import MINIMAL, msg


class LeaseDb:
    """What `prove` needs of an applier, over one lease row."""

    def __init__(self, epoch: int | None, kind: str = "postgresql"):
        acc = Account("u", Secret(""))
        self.conn = Connection("crm", kind, "h", 1, "crm", acc, acc)
        self.epoch = epoch
        self.sql: list[str] = []

    def quote_table(self, table: Any) -> str:
        return f"{table.schema}.{table.name}"

    def quote_col(self, column: str) -> str:
        return column

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.sql.append(sql)
        return [] if self.epoch is None else [(self.epoch,)]

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        self.sql.append(sql)
        return 1


def test_prove_locks_the_row_checks_the_epoch_and_renews() -> None:
    db = LeaseDb(7)
    lease.prove(db, "crm_to_erp", 7)  # type: ignore[arg-type]
    assert db.sql[0].endswith("FOR UPDATE") and "clock_timestamp()" in db.sql[1]
    my = LeaseDb(7, "mariadb")
    lease.prove(my, "crm_to_erp", 7)  # type: ignore[arg-type]
    assert "NOW(6)" in my.sql[1]  # the statement's time, not the transaction's


@pytest.mark.parametrize("theirs", [8, None])
def test_prove_fences_when_another_instance_took_over(theirs: int | None) -> None:
    db = LeaseDb(theirs)
    with pytest.raises(lease.Fenced, match="another instance took over"):
        lease.prove(db, "crm_to_erp", 7)  # type: ignore[arg-type]
    assert len(db.sql) == 1  # nothing renewed


def test_takeover_seconds(tmp_path: Path) -> None:
    path = tmp_path / "replicator.yaml"
    path.write_text(MINIMAL)
    assert load(path).ha.takeover_seconds == 15
    path.write_text(MINIMAL + "ha: {takeover_seconds: 4}\n")
    assert load(path).ha.takeover_seconds == 4
    assert msg(tmp_path, MINIMAL + "ha: {takeover_seconds: 0.5}\n") == "F:10: ha.takeover_seconds: must be at least 1 (seconds)"
