"""mapping/links: the Linker applies LinkedChanges row by row against the target (a fake in-memory
target that answers the Linker's statements; no servers): natural-key links, crosswalk pairs, rows
created with database-made keys, children parked until their parent has a counterpart, deletes."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import pytest

from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.links import Linker
from replicator.mapping.model import MappingSet
from replicator.mapping.router import LinkedChange, route
from tests.unit.mapsets import load, make_config

CUSTOMER = TableRef("public", "customer")
ORDERS = TableRef("public", "orders")
T_CUSTOMERS = TableRef("erpdb", "customers")
T_ORDERS = TableRef("erpdb", "orders")

YAML = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {natural: [vat_id], crosswalk: true}
    fields:
      vat_id: ~
      name: ~
  orders:
    direction: crm_to_erp
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields:
      id: ~
      customer_id: {references: customers}
"""


class FakeTarget:
    """The target as the Linker sees it: tables of rows, the crosswalk and the parked table."""

    kind = "postgresql"

    def __init__(self) -> None:
        self.tables: dict[TableRef, list[dict[str, Any]]] = {T_CUSTOMERS: [], T_ORDERS: []}
        self.crosswalk: list[tuple[str, str, str, str]] = []  # mapping, source_side, source_key, target_key
        self.parked: list[tuple[int, str, str, str, str, str]] = []  # id, stream, waiting mapping/key, mapping, change
        self.next_no = 100

    def quote_table(self, table: TableRef) -> str:
        return f"{table.schema}.{table.name}"

    def quote_col(self, column: str) -> str:
        return column

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        p = list(params)
        if "FROM state.crosswalk" in sql:
            mapping, side, *keys = p
            if sql.startswith("SELECT source_key, target_key"):
                return [(sk, tk) for m, s, sk, tk in self.crosswalk if m == mapping and s == side and sk in keys]
            return [(tk, sk) for m, s, sk, tk in self.crosswalk if m == mapping and s == side and tk in keys]
        if sql.startswith("SELECT EXTRACT(EPOCH FROM now() - MIN(parked_at)) FROM state.parked"):
            return [(0.0 if any(r[1] == p[0] for r in self.parked) else None,)]  # the oldest's age: just parked
        if sql.startswith("SELECT COUNT(*) FROM state.parked"):
            return [(sum(1 for r in self.parked if r[1] == p[0]),)]
        if sql.startswith("SELECT DISTINCT waiting_mapping, waiting_key, mapping FROM state.parked"):
            return sorted({(r[2], r[3], r[4]) for r in self.parked if r[1] == p[0]})
        if "FROM state.parked" in sql and "waiting_key" in sql:
            return [(r[0], r[4], r[5]) for r in self.parked if (r[1], r[2], r[3]) == tuple(p)]  # id, mapping, change
        if "FROM state.parked" in sql:
            return [(r[0], r[5]) for r in self.parked if (r[1], r[4]) == tuple(p)]
        raise AssertionError(f"unexpected query {sql}")

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        p = list(params)
        if sql.startswith("INSERT INTO state.crosswalk"):
            self.crosswalk.append(tuple(p))  # type: ignore[arg-type]
        elif sql.startswith("INSERT INTO state.parked"):
            self.parked.append((len(self.parked) + 1, *p))  # type: ignore[arg-type]
        elif re.match(r"DELETE FROM state.parked WHERE id = %s", sql):
            self.parked = [r for r in self.parked if r[0] != p[0]]
        else:
            raise AssertionError(f"unexpected statement {sql}")
        return 1

    def find_keys(self, table: TableRef, key_cols: Sequence[str], where: dict[str, Any],
                  limit: int = 2, slice_: tuple[tuple[str, Any], ...] = ()) -> list[tuple[Any, ...]]:
        rows = [r for r in self.tables[table] if all(r.get(c) == v for c, v in (*where.items(), *slice_))]
        return [tuple(r[c] for c in key_cols) for r in rows[:limit]]

    def insert_returning(self, table: TableRef, values: dict[str, Any], key_cols: Sequence[str]) -> tuple[Any, ...]:
        self.next_no += 1
        self.tables[table].append({**values, key_cols[0]: self.next_no})
        return (self.next_no,)

    def update_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...],
                      values: dict[str, Any], fill: dict[str, Any] | None = None) -> int:
        rows = [r for r in self.tables[table] if tuple(r[c] for c in key_cols) == tuple(key)]
        for r in rows:
            r.update(values)
            r.update({c: v for c, v in (fill or {}).items() if r.get(c) is None})  # COALESCE(c, v)
        return len(rows)

    def delete_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...]) -> int:
        before = len(self.tables[table])
        self.tables[table] = [r for r in self.tables[table] if tuple(r[c] for c in key_cols) != tuple(key)]
        return before - len(self.tables[table])

    def apply(self, changes: Sequence[TargetChange]) -> None:
        for c in changes:
            rows = self.tables[c.table]
            rows[:] = [r for r in rows if tuple(r[k] for k in c.key_columns) != c.key]
            if c.op is not Op.DELETE:
                rows.append(dict(c.values))


