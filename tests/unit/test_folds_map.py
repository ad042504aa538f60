"""A fold's value map (`fold.map:`, docs/mappings.md "Child rows folded into columns"): Krayin's boolean attribute
(0/1) is OFBiz's CHAR(1) flag ('Y'/'N'). The field machinery compiles it; a value it does not list is a row error
naming table, key and column; load refuses what cannot be exact (file, line and key), `check` a map whose values do
not fit or that is not its own inverse."""
from __future__ import annotations

from typing import Any

import pytest

from replicator.changes import Op, RowChange, TableRef
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.check import ColumnInfo, check_types
from replicator.mapping.check.specs import field_specs
from replicator.mapping.folds import PARENT, VALUE, FoldApplier
from replicator.mapping.router import LinkedChange, Ref, route

from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)

ADDRESS = TableRef("public", "address")  # crm: id, owner_id, kind, value
CUSTOMERS = TableRef("erpdb", "customers")  # erp: cust_no, name, optin CHAR(1)

MAPS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id], generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  customer_optin:
    direction: both
    crm: {table: address, key: [id], slice: {kind: optin}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: optin,
           map: [{crm: 1, erp: Y}, {crm: 0, erp: N}]}
"""
ROW = {"id": "a-1", "owner_id": "c-1", "kind": "optin", "value": 1}
CUST = {"cust_no": 7, "name": "A", "optin": "Y"}


def _fold(out: list[Any]) -> LinkedChange:
    lcs = [o for o in out if isinstance(o, LinkedChange) and o.flow.mapping == "customer_optin"]
    assert len(lcs) == 1
    return lcs[0]


def test_the_map_translates_both_ways(config: Config) -> None:
    mset = load(config, MAPS)
    lc = _fold(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, ROW)))
    assert lc.values == {PARENT: Ref("customers", "c-1"), VALUE: "Y"}
    # a MariaDB TINYINT(1) arrives as 0/1, a PostgreSQL boolean as False/True: both match (transforms' rule)
    lc = _fold(route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, ROW, {**ROW, "value": False})))
    assert lc.values[VALUE] == "N" and lc.expect == {VALUE: "Y"}
    lc = _fold(route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, CUST, {**CUST, "optin": "N"})))
    assert lc.values[VALUE] == 0 and lc.expect == {VALUE: 1}
    # NULL is NULL (no child row), as a field's map says
    lc = _fold(route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, CUST, {**CUST, "optin": None})))
    assert lc.values[VALUE] is None


def test_a_value_the_map_does_not_list_is_a_row_error_naming_table_key_and_column(config: Config) -> None:
    mset = load(config, MAPS)
    with pytest.raises(RowError) as info:
        route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, CUST, {**CUST, "optin": "X"}))
    text = str(info.value)
    assert "erpdb.customers" in text and "key (7,)" in text and "column optin" in text and "'X'" in text, text
    assert "not in the map" in text, text
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, {**ROW, "value": 2}))
    text = str(info.value)
    assert "public.address" in text and "key ('a-1',)" in text and "column value" in text, text
    # an old value the map does not list never reached the other side: the correction is written, unchecked
    lc = _fold(route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, {**CUST, "optin": "?"}, CUST)))
    assert lc.values[VALUE] == 1 and lc.expect is None
    lc = _fold(route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, {**ROW, "value": 7}, ROW)))
    assert lc.values[VALUE] == "Y" and lc.expect is None


class _Target:
    """The applier's lookups a FoldApplier makes, against rows in memory."""

    resolver = None

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def find_keys(self, table: TableRef, cols: Any, where: dict[str, Any], limit: int) -> list[tuple[Any, ...]]:
        return [tuple(r[c] for c in cols) for r in self.rows if all(r.get(k) == v for k, v in where.items())]

    def insert_returning(self, table: TableRef, row: dict[str, Any], key: Any) -> Any:
        self.rows.append(dict(row))

    def update_by_key(self, table: TableRef, key_cols: Any, key: Any, values: dict[str, Any]) -> bool:
        self.rows.append({"updated": key, **values})
        return True


def test_a_parent_created_with_its_folded_column_carries_the_mapped_value(config: Config) -> None:
    """The parent mapping's insert reads the child row in the source (FoldApplier.folded): mapped the same way,
    and refused the same way when the map does not list it."""
    mset = load(config, MAPS)
    parent = mset.by_name["customers"].flow("crm")
    assert parent is not None
    rows: list[tuple[Any, ...]] = [("a-1", 0)]
    fa = FoldApplier(_Target(), "crm_to_erp", lambda ref: None, lambda lc, ref: None,  # type: ignore[arg-type]
                     lambda sql, params: [(params[0], *r) for r in rows], "postgresql", mset)
    assert fa.folded(parent, "c-1") == {"optin": "N"}
    rows[:] = [("a-1", 5)]
    with pytest.raises(RowError) as info:
        fa.folded(parent, "c-1")
    assert "public.address" in str(info.value) and "('a-1',)" in str(info.value) and "column value" in str(info.value)


@pytest.mark.parametrize("change, key, message", [
    ("map: [{crm: 1, erp: Y}, {crm: 0, erp: N}]}", "customer_optin.fold.unmapped",
     "a fold's value map is exact both ways"),
    ("map: [{crm: 1, erp: Y}, {crm: 0, erp: Y}]}", "customer_optin.fold.map",
     "the value map is ambiguous from erp to crm"),
    ("map: [{crm: 1, erp: Y}, {crm: 0}]}", "customer_optin.fold.map[1]", "each pair needs exactly the keys crm and erp"),
    ("map: [{crm: 1, erp: Y}, {crm: 0, erp: N}], references: customers}", "customer_optin.fold.map",
     "a reference (translated through that mapping's link) or mapped by a value map, not both"),
    ("unmapped: error}", "customer_optin.fold.unmapped", "this fold has no map"),
])
def test_bad_fold_maps_name_file_line_and_key(config: Config, change: str, key: str, message: str) -> None:
    text = MAPS.replace("map: [{crm: 1, erp: Y}, {crm: 0, erp: N}]}", change)
    if key.endswith("unmapped") and "no map" not in message:
        text = text.replace("erp: N}]}", "erp: N}], unmapped: pass}")
    assert text != MAPS
    msg = error(config, text)
    assert message in msg and f"m.yaml:" in msg and key in msg, msg
    assert "m.yaml:1:" not in msg and "m.yaml:None" not in msg, msg  # the line of the key, not of the file


