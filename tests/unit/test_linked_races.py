"""A linked two-way record deleted on one side while the other side updated it (mapping/linkrace): the
linker hands the race to the direction's resolver as a one-row run and follows its decision. The
target is test_links' in-memory fake; the resolver is a stand-in that records what it was asked and
answers with a fixed decision (the decision itself is conflicts.detect's, tested with real servers in
tests/integration/test_conflicts_linked.py)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from replicator.appliers.base import Run
from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.mapping.links import Linker
from replicator.mapping.model import MappingSet
from replicator.mapping.router import LinkedChange, route
from tests.unit.test_links import CUSTOMER, ORDERS, T_CUSTOMERS, T_ORDERS, FakeTarget
from tests.unit.mapsets import load, make_config

T = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
YAML = """\
mappings:
  customers:
    direction: both
    conflicts: {priority: crm}
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {natural: [vat_id], crosswalk: true}
    fields:
      vat_id: ~
      name: ~
  orders:
    direction: both
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields:
      id: ~
      customer_id: {references: customers}
      status: ~
"""


class Resolver:
    """Answers every run with `wins` (the incoming change wins: the row comes back to be written)."""

    def __init__(self, wins: bool):
        self.wins = wins
        self.asked: list[TargetChange] = []

    def resolve(self, applier: Any, run: Run, rows: list[TargetChange], write: bool = False) -> list[TargetChange]:
        self.asked.extend(rows)
        return rows if self.wins else []


class Target(FakeTarget):
    resolver: Resolver | None = None


@pytest.fixture
def mset(tmp_path: Path) -> MappingSet:
    (tmp_path / "maps").mkdir()
    config: Config = make_config(tmp_path)
    return load(config, YAML)


def linked(mset: MappingSet, target: Target, wins: bool) -> tuple[Linker, Resolver]:
    """A paired customer (crm 1 <-> erp 101, pair in the erp's crosswalk) with one order (7)."""
    target.tables[T_CUSTOMERS].append({"cust_no": 101, "vat_id": "V1", "name": "Acme"})
    target.crosswalk.append(("customers", "crm", "[1]", "[101]"))
    target.next_no = 101  # the next key the erp makes
    target.tables[T_ORDERS].append({"id": 7, "customer_id": 101, "status": "open"})
    resolver = target.resolver = Resolver(wins)
    return Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None), resolver  # type: ignore[arg-type]


def apply(linker: Linker, mset: MappingSet, change: RowChange) -> None:
    for out in route(mset, "crm", change, T):
        assert isinstance(out, LinkedChange)
        linker.apply(out)


def upd(table: TableRef, before: dict[str, Any], after: dict[str, Any]) -> RowChange:
    return RowChange(table, Op.UPDATE, before, after)


@pytest.mark.parametrize("wins", [True, False])
def test_a_crosswalk_delete_is_decided_by_the_resolver_against_the_paired_row(mset: MappingSet, wins: bool) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins)
    apply(linker, mset, RowChange(CUSTOMER, Op.DELETE, {"id": 1, "vat_id": "V1", "name": "Acme"}, None))
    [asked] = resolver.asked
    # the paired counterpart, the deleted row in target terms, and what the race is known by
    assert (asked.op, asked.table, asked.key) == (Op.DELETE, T_CUSTOMERS, (101,))
    assert asked.expect == {"vat_id": "V1", "name": "Acme", "cust_no": 101}
    assert (asked.mapping, asked.source_key, asked.commit_time) == ("customers", (1,), T)
    assert len(target.tables[T_CUSTOMERS]) == (0 if wins else 1)  # deleted only when the delete wins
    assert target.crosswalk == [("customers", "crm", "[1]", "[101]")]


def test_a_references_delete_compares_the_translated_foreign_key(mset: MappingSet) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins=False)
    apply(linker, mset, RowChange(ORDERS, Op.DELETE, {"id": 7, "customer_id": 1, "status": "open"}, None))
    [asked] = resolver.asked
    assert asked.expect == {"id": 7, "customer_id": 101, "status": "open"}  # crm 1 is erp 101
    assert target.tables[T_ORDERS] == [{"id": 7, "customer_id": 101, "status": "open"}]  # kept