@pytest.fixture
def mset(tmp_path: Path) -> MappingSet:
    (tmp_path / "maps").mkdir()
    config: Config = make_config(tmp_path)
    return load(config, YAML)


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
def linker(mset: MappingSet, target: FakeTarget) -> Linker:
    return Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]


def apply(linker: Linker, mset: MappingSet, change: RowChange) -> None:
    for out in route(mset, "crm", change):
        assert isinstance(out, LinkedChange)
        linker.apply(out)


def customer(i: int, vat: str, name: str, op: Op = Op.INSERT) -> RowChange:
    row = {"id": i, "vat_id": vat, "name": name}
    return RowChange(CUSTOMER, op, row if op is Op.DELETE else None, None if op is Op.DELETE else row)


def test_an_existing_record_is_linked_by_its_natural_key_and_paired(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    target.tables[T_CUSTOMERS].append({"cust_no": 7, "vat_id": "DE1", "name": "old"})
    apply(linker, mset, customer(1, "DE1", "Ann"))
    assert target.tables[T_CUSTOMERS] == [{"cust_no": 7, "vat_id": "DE1", "name": "Ann"}]  # updated, not doubled
    assert [(m, s) for m, s, _, _ in target.crosswalk] == [("customers", "crm")]


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_natural_key_links_nothing(linker: Linker, mset: MappingSet, target: FakeTarget, blank: str) -> None:
    # ERPNext stores an unset tax_id as '': two customers without one are two records, never the same one
    target.tables[T_CUSTOMERS].append({"cust_no": 7, "vat_id": blank, "name": "First"})
    apply(linker, mset, customer(1, blank, "Second"))
    apply(linker, mset, customer(2, blank, "Third"))
    assert sorted(r["name"] for r in target.tables[T_CUSTOMERS]) == ["First", "Second", "Third"]
    assert len(target.crosswalk) == 2


def test_a_renamed_source_key_is_a_row_error_naming_both_keys_and_the_fix(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    # ERPNext's "Rename" changes a row's `name`: the pair holds the old key; following the new key would
    # create a second counterpart while the other direction kept writing to the old one
    apply(linker, mset, customer(2, "FR9", "Bob"))
    old, new = {"id": 2, "vat_id": "FR9", "name": "Bob"}, {"id": 3, "vat_id": "FR9", "name": "Bob"}
    with pytest.raises(RowError) as info:
        apply(linker, mset, RowChange(CUSTOMER, Op.UPDATE, old, new))
    message = str(info.value)
    assert "column id" in message and "the key changed from [2] to [3]" in message, message
    assert "SET source_key = '[3]' WHERE mapping = 'customers' AND source_side = 'crm'" in message, message
    assert len(target.tables[T_CUSTOMERS]) == 1 and len(target.crosswalk) == 1  # nothing written
    # an update that keeps its key goes through
    apply(linker, mset, RowChange(CUSTOMER, Op.UPDATE, old, {**old, "name": "Bobby"}))
    assert [r["name"] for r in target.tables[T_CUSTOMERS]] == ["Bobby"]
    # the DBA moved the pair (the fix the message gives): the retried change finds its counterpart
    target.crosswalk = [(m, s, '[3]' if sk == '[2]' else sk, tk) for m, s, sk, tk in target.crosswalk]
    apply(linker, mset, RowChange(CUSTOMER, Op.UPDATE, old, {**new, "name": "Robert"}))
    assert [r["name"] for r in target.tables[T_CUSTOMERS]] == ["Robert"] and len(target.crosswalk) == 1
    # a row never paired is linked or created as any row is
    apply(linker, mset, RowChange(CUSTOMER, Op.UPDATE, {"id": 8, "vat_id": "NL1", "name": "Eve"},
                                  {"id": 9, "vat_id": "NL1", "name": "Eve"}))
    assert sorted(r["name"] for r in target.tables[T_CUSTOMERS]) == ["Eve", "Robert"]


def test_a_record_without_a_counterpart_is_created_and_later_changes_follow_the_pair(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    apply(linker, mset, customer(2, "FR9", "Bob"))
    (row,) = target.tables[T_CUSTOMERS]
    assert row["cust_no"] == 101 and row["name"] == "Bob"  # the key the database made
    apply(linker, mset, customer(2, "FR9", "Bobby", op=Op.UPDATE))
    assert [r["name"] for r in target.tables[T_CUSTOMERS]] == ["Bobby"]
    apply(linker, mset, customer(2, "FR9", "Bobby", op=Op.DELETE))
    assert target.tables[T_CUSTOMERS] == []


def test_a_child_waits_parked_until_its_parent_has_a_counterpart(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, {"id": 50, "customer_id": 3}))
    assert target.tables[T_ORDERS] == [] and len(target.parked) == 1
    apply(linker, mset, customer(3, "IT3", "Cy"))  # the parent arrives: the child follows, translated
    cust_no = target.tables[T_CUSTOMERS][0]["cust_no"]
    assert target.tables[T_ORDERS] == [{"id": 50, "customer_id": cust_no}]
    assert target.parked == []


def test_a_deleted_row_takes_its_parked_changes_with_it(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    order = {"id": 51, "customer_id": 4}
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, order))
    apply(linker, mset, RowChange(ORDERS, Op.DELETE, order, None))
    assert target.parked == []
    apply(linker, mset, customer(4, "ES4", "Di"))
    assert target.tables[T_ORDERS] == [], "a deleted child came back when its parent arrived"


def test_a_running_stream_looks_again_at_what_parked_rows_wait_for(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    """The pair a parked order waits for is made elsewhere -- by the other direction linking the record by
    natural key, or a `verify --repair` -- which wakes nothing here: before, the order stayed parked until
    the next session start. Now the next linked change after `parking.RETRY_SECONDS` replays it first."""
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, {"id": 60, "customer_id": 5}))
    assert len(target.parked) == 1
    target.tables[T_CUSTOMERS].append({"cust_no": 700, "vat_id": "NL5", "name": "Ed"})
    target.crosswalk.append(("customers", "crm", "[5]", "[700]"))  # made by another session
    apply(linker, mset, customer(6, "BE6", "Flo"))  # within the interval: not looked at again yet
    assert target.parked and target.tables[T_ORDERS] == []
    linker._next_retry = 0.0  # the interval has passed
    apply(linker, mset, RowChange(ORDERS, Op.UPDATE, {"id": 60, "customer_id": 5}, {"id": 60, "customer_id": 5,
                                                                                    "note": "later"}))
    assert target.parked == []
    # the parked insert went first, then the later change of the same row: the order is not lost, nor older
    assert target.tables[T_ORDERS] == [{"id": 60, "customer_id": 700}], target.tables[T_ORDERS]