def test_a_one_way_map_listing_a_value_twice_on_the_side_it_reads_is_ambiguous_only_there(config: Config) -> None:
    """One way (crm_to_erp), two ERP values for one CRM value would make crm_to_erp ambiguous: refused; two CRM values
    becoming one ERP value loads (it flows), and `check` refuses it as lossy (below)."""
    one_way = MAPS.replace("  customer_optin:\n    direction: both", "  customer_optin:\n    direction: crm_to_erp")
    load(config, one_way.replace("{crm: 0, erp: N}]", "{crm: 0, erp: Y}]"))
    msg = error(config, one_way.replace("{crm: 0, erp: N}]", "{crm: 1, erp: N}]"))
    assert "ambiguous from crm to erp" in msg and "customer_optin.fold.map" in msg, msg


def _catalogs(optin: ColumnInfo, value: ColumnInfo) -> dict[str, dict[TableRef, dict[str, Any]]]:
    crm = {TableRef("public", "customer"): {"id": ColumnInfo("text", length=40, nullable=False),
                                           "name": ColumnInfo("text", nullable=False)},
           ADDRESS: {"id": ColumnInfo("text", length=40, nullable=False), "owner_id": ColumnInfo("text", length=40),
                     "kind": ColumnInfo("text", nullable=False), "value": value}}
    erp = {CUSTOMERS: {"cust_no": ColumnInfo("int", bits=32, generated=True, nullable=False),
                       "name": ColumnInfo("text", length=100, nullable=False), "optin": optin}}
    return {"crm": crm, "erp": erp}


def _check(config: Config, text: str, optin: ColumnInfo, value: ColumnInfo) -> tuple[list[str], list[str]]:
    mset = load(config, text)
    out = check_types(mset, _catalogs(optin, value), {"crm": "postgresql", "erp": "mariadb"},  # type: ignore[arg-type]
                      field_specs(config.mappings_dir))
    return [f.what for f in out if not f.ok and not f.warning], [f.what for f in out if f.ok]


CHAR1, TINYINT = ColumnInfo("text", length=1), ColumnInfo("int", bits=8)


def test_check_judges_the_map_not_the_cast(config: Config) -> None:
    """Without the map, 0/1 into CHAR(1) is a cast `check` cannot make exact; with it, the map's values are
    judged against each target column, as a field's map's are."""
    failures, oks = _check(config, MAPS, CHAR1, TINYINT)
    assert failures == [], failures
    assert any("address rows of kind = 'optin' fold into erpdb.customers.optin" in w for w in oks), oks
    failures, _ = _check(config, MAPS.replace("erp: Y}", "erp: 'Yes'}"), CHAR1, TINYINT)
    assert any("m.yaml:" in w and "customer_optin.fold.map" in w and "map values for erp:erpdb.customers.optin "
               "(crm_to_erp)" in w and "'Yes' is 3 characters" in w for w in failures), failures
    failures, _ = _check(config, MAPS.replace("crm: 1,", "crm: 300,"), CHAR1, TINYINT)
    assert any("map values for crm:public.address.value (erp_to_crm)" in w and "300" in w for w in failures), failures
    # a source enum's values must all be listed (unmapped is error on a fold)
    enum = ColumnInfo("enum", enums=("Y", "N", "U"))
    failures, _ = _check(config, MAPS, enum, TINYINT)
    assert any("values 'U' of erp:erpdb.customers.optin" in w and "not in the map (erp_to_crm)" in w
               for w in failures), failures


def test_check_refuses_a_map_that_is_not_its_own_inverse_unless_lossy_allow(config: Config) -> None:
    one_way = MAPS.replace("  customer_optin:\n    direction: both", "  customer_optin:\n    direction: crm_to_erp")
    two_to_one = one_way.replace("{crm: 0, erp: N}]", "{crm: 0, erp: N}, {crm: 2, erp: Y}]")
    failures, _ = _check(config, two_to_one, CHAR1, TINYINT)
    assert any("m.yaml:" in w and "customer_optin.fold.map" in w and "crm values 1 and 2 both become 'Y'" in w
               and "cannot be translated back" in w for w in failures), failures
    failures, oks = _check(config, two_to_one.replace("erp: Y}]}", "erp: Y}], lossy: allow}"), CHAR1, TINYINT)
    assert failures == [], failures
    assert any("both become 'Y'" in w and "(lossy: allow)" in w for w in oks), oks


def test_explain_shows_the_mapped_value_and_the_row_error_of_an_unlisted_one(config: Config) -> None:
    from replicator.mapping.explain.fold import explain_fold
    mset = load(config, MAPS)
    flow = mset.by_name["customer_optin"].flow("erp")
    assert flow is not None
    out = explain_fold(flow, dict(CUST), None, "--row", "offline")
    assert out["value"] == 1 and "gets value = 1" in out["result"], out
    out = explain_fold(flow, {**CUST, "optin": "X"}, None, "--row", "offline")
    assert out["result"].startswith("row error: ") and "column optin" in out["result"] \
        and "not in the map" in out["result"], out
