"""Preflight: a lost source position is its own kind of failure (exit 79), not a configuration error."""
from __future__ import annotations

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