def test_a_parked_change_another_session_replayed_is_not_applied_twice(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, {"id": 61, "customer_id": 8}))
    target.crosswalk.append(("customers", "crm", "[8]", "[800]"))
    target.execute = lambda sql, params: 0  # type: ignore[method-assign]  # its DELETE finds the row gone
    assert linker.retry_waiting() == 0 and target.tables[T_ORDERS] == []


PROFITS = TableRef("public", "profit")
T_PROFITS = TableRef("erpdb", "profit")

PROFIT_YAML = YAML + """\
  profits:
    direction: crm_to_erp
    crm: {table: profit, key: [customer_id, year]}
    erp: {table: profit, key: [cust_no, year]}
    fields:
      customer_id: {erp: cust_no, references: customers}
      year: ~
      revenue: ~
"""


def test_a_delete_without_a_crosswalk_translates_a_key_column_that_references_a_link(tmp_path: Path) -> None:
    # issue 12: the key of a deleted row was taken from the old row untranslated, so the delete of
    # the CRM's (customer 5, 2026) looked for the ERP's (5, 2026) instead of (cust_no 101, 2026)
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), PROFIT_YAML)
    target = FakeTarget()
    target.tables[T_PROFITS] = []
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    apply(linker, mset, customer(5, "NL5", "Ed"))
    cust_no = target.tables[T_CUSTOMERS][0]["cust_no"]
    assert cust_no != 5
    row = {"customer_id": 5, "year": 2026, "revenue": 10}
    apply(linker, mset, RowChange(PROFITS, Op.INSERT, None, row))
    assert target.tables[T_PROFITS] == [{"cust_no": cust_no, "year": 2026, "revenue": 10}]
    target.tables[T_PROFITS].append({"cust_no": 5, "year": 2026, "revenue": 99})  # another account's row
    apply(linker, mset, RowChange(PROFITS, Op.DELETE, {"customer_id": 5, "year": 2026}, None))  # key-only image
    assert target.tables[T_PROFITS] == [{"cust_no": 5, "year": 2026, "revenue": 99}]


