"""`now: true`: a target column stamped with the apply time -- one instant per applied transaction, never
compared for conflicts (not the other side's edit), refused by `check` for a column that holds no time."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.mapping import applytime
from replicator.mapping.check.catalog import ColumnInfo
from replicator.mapping.model import MappingSet
from replicator.mapping.router import route, route_flow
from replicator.stream.batch import Batch
from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)
from tests.unit.test_mapping_check import Env

ACCT_PG = TableRef("public", "acct")

STAMPED = """\
mappings:
  acct:
    direction: {direction}
    crm: {{table: acct, key: [id]}}
    erp: {{table: acct, key: [id]}}
    fields:
      id: ~
      name: ~
      modified: {{crm: ~, now: true}}
      created: {{crm: ~, now: true, insert_only: true}}
"""
T1 = datetime(2026, 12, 7, 6, 0, 0, 1, tzinfo=timezone.utc)
T2 = datetime(2026, 12, 7, 6, 0, 1, 2, tzinfo=timezone.utc)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The daemon's clock as a list of instants, read one at a time; the stamp starts afresh."""
    times = [T1, T2]

    class FakeDatetime:
        @staticmethod
        def now(tz: Any = None) -> datetime:
            assert tz is timezone.utc  # always UTC, whatever the daemon's zone
            return times.pop(0)
    monkeypatch.setattr(applytime, "datetime", FakeDatetime)
    applytime.next_transaction()
    yield times
    applytime.next_transaction()


def upd(before: dict[str, Any], after: dict[str, Any]) -> RowChange:
    return RowChange(ACCT_PG, Op.UPDATE, before, after)


def test_one_instant_per_transaction_in_utc(config: Config, clock: list[datetime]) -> None:
    mset = load(config, STAMPED, direction="crm_to_erp")
    out = [tc for i in (1, 2) for tc in route(mset, "crm", RowChange(ACCT_PG, Op.INSERT, None, {"id": i, "name": "a"}))]
    assert all(isinstance(tc, TargetChange) for tc in out)
    assert [tc.values["modified"] for tc in out] == [T1, T1]  # the same instant for every row of it
    assert [tc.values["created"] for tc in out] == [T1, T1]
    assert out[0].insert_only == frozenset({"created"})  # written when the row is created only
    applytime.next_transaction()  # committed: the next transaction's rows get the next instant
    [tc] = route(mset, "crm", upd({"id": 1, "name": "a"}, {"id": 1, "name": "b"}))
    assert isinstance(tc, TargetChange) and tc.values["modified"] == T2 and not clock


def test_each_thread_has_its_own_transaction(clock: list[datetime]) -> None:
    seen: list[datetime] = []
    other = threading.Thread(target=lambda: seen.append(applytime.now()))
    assert applytime.now() == T1
    other.start()
    other.join()
    assert seen == [T2] and applytime.now() == T1


def test_a_batch_commit_or_rollback_starts_the_next_instant(clock: list[datetime]) -> None:
    class FakeApplier:
        def begin(self) -> None: ...
        def rollback(self) -> None: ...
    batch = Batch(FakeApplier(), lambda _items: None, lambda _p, _t: None, lambda _p: None, None)  # type: ignore[arg-type]
    assert applytime.now() == T1
    batch.begin()
    batch.commit("p", None)  # type: ignore[arg-type]
    assert applytime.now() == T2
    clock.append(T1)
    batch.rollback()
    assert applytime.now() == T1


def test_a_two_way_update_writes_the_stamp_unchecked_and_only_with_a_change(config: Config,
                                                                          clock: list[datetime]) -> None:
    mset = load(config, STAMPED, direction="both")
    row = {"id": 1, "name": "Ann"}
    [tc] = route(mset, "crm", upd(row, {**row, "name": "Bo"}))
    assert isinstance(tc, TargetChange)
    assert tc.values == {"id": 1, "name": "Bo", "modified": T1}  # not `created`: insert-only
    assert tc.expect == {"id": 1, "name": "Ann"}  # neither stamp is compared: nobody's edit
    # a change of nothing mapped writes nothing: the stamp alone is no reason to write
    assert route(mset, "crm", upd({**row, "other": 1}, {**row, "other": 2})) == []
    [d] = route(mset, "crm", RowChange(ACCT_PG, Op.DELETE, row, None))
    assert isinstance(d, TargetChange) and d.expect == {"id": 1, "name": "Ann"}
    [i] = route(mset, "crm", RowChange(ACCT_PG, Op.INSERT, None, row))
    assert isinstance(i, TargetChange) and i.values["created"] == i.values["modified"] == T1
    # the other direction has no column to read: nothing of the stamps flows back
    erp = mset.by_name["acct"].flow("erp")
    assert erp is not None and [p.target for p in erp.plans] == ["id", "name"]
    # sync, verify and explain write every field, stamps included
    flow = mset.by_name["acct"].flow("crm")
    assert flow is not None and flow.stamps == {"modified", "created"} and flow.restamped == {"modified"}
    [scan] = route_flow(flow, RowChange(ACCT_PG, Op.INSERT, None, row))
    assert isinstance(scan, TargetChange) and scan.values["modified"] == T1


