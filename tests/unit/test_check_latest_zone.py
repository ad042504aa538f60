"""`check` warns when `{latest: {column: ...}}` compares timestamps without a time zone (mapping/check/latestzone.py):
two applications writing different zones make the earlier edit win, silently."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_mapping_check import PK, C, Env

TEXT = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    conflicts: {latest: {column: changed}}
    fields:
      id: ~
      name: ~
      changed: {erp: updated}
"""
NAIVE = C("datetime")
AWARE = C("datetime", timezone=True)
MARIADB_TIMESTAMP = C("datetime", bits=32)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def zone(env: Env, crm: object, erp: object, text: str = TEXT) -> list[str]:
    return [f"{f.side}: {f.what} | fix: {f.fix}".replace(str(env.config.mappings_dir) + "/", "")
            for f in env.check(text, {"id": PK, "name": C("text"), "changed": crm},
                               {"id": PK, "name": C("text"), "updated": erp}) if f.warning and "zone" in f.what]


def test_two_naive_timestamps_warn_naming_both_columns_and_the_way_out(env: Env) -> None:
    (msg,) = zone(env, NAIVE, NAIVE)
    assert msg.startswith("erp: m.yaml:3: mappings.customers: {latest: {column: changed}} compares "
                          "crm:public.customer.changed and erp:erpdb.customers.updated, timestamps without a time "
                          "zone"), msg
    assert "or use `latest` by commit time (no column)" in msg


@pytest.mark.parametrize("crm, erp, warns", [
    (AWARE, MARIADB_TIMESTAMP, False),  # both hold an instant
    (AWARE, NAIVE, True),  # a DATETIME holds the writer's wall time
    (NAIVE, MARIADB_TIMESTAMP, True),
    (C("int", bits=64), C("int", bits=64), False),  # a version counter: no zone
])
def test_instants_and_counters_need_no_warning(env: Env, crm: object, erp: object, warns: bool) -> None:
    assert bool(zone(env, crm, erp)) == warns


def test_latest_by_commit_time_names_no_column(env: Env) -> None:
    assert zone(env, NAIVE, NAIVE, TEXT.replace("conflicts: {latest: {column: changed}}", "conflicts: latest")) == []