GATED = YAML + """\
  invoices:                           # a won deal becomes an invoice, once (Twenty -> Akaunting)
    direction: crm_to_erp
    crm: {table: deal, key: [id]}
    erp: {table: invoices, key: [inv_no]}
    link: {crosswalk: true}
    gate: {crm_to_erp: {column: stage, becomes: won}}
    fields:
      stage: {erp: ~}
      customer_id: {references: customers}
"""
DEAL = TableRef("public", "deal")
T_INVOICES = TableRef("erpdb", "invoices")


def test_a_change_behind_a_closed_gate_does_not_wait_for_its_parent(tmp_path: Path, target: FakeTarget) -> None:
    # an opportunity that is never won must not be parked for its company: it would wait forever (and be
    # replayed over a newer image if the gate opened meanwhile); the change that opens the gate brings it
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), GATED)
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    target.tables[T_INVOICES] = []
    deal = {"id": 70, "stage": "meeting", "customer_id": 5}
    apply(linker, mset, RowChange(DEAL, Op.INSERT, None, deal))
    apply(linker, mset, RowChange(DEAL, Op.UPDATE, deal, {**deal, "stage": "proposal"}))
    assert target.parked == [] and target.tables[T_INVOICES] == []
    # won before its company has a counterpart: that one waits, and follows the company
    apply(linker, mset, RowChange(DEAL, Op.UPDATE, {**deal, "stage": "proposal"}, {**deal, "stage": "won"}))
    assert len(target.parked) == 1
    apply(linker, mset, customer(5, "PT5", "Eve"))
    cust_no = target.tables[T_CUSTOMERS][0]["cust_no"]
    assert [r["customer_id"] for r in target.tables[T_INVOICES]] == [cust_no] and target.parked == []


STATUSED = GATED.replace("      stage: {erp: ~}\n", "      stage:\n        erp: status\n"
                         "        map: [{crm: won, erp: open}, {crm: closed, erp: closed}]\n")


def test_a_closed_gate_value_no_map_lists_is_no_row_error_before_the_gate_opens(tmp_path: Path,
                                                                                  target: FakeTarget) -> None:
    # Dolibarr's draft order (fk_statut 0) under `gate: {becomes: 1}` and a map of the statuses Oro knows: a draft
    # never opens the gate, so the map lists no value for it. Its insert was a row error (quarantined, and `verify`
    # reported it) although nothing is sent before the gate opens (docs/walkthrough-orocrm-dolibarr.md)
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), STATUSED)
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    target.tables[T_INVOICES] = []
    apply(linker, mset, customer(5, "PT5", "Eve"))
    deal = {"id": 72, "stage": "meeting", "customer_id": 5}
    (lc,) = route(mset, "crm", RowChange(DEAL, Op.INSERT, None, deal))
    assert isinstance(lc, LinkedChange) and not lc.gate_open and lc.refused is not None
    apply(linker, mset, RowChange(DEAL, Op.INSERT, None, deal))
    assert target.tables[T_INVOICES] == [] and target.parked == []
    apply(linker, mset, RowChange(DEAL, Op.UPDATE, deal, {**deal, "stage": "won"}))
    assert [r["status"] for r in target.tables[T_INVOICES]] == ["open"]
    # once the record has a counterpart, a value the map does not list is the row error again, naming the column
    with pytest.raises(RowError, match="stage"):
        apply(linker, mset, RowChange(DEAL, Op.UPDATE, {**deal, "stage": "won"}, {**deal, "stage": "meeting"}))