LINKED = """\
mappings:
  acct:
    direction: both
    crm: {table: acct, key: [id]}
    erp: {table: acct, key: [id]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
      name: ~
      modified: {crm: ~, now: true}
"""


def test_a_linked_delete_does_not_compare_the_stamp(config: Config, clock: list[datetime]) -> None:
    mset = load(config, LINKED)
    row = {"id": 1, "email": "a@x", "name": "Ann"}
    [lc] = route(mset, "crm", RowChange(ACCT_PG, Op.DELETE, row, None))
    assert lc.expect == {"email": "a@x", "name": "Ann"}
    [up] = route(mset, "crm", upd(row, {**row, "name": "Bo"}))
    assert up.values == {"email": "a@x", "name": "Bo", "modified": T1}


@pytest.mark.parametrize("spec, said", [
    ("{crm: ~, now: 1}", "now is true (the apply time), not 1"),
    ("{now: true}", "now stamps a column on one side only"),
    ("{crm: ~, now: true, constant: 1}", "now and constant do not go together"),
    ("{crm: ~, now: true, transform: [trim]}", "now and transform do not go together"),
])
def test_mistakes_name_file_line_and_key(config: Config, spec: str, said: str) -> None:
    text = STAMPED.format(direction="crm_to_erp").replace("{crm: ~, now: true}", spec)
    msg = error(config, text)
    assert said in msg and "m.yaml:" in msg and "mappings.acct.fields.modified" in msg


def test_a_key_column_is_not_stamped(config: Config) -> None:
    text = STAMPED.format(direction="crm_to_erp").replace("id: ~", "id: {crm: ~, now: true}")
    assert "a key column (id) is not stamped" in error(config, text)


PK = ColumnInfo("int", bits=64, nullable=False)


@pytest.mark.parametrize("column, ok", [
    (ColumnInfo("datetime", precision=6, nullable=False), True),
    (ColumnInfo("datetime", precision=6, timezone=True), True),
    (ColumnInfo("datetime", bits=32, precision=0), True),  # a MariaDB TIMESTAMP
    (ColumnInfo("date"), False),  # would drop the time of day
    (ColumnInfo("text", length=40), False),
    (ColumnInfo("int", bits=64), False),
])
def test_check_refuses_a_column_that_holds_no_date_and_time(tmp_path: Path, column: ColumnInfo, ok: bool) -> None:
    env = Env(tmp_path)
    text = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      modified: {crm: ~, now: true}
"""
    failures = env.failures(text, {"id": PK}, {"id": PK, "modified": column})
    if ok:
        assert failures == []  # a NOT NULL stamp column counts as filled, too
    else:
        (msg,) = failures
        assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.modified.now: now (the apply time) into "
                              "erp:erpdb.customers.modified"), msg
        assert "not a date-and-time column" in msg and "fix: stamp a timestamp" in msg


def test_mset_reload_keeps_plans_comparable(config: Config) -> None:
    """A stamped field compiles to a plan like a constant's: equal mappings compare equal (reloads)."""
    a: MappingSet = load(config, STAMPED, direction="both")
    b: MappingSet = load(config, STAMPED, direction="both")
    fa, fb = a.by_name["acct"].flow("crm"), b.by_name["acct"].flow("crm")
    assert fa is not None and fb is not None
    assert [(p.target, p.stamp, p.insert_only) for p in fa.plans] == [(p.target, p.stamp, p.insert_only)
                                                                      for p in fb.plans]


TWO_TABLES = """\
mappings:
  template:
    direction: crm_to_erp
    crm: {{table: product_template, key: [code]}}
    erp: {{table: item, key: [code]}}
    link: {{natural: [code]}}
    fields:
      code: ~
      name: ~
      modified: {{crm: ~, now: true}}
  product:
    direction: crm_to_erp
    crm: {{table: product_product, key: [code]}}
    erp: {{table: item, key: [code]}}
    link: {{natural: [code]}}
    fields:
      code: ~
      {other}
"""


def test_several_mappings_of_one_table_may_each_stamp_a_column(config: Config) -> None:
    """One entity kept in two tables onto one (Odoo's product_template and product_product onto ERPNext's
    tabItem): each mapping stamps the row it writes; a stamp and a field writing one column are refused."""
    mset = load(config, TWO_TABLES, other="modified: {crm: ~, now: true}")
    assert {m.name for m in mset.mappings} == {"template", "product"}
    msg = error(config, TWO_TABLES.format(other="modified: ~"))
    assert "column modified of erpdb.item on erp is written by mappings 'template' and 'product'" in msg
