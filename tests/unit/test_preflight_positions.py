"""Preflight: a lost source position is its own kind of failure (exit 79), not a configuration error."""
from __future__ import annotations

import pytest

from replicator.admin.preflight import LostPosition, failures, lost_position
from replicator.mapping.check import Finding


def test_a_failed_lost_position_makes_the_exit_79() -> None:
    findings = [Finding(True, "crm", "wal_level = logical"), Finding(False, "crm", "publication missing"),
                LostPosition(False, "erp", "erp_to_crm: source_lost error: binlog purged")]
    assert lost_position(findings)
    assert len(failures(findings)) == 2  # still listed with the other failures


def test_configuration_failures_alone_are_not_a_lost_position() -> None:
    assert not lost_position([Finding(False, "crm", "wal_level = replica")])
    assert not lost_position([LostPosition(True, "crm", "crm_to_erp: checkpoint 0/1 is still available")])
    assert not lost_position([])


def test_a_lost_position_prints_as_a_failure() -> None:
    text = str(LostPosition(False, "erp", "erp_to_crm: source_lost error: binlog mariadb-bin.000001 is gone"))
    assert text.startswith("[FAIL] erp: erp_to_crm: source_lost error:")


def test_an_unreachable_target_stays_retriable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection error while reading the stored checkpoint is the daemon's "wait and retry", not an
    UnboundLocalError from the handler that names the missing-table errors (found by the status tests)."""
    from replicator.admin import preflight
    from replicator.config import Account, Connection, Secret
    from replicator.errors import RetriableError

    acc = Account("u", Secret(""))
    for kind, name in (("mariadb", "my_connect"), ("postgresql", "pg_connect")):
        def refuse(*_a: object, **_k: object) -> None:
            raise RetriableError("cannot connect: refused")
        monkeypatch.setattr(preflight, name, refuse)
        target = Connection("t", kind, "127.0.0.1", 1, "db", acc, acc)
        with pytest.raises(RetriableError):
            preflight._stored_checkpoint(target, "a_to_t")