class RefusingTarget(FakeTarget):
    """A target whose invoices refuse an amount above 100 (Akaunting's double(15,4) refuses 12 integer digits)."""

    def insert_returning(self, table: TableRef, values: dict[str, Any], key_cols: Sequence[str]) -> tuple[Any, ...]:
        if table == T_INVOICES and values.get("amount", 0) > 100:
            raise RowError("out of range", table=str(table), column="amount")
        return super().insert_returning(table, values, key_cols)


def test_a_parked_record_is_created_from_its_latest_parked_image(tmp_path: Path) -> None:
    # a won opportunity parked for its company, then fixed at the source (parked too): when the company
    # arrives only the latest image creates the invoice; replaying the refused one first failed the company's
    # arrival every time, with the fix waiting behind it
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), GATED.replace("      customer_id: {references: customers}\n",
                                                     "      customer_id: {references: customers}\n      amount: ~\n"))
    target = RefusingTarget()
    target.tables[T_INVOICES] = []
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    deal = {"id": 71, "stage": "won", "customer_id": 6, "amount": 10 ** 17}
    apply(linker, mset, RowChange(DEAL, Op.INSERT, None, deal))
    apply(linker, mset, RowChange(DEAL, Op.UPDATE, deal, {**deal, "amount": 99}))
    assert len(target.parked) == 2
    apply(linker, mset, customer(6, "GR6", "Zoe"))
    assert [r["amount"] for r in target.tables[T_INVOICES]] == [99] and target.parked == []
    assert len([c for c in target.crosswalk if c[0] == "invoices"]) == 1


class _Refused(Exception):
    """What a driver raises for a row the server refuses (a value out of range)."""


class RefusingOrders(FakeTarget):
    def apply(self, changes: Sequence[TargetChange]) -> None:
        if any(c.table == T_ORDERS for c in changes):
            raise _Refused("(1264) Out of range value for column 'total' at row 1")
        super().apply(changes)

    def is_row_error(self, exc: Exception) -> bool:
        return isinstance(exc, _Refused)

    def describe_error(self, exc: Exception) -> str:
        return str(exc)

    def error_column(self, exc: Exception) -> str | None:
        return "total"


def test_a_replayed_parked_change_the_target_refuses_is_named_as_its_own(tmp_path: Path, mset: MappingSet) -> None:
    # an Akaunting invoice line parked for its invoice and refused when the invoice arrived was reported as
    # `column price: mapping invoices` on the invoice's table: the change being applied, not the line
    target = RefusingOrders()
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    apply(linker, mset, RowChange(ORDERS, Op.INSERT, None, {"id": 52, "customer_id": 8}))
    with pytest.raises(RowError) as info:
        apply(linker, mset, customer(8, "NO8", "Ola"))
    message = str(info.value)
    assert message.startswith("table erpdb.orders, crm key (52,)") and "invoices" not in message, message
    assert "column total: mapping orders: (1264) Out of range" in message, message
    assert "a change parked until customers [8] had a counterpart, replayed when it arrived" in message, message


def test_a_later_parked_update_without_a_toast_value_does_not_replace_the_insert(tmp_path: Path) -> None:
    # PostgreSQL leaves an unchanged TOAST value out of an update: created from that update alone, the record
    # would lose the value its insert carried; both are replayed, in order
    from replicator.changes import UNCHANGED
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), GATED.replace("      customer_id: {references: customers}\n",
                                                     "      customer_id: {references: customers}\n      notes: ~\n"))
    target = FakeTarget()
    target.tables[T_INVOICES] = []
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    deal = {"id": 72, "stage": "won", "customer_id": 9, "notes": "long " * 1000}
    apply(linker, mset, RowChange(DEAL, Op.INSERT, None, deal))
    apply(linker, mset, RowChange(DEAL, Op.UPDATE, deal, {**deal, "stage": "won", "notes": UNCHANGED}))
    assert len(target.parked) == 2
    apply(linker, mset, customer(9, "DK9", "Ida"))
    assert [r["notes"] for r in target.tables[T_INVOICES]] == ["long " * 1000] and target.parked == []