@pytest.mark.parametrize("wins", [True, False])
def test_an_update_of_a_deleted_crosswalk_counterpart_comes_back_under_its_paired_key(
        mset: MappingSet, wins: bool) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins)
    target.tables[T_CUSTOMERS].clear()  # the erp deleted customer 101 meanwhile
    apply(linker, mset, upd(CUSTOMER, {"id": 1, "vat_id": "V1", "name": "Acme"}, {"id": 1, "vat_id": "V1", "name": "Acme Corp"}))
    [asked] = resolver.asked
    assert (asked.op, asked.key, asked.values, asked.expect) == (
        Op.UPDATE, (101,), {"name": "Acme Corp", "cust_no": 101}, {"vat_id": "V1", "name": "Acme", "cust_no": 101})
    # the update won update_missing: back whole, under the key the pair names; lost: the delete stands
    assert target.tables[T_CUSTOMERS] == ([{"cust_no": 101, "vat_id": "V1", "name": "Acme Corp"}] if wins else [])
    assert target.crosswalk == [("customers", "crm", "[1]", "[101]")]  # one pair, still valid


@pytest.mark.parametrize("wins", [True, False])
def test_an_update_of_a_deleted_counterpart_by_its_own_key_is_update_missing(mset: MappingSet, wins: bool) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins)
    target.tables[T_ORDERS].clear()  # the erp deleted order 7 meanwhile
    apply(linker, mset, upd(ORDERS, {"id": 7, "customer_id": 1, "status": "open"},
                            {"id": 7, "customer_id": 1, "status": "paid"}))
    [asked] = resolver.asked
    assert (asked.op, asked.key, asked.values) == (Op.UPDATE, (7,), {"id": 7, "status": "paid"})
    assert asked.expect == {"id": 7, "customer_id": 101, "status": "open"}
    assert target.tables[T_ORDERS] == ([{"id": 7, "customer_id": 101, "status": "paid"}] if wins else [])


def test_an_update_of_unmapped_columns_does_not_bring_a_deleted_counterpart_back(mset: MappingSet) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins=True)
    target.tables[T_ORDERS].clear()
    row = {"id": 7, "customer_id": 1, "status": "open"}
    apply(linker, mset, upd(ORDERS, {**row, "note": "a"}, {**row, "note": "b"}))
    assert resolver.asked == [] and target.tables[T_ORDERS] == []


def test_a_new_record_without_a_pair_is_created_without_asking(mset: MappingSet) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins=False)
    apply(linker, mset, RowChange(CUSTOMER, Op.INSERT, None, {"id": 2, "vat_id": "V2", "name": "Bolt"}))
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, {"id": 8, "customer_id": 2, "status": "open"}))
    assert resolver.asked == []  # never had a counterpart: no race to decide
    assert {"id": 8, "customer_id": 102, "status": "open"} in target.tables[T_ORDERS]


def test_linked_two_way_deletes_carry_the_deleted_row_unless_it_is_key_only(mset: MappingSet) -> None:
    [lc] = route(mset, "crm", RowChange(ORDERS, Op.DELETE, {"id": 7, "customer_id": 1, "status": "open"}, None), T)
    assert isinstance(lc, LinkedChange) and lc.op is Op.DELETE and lc.commit_time == T
    assert lc.expect is not None and lc.expect["status"] == "open" and lc.expect["id"] == 7
    [key_only] = route(mset, "crm", RowChange(ORDERS, Op.DELETE, {"id": 7}, None), T)
    assert isinstance(key_only, LinkedChange) and key_only.expect is None  # REPLICA IDENTITY DEFAULT: unchecked


def test_a_delete_of_a_record_that_only_waited_parked_is_not_a_race(mset: MappingSet) -> None:
    target = Target()
    linker, resolver = linked(mset, target, wins=False)
    order = {"id": 9, "customer_id": 3, "status": "open"}  # customer 3 has no counterpart: the order parks
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, order))
    assert len(target.parked) == 1
    apply(linker, mset, RowChange(ORDERS, Op.DELETE, order, None))
    assert target.parked == [] and resolver.asked == []  # it never reached the target: nothing to decide