def test_an_update_whose_counterpart_the_target_deleted_is_logged_with_both_keys(
        linker: Linker, mset: MappingSet, target: FakeTarget, caplog: pytest.LogCaptureFixture) -> None:
    """docs/walkthrough-espocrm-tryton.md: Tryton's user deleted the draft sale a won EspoCRM opportunity made
    (a one-way mapping, linked by a crosswalk); the opportunity's later edits wrote nothing, with no log line
    and no queue: only replicator_rows_missing_total moved, until verify said "missing in target"."""
    import logging

    apply(linker, mset, customer(2, "FR9", "Bob"))
    target.tables[T_CUSTOMERS].clear()  # deleted on the target
    with caplog.at_level(logging.WARNING, logger="replicator.mapping.links"):
        apply(linker, mset, customer(2, "FR9", "Bobby", op=Op.UPDATE))
    assert target.tables[T_CUSTOMERS] == []  # not created again out of an update
    (line,) = [r.getMessage() for r in caplog.records]
    assert ("crm_to_erp: mapping customers: crm key (2,) changed, but its counterpart erpdb.customers key (101,) "
            "is gone (deleted on erp since): not written") in line, line
    assert "replicator verify --mapping customers" in line, line


EXTENSION_YAML = YAML + """\
  customer_extra:                     # a 1:1 extension: the ERP row is keyed by the customer's cust_no
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customer_extra, key: [cust_no]}
    fields:
      id: {erp: cust_no, references: customers}
  notes:                              # rows that point at the extension
    direction: crm_to_erp
    crm: {table: note, key: [id]}
    erp: {table: notes, key: [id]}
    fields:
      id: ~
      customer_id: {erp: cust_no, references: customer_extra}
"""
NOTE = TableRef("public", "note")
T_EXTRA = TableRef("erpdb", "customer_extra")
T_NOTES = TableRef("erpdb", "notes")


def test_a_reference_to_a_one_to_one_extension_is_translated_through_the_mapping_that_keys_it(
        tmp_path: Path) -> None:
    # probe13 (OFBiz): Krayin's birthday attribute of person 1 names mapping person_names (OFBiz's person row,
    # keyed by `id: {ofbiz: party_id, references: persons}`); the reference was looked up with Krayin's own 1
    # in person.party_id ("operator does not exist: character varying = integer", or, the other way, parked
    # for good) instead of the party id the persons crosswalk names
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), EXTENSION_YAML)
    target = FakeTarget()
    target.tables.update({T_EXTRA: [], T_NOTES: []})
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", None)  # type: ignore[arg-type]
    apply(linker, mset, customer(5, "NL5", "Ed"))
    cust_no = target.tables[T_CUSTOMERS][0]["cust_no"]
    assert cust_no != 5
    assert target.tables[T_EXTRA] == [{"cust_no": cust_no}]  # the extension row, made with the customer
    apply(linker, mset, RowChange(NOTE, Op.INSERT, None, {"id": 1, "customer_id": 5}))
    assert target.tables[T_NOTES] == [{"id": 1, "cust_no": cust_no}]
    # a customer without a counterpart: the note waits, although an extension row carries the CRM's number 6
    target.tables[T_EXTRA].append({"cust_no": 6})
    apply(linker, mset, RowChange(NOTE, Op.INSERT, None, {"id": 2, "customer_id": 6}))
    assert [r["id"] for r in target.tables[T_NOTES]] == [1] and len(target.parked) == 1


PARTY_YAML = """\
mappings:
  organizations:                      # OFBiz's party (here the crm side) <-> Krayin's organizations
    direction: crm_to_erp
    crm: {table: party, key: [party_id], slice: {party_type_id: PARTY_GROUP}}
    erp: {table: organizations, key: [id]}
    link: {crosswalk: true}
    fields:
      status_id: {erp: ~}
  organization_names:                 # ... whose NOT NULL name is party_group.group_name, a child row
    direction: crm_to_erp
    crm: {table: party_group, key: [party_id]}
    erp: {table: organizations, key: [id]}
    fold: {parent: organizations, child: crm, by: party_id, value: group_name, into: name}
"""
PARTY = TableRef("public", "party")
T_ORGS = TableRef("erpdb", "organizations")


def test_a_parent_created_through_a_crosswalk_carries_the_columns_its_folds_fill(tmp_path: Path) -> None:
    # probe13: OFBiz keeps an organization as a party row and its party_group row (the name); Krayin's
    # organizations.name is NOT NULL. The party's insert created the organization without a name (refused
    # by MariaDB, and by check before it), the fold's update would only have come after it
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), PARTY_YAML)
    target = FakeTarget()
    target.tables[T_ORGS] = []
    groups = {"10000": [("10000", "Dunder Mifflin")], "10001": [], "10002": [("10002", "A"), ("10002x", "B")]}
    asked: list[tuple[str, list[Any]]] = []

    def source(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if "{crosswalk}" in sql:
            return []  # no pair made by the other direction
        asked.append((sql, params))
        return [(params[0], *r) for r in groups[params[0]]]  # the parent, then the child row's key and value
    linker = Linker(target, mset, "crm_to_erp", "crm", "erp", "state", source, "postgresql")  # type: ignore[arg-type]
    for party_id in groups:
        row = {"party_id": party_id, "party_type_id": "PARTY_GROUP", "status_id": "PARTY_ENABLED"}
        for out in route(mset, "crm", RowChange(PARTY, Op.INSERT, None, row)):
            assert isinstance(out, LinkedChange)
            linker.apply(out)
    assert asked[0] == ('SELECT "party_id", "party_id", "group_name" FROM "public"."party_group" '
                        'WHERE "party_id" = %s ORDER BY "party_id", "party_id" LIMIT 3', ["10000"])
    # the one child row's value in the insert; none, or two (the fold's own change refuses those), leave it out
    assert [r.get("name") for r in target.tables[T_ORGS]] == ["Dunder Mifflin", None, None]


NEVER = """
mappings:
  orders:
    direction: both
    created_by: erp
    crm: {table: orders, key: [id], generate: {id: uuid}}
    erp: {table: orders, key: [order_no]}
    link: {crosswalk: true}
    fields: {ref: ~}
  products:
    direction: erp_to_crm
    crm: {table: product, key: [id], generate: {id: uuid}}
    erp: {table: product, key: [rowid]}
    link: {crosswalk: true}
    fields: {ref: ~}
  parts:
    direction: erp_to_crm
    crm: {table: part, key: [id], generate: {id: uuid}}
    erp: {table: part, key: [rowid]}
    link: {crosswalk: true, natural: [ref]}
    fields: {ref: ~}
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customer, key: [id]}
    created_by: erp
    fields: {id: ~, name: ~}
"""


def test_a_record_made_on_a_side_its_mapping_never_creates_from_never_gets_a_counterpart(tmp_path: Path) -> None:
    from replicator.mapping.links import never_paired
    (tmp_path / "maps").mkdir()
    mset = load(make_config(tmp_path), NEVER)
    assert never_paired(mset, "orders", "crm") == "only erp creates orders records (created_by: erp)"
    assert never_paired(mset, "orders", "erp") is None  # the ERP's orders are created in the CRM
    assert never_paired(mset, "products", "crm") == "products flows only erp_to_crm"
    # a natural key may still link it later (it parks), and so may a shared key
    assert never_paired(mset, "parts", "crm") is None
    assert never_paired(mset, "customers", "crm") is None


def test_a_first_copys_fill_sets_only_what_the_counterpart_holds_no_value_in(
        linker: Linker, mset: MappingSet, target: FakeTarget) -> None:
    """The second side of a first copy (sync/driver.py `_fill`): a field it may not write over an existing row
    still fills a NULL there -- a counterpart the first side's copy never saw -- and never overwrites a value."""
    from dataclasses import replace
    target.tables[T_CUSTOMERS] += [{"cust_no": 7, "vat_id": "DE1", "name": None},
                                   {"cust_no": 8, "vat_id": "DE2", "name": "first side's"}]
    for change in (customer(1, "DE1", "Ann"), customer(2, "DE2", "Bob"), customer(3, "DE3", None)):  # type: ignore[arg-type]
        for out in route(mset, "crm", change):
            assert isinstance(out, LinkedChange)
            linker.apply(replace(out, insert_only=frozenset({"name"}), fill=frozenset({"name"})))
    assert sorted((r["cust_no"], r["name"]) for r in target.tables[T_CUSTOMERS]) == [
        (7, "Ann"), (8, "first side's"), (101, None)]
