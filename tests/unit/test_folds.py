"""`fold:` mappings (issue 11, gaps 6 and 7): a child row on one side is one column of its parent on the
other -- an address row typed by `kind` and the customer's email column; an association table and a
foreign-key column. Parsing, the load-time errors, routing, and the applier's rules against a fake target."""
from __future__ import annotations

from typing import Any, Sequence

import pytest

from replicator.changes import Op, RowChange, TableRef
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.folds import PARENT, VALUE, FoldApplier
from replicator.mapping.router import LinkedChange, Ref, route

from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)

ADDRESS = TableRef("public", "address")  # crm: id (application UUID), owner_id, kind, value
CUSTOMER = TableRef("public", "customer")  # crm
CUSTOMERS = TableRef("erpdb", "customers")  # erp: cust_no, name, email, phone
CONTACT_COMPANY = TableRef("public", "contact_company")  # crm: contact_id, company_id
CONTACT = TableRef("erpdb", "contact")  # erp: contact_no, company_no

MAPS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id], generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email}
  companies:
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: companies, key: [company_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contact, key: [contact_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contact_company:
    direction: both
    crm: {table: contact_company, key: [contact_id, company_id]}
    erp: {table: contact, key: [contact_no]}
    fold: {parent: contacts, child: crm, by: contact_id, value: company_id, into: company_no, references: companies}
"""


def test_a_fold_compiles_to_two_linked_flows(config: Config) -> None:
    mset = load(config, MAPS)
    m = mset.by_name["customer_email"]
    to_erp, to_crm = m.flow("crm"), m.flow("erp")
    assert to_erp is not None and to_crm is not None
    assert to_erp.fold is not None and to_erp.fold.into == "email" and to_erp.linked and to_erp.two_way
    assert to_erp.source.table == ADDRESS and to_erp.target.table == CUSTOMERS
    assert to_crm.target.slice == (("kind", "email"),) and [g.kind for g in to_crm.target.generate] == ["uuid"]
    # whose row a deleted address was: the slice and the parent column (REPLICA IDENTITY FULL)
    assert to_erp.filter_columns == ("kind", "owner_id")
    # the parent mappings may now unpark folded children
    assert mset.by_name["customers"].flows[0].referenced and mset.by_name["companies"].flows[0].referenced
    assert mset.by_name["contact_company"].flows[0].fold.references == "companies"  # type: ignore[union-attr]


@pytest.mark.parametrize("change, message", [
    (("fold: {parent: customers, child: crm, by: owner_id, value: value, into: email}",
      "fold: {parent: nobody, child: crm, by: owner_id, value: value, into: email}"), "fold.parent: 'nobody'"),
    (("erp: {table: customers, key: [cust_no]}\n    fold", "erp: {table: orders, key: [cust_no]}\n    fold"),
     "the parent's table on erp is erpdb.customers"),
    (("slice: {kind: email}, generate: {id: uuid}}", "slice: {kind: email}}"),
     "key column 'id' of public.address is neither fold.by"),
    (("child: crm, by: owner_id", "child: crm, color: red, by: owner_id"), "color"),
    (("by: owner_id, value: value", "by: kind, value: value"), "fold column 'kind' is a slice column"),
])
def test_bad_folds_name_file_line_and_key(config: Config, change: tuple[str, str], message: str) -> None:
    text = MAPS.replace(*change)
    assert text != MAPS
    msg = error(config, text)
    assert message in msg and "m.yaml:" in msg


@pytest.mark.parametrize("transform, message", [
    ("[trim]", "a fold takes only the transform null_if_empty"),
    ("{crm_to_shop: [null_if_empty]}", "transform directions are crm_to_erp and erp_to_crm"),
])
def test_a_folds_transform_is_null_if_empty_alone(config: Config, transform: str, message: str) -> None:
    msg = error(config, MAPS.replace("value: value, into: email}", f"value: value, into: email, transform: {transform}}}"))
    assert message in msg and "m.yaml:" in msg and "fold.transform" in msg, msg


def test_an_empty_text_is_no_child_row_where_null_if_empty_says_so(config: Config) -> None:
    """Per direction: erp_to_crm reads the ERP's '' as NULL (the child row goes), crm_to_erp keeps a child's ''."""
    mset = load(config, MAPS.replace("value: value, into: email}",
                                     "value: value, into: email, transform: {erp_to_crm: [null_if_empty]}}"))
    cust = {"cust_no": 7, "name": "A", "email": "a@x.de", "phone": None}
    out = route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": ""}))
    lc = _one([o for o in out if o.flow.mapping == "customer_email"])  # type: ignore[union-attr]
    assert lc.values[VALUE] is None and lc.expect == {VALUE: "a@x.de"}
    empty = {**cust, "email": ""}
    assert [o.flow.mapping for o in route(mset, "erp", RowChange(CUSTOMERS, Op.INSERT, None, empty))  # type: ignore[union-attr]
            ] == ["customers"]  # no child row to make
    assert [o for o in route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, empty, {**empty, "email": None}))
            if o.flow.mapping == "customer_email"] == []  # type: ignore[union-attr]  # '' to NULL: no change
    row = {"id": "a-1", "owner_id": "c-1", "kind": "email", "value": ""}
    lc = _one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row)))
    assert lc.values[VALUE] == ""


def test_the_folded_column_has_one_writer(config: Config) -> None:
    msg = error(config, MAPS.replace("fields: {name: ~}\n  customer_email", "fields: {name: ~, email: ~}\n  customer_email"))
    assert "column email of erpdb.customers on erp is written by mappings" in msg


def _one(out: list[Any]) -> LinkedChange:
    assert len(out) == 1 and isinstance(out[0], LinkedChange)
    return out[0]


def test_a_child_row_routes_to_its_parents_column(config: Config) -> None:
    mset = load(config, MAPS)
    row = {"id": "u-1", "owner_id": "c-1", "kind": "email", "value": "a@x.de"}
    lc = _one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row)))
    assert lc.op is Op.UPDATE and lc.values == {PARENT: Ref("customers", "c-1"), VALUE: "a@x.de"}
    # another kind is not this fold's
    assert route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, {**row, "kind": "phone"})) == []
    # a delete clears the parent's column; it needs the whole old row
    lc = _one(route(mset, "crm", RowChange(ADDRESS, Op.DELETE, row, None)))
    assert lc.op is Op.DELETE and lc.values == {PARENT: Ref("customers", "c-1")}
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(ADDRESS, Op.DELETE, {"id": "u-1"}, None))
    assert "key ('u-1',), column kind" in str(info.value) and "REPLICA IDENTITY FULL" in str(info.value)
    # an update of the value carries the old value for the conflict check; an unchanged value sends nothing
    lc = _one(route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, {**row, "value": "b@x.de"})))
    assert lc.values[VALUE] == "b@x.de" and lc.expect == {VALUE: "a@x.de"}
    assert route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, dict(row))) == []
    # moved to another parent: the old parent is cleared, the new one set
    out = route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, {**row, "owner_id": "c-2"}))
    assert [(o.op, o.values[PARENT].value) for o in out] == [(Op.DELETE, "c-1"), (Op.UPDATE, "c-2")]  # type: ignore[union-attr]
    # left the slice (the email became a phone number): the old parent is cleared
    out = route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, {**row, "kind": "phone"}))
    assert [o.op for o in out] == [Op.DELETE]  # type: ignore[union-attr]


def test_a_parents_column_routes_to_its_child_row(config: Config) -> None:
    mset = load(config, MAPS)
    cust = {"cust_no": 7, "name": "A", "email": "a@x.de", "phone": None}
    lc = _one(route(mset, "erp", RowChange(CUSTOMERS, Op.INSERT, None, cust))[1:])  # after the customers flow
    assert lc.flow.mapping == "customer_email" and lc.values == {PARENT: Ref("customers", 7), VALUE: "a@x.de"}
    # only the folded column matters; a parent's delete is the parent mapping's
    assert [o.flow.mapping for o in route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "name": "B"}))  # type: ignore[union-attr]
            ] == ["customers"]
    out = route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": None}))
    lc = _one([o for o in out if o.flow.mapping == "customer_email"])  # type: ignore[union-attr]
    assert lc.values[VALUE] is None and lc.expect == {VALUE: "a@x.de"}
    assert [o.flow.mapping for o in route(mset, "erp", RowChange(CUSTOMERS, Op.DELETE, cust, None))  # type: ignore[union-attr]
            ] == ["customers"]


def test_an_association_row_carries_a_reference(config: Config) -> None:
    mset = load(config, MAPS)
    lc = _one(route(mset, "crm", RowChange(CONTACT_COMPANY, Op.INSERT, None, {"contact_id": 5, "company_id": 9})))
    assert lc.values == {PARENT: Ref("contacts", 5), VALUE: Ref("companies", 9)}
    out = route(mset, "erp", RowChange(CONTACT, Op.UPDATE, {"contact_no": 3, "name": "x", "company_no": 1},
                                       {"contact_no": 3, "name": "x", "company_no": 2}))
    lc = _one([o for o in out if o.flow.mapping == "contact_company"])  # type: ignore[union-attr]
    assert lc.values == {PARENT: Ref("contacts", 3), VALUE: Ref("companies", 2)}


# ---------------------------------------------------------------- the applier's rules, against a fake target


class FakeTarget:
    """The few Applier calls a fold makes, over a dict of rows by table."""

    resolver = None

    def __init__(self) -> None:
        self.rows: dict[TableRef, list[dict[str, Any]]] = {}
        self.written: set[TableRef] = set()  # Applier.written: the tables a check may write itself

    def find_keys(self, table: TableRef, cols: Sequence[str], where: dict[str, Any], limit: int = 2,
                  slice_: tuple[tuple[str, Any], ...] = ()) -> list[tuple[Any, ...]]:
        hits = [r for r in self.rows.get(table, []) if all(r.get(c) == v for c, v in (*where.items(), *slice_))]
        return [tuple(r[c] for c in cols) for r in hits[:limit]]

    def _match(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [r for r in self.rows.get(table, []) if tuple(r[c] for c in key_cols) == tuple(key)]

    def insert_returning(self, table: TableRef, values: dict[str, Any], key_cols: Sequence[str]) -> tuple[Any, ...]:
        self.rows.setdefault(table, []).append(dict(values))
        return tuple(values[c] for c in key_cols)

    def update_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...], values: dict[str, Any]) -> int:
        hits = self._match(table, key_cols, key)
        for r in hits:
            r.update(values)
        return len(hits)

    def delete_by_key(self, table: TableRef, key_cols: Sequence[str], key: tuple[Any, ...]) -> int:
        hits = self._match(table, key_cols, key)
        self.rows[table] = [r for r in self.rows[table] if r not in hits]
        return len(hits)


def _applier(target: FakeTarget, pairs: dict[tuple[str, Any], Any], siblings: list[tuple[Any, ...]] | None = None
             ) -> tuple[FoldApplier, list[Ref]]:
    parked: list[Ref] = []
    query = (lambda sql, params: [(params[0], *r) for r in siblings or []]) if siblings is not None else None
    fa = FoldApplier(target, "x", lambda ref: pairs.get((ref.mapping, ref.value)),  # type: ignore[arg-type]
                     lambda lc, ref: parked.append(ref), query, "postgresql" if query else None)
    return fa, parked


def test_a_column_creates_updates_and_deletes_its_child_row(config: Config) -> None:
    mset = load(config, MAPS)
    target = FakeTarget()
    fa, parked = _applier(target, {("customers", 7): "c-7"})
    cust = {"cust_no": 7, "name": "A", "email": "a@x.de"}

    def apply(change: RowChange) -> None:
        for o in route(mset, "erp", change):
            if isinstance(o, LinkedChange) and o.flow.fold is not None:
                fa.apply(o)
    apply(RowChange(CUSTOMERS, Op.INSERT, None, cust))
    (row,) = target.rows[ADDRESS]
    assert row["owner_id"] == "c-7" and row["kind"] == "email" and row["value"] == "a@x.de" and len(row["id"]) == 36
    apply(RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": "b@x.de"}))
    assert [r["value"] for r in target.rows[ADDRESS]] == ["b@x.de"]
    apply(RowChange(CUSTOMERS, Op.UPDATE, {**cust, "email": "b@x.de"}, {**cust, "email": None}))
    assert target.rows[ADDRESS] == []
    # a customer not linked yet parks, waiting for its customers pair
    apply(RowChange(CUSTOMERS, Op.INSERT, None, {**cust, "cust_no": 8}))
    assert parked == [Ref("customers", 8)] and target.rows[ADDRESS] == []
    # two rows of the type for one parent cannot be one column: a row error, nothing written
    target.rows[ADDRESS] = [{"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a"},
                            {"id": "u2", "owner_id": "c-7", "kind": "email", "value": "b"}]
    with pytest.raises(RowError) as info:
        apply(RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": "c@x.de"}))
    assert "column email" in str(info.value) and "several rows of {'kind': 'email'}" in str(info.value)
    assert [r["value"] for r in target.rows[ADDRESS]] == ["a", "b"]


def test_a_child_row_sets_and_clears_its_parents_column(config: Config) -> None:
    mset = load(config, MAPS)
    target = FakeTarget()
    target.rows[CUSTOMERS] = [{"cust_no": 7, "email": None}]
    row = {"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a@x.de"}
    fa, parked = _applier(target, {("customers", "c-7"): 7}, siblings=[("u1", "a@x.de")])
    fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row))))
    assert target.rows[CUSTOMERS] == [{"cust_no": 7, "email": "a@x.de"}]
    # a second email of the same customer in the source: refused, naming the child table, key and column
    fa, _ = _applier(target, {("customers", "c-7"): 7}, siblings=[("u1", "a@x.de"), ("u2", "b@x.de")])
    with pytest.raises(RowError) as info:
        fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, {**row, "id": "u2", "value": "b@x.de"}))))
    assert "table public.address, key ('u2',), column value" in str(info.value)
    # deleting one of the two: the column takes the one left
    fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.DELETE, row, None))))
    assert target.rows[CUSTOMERS] == [{"cust_no": 7, "email": "b@x.de"}]
    # deleting the last: NULL
    fa, _ = _applier(target, {("customers", "c-7"): 7}, siblings=[])
    fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.DELETE, {**row, "id": "u2"}, None))))
    assert target.rows[CUSTOMERS] == [{"cust_no": 7, "email": None}]
    # a parent without a counterpart parks
    fa, parked = _applier(target, {}, siblings=[])
    fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row))))
    assert parked == [Ref("customers", "c-7")]


def test_an_association_row_parks_until_the_company_is_linked(config: Config) -> None:
    mset = load(config, MAPS)
    target = FakeTarget()
    target.rows[CONTACT] = [{"contact_no": 3, "company_no": None}]
    fa, parked = _applier(target, {("contacts", 5): 3})
    lc = _one(route(mset, "crm", RowChange(CONTACT_COMPANY, Op.INSERT, None, {"contact_id": 5, "company_id": 9})))
    fa.apply(lc)
    assert parked == [Ref("companies", 9)] and target.rows[CONTACT] == [{"contact_no": 3, "company_no": None}]
    fa, parked = _applier(target, {("contacts", 5): 3, ("companies", 9): 90})
    fa.apply(lc)
    assert parked == [] and target.rows[CONTACT] == [{"contact_no": 3, "company_no": 90}]


# ---------------------------------------------------------------- check


def _catalogs(**over: Any) -> dict[str, dict[TableRef, dict[str, Any]]]:
    from replicator.mapping.check import ColumnInfo
    text = ColumnInfo("text", nullable=False)
    crm = {
        TableRef("public", "customer"): {"id": ColumnInfo("text", length=40, nullable=False), "name": text},
        ADDRESS: {"id": ColumnInfo("text", length=40, nullable=False), "owner_id": ColumnInfo("text", length=40),
                  "kind": text, "value": text, **over.get("address", {})},
    }
    erp = {CUSTOMERS: {"cust_no": ColumnInfo("int", bits=32, generated=True, nullable=False),
                       "name": ColumnInfo("text", length=100, nullable=False),
                       "email": ColumnInfo("text", length=200), **over.get("customers", {})}}
    return {"crm": crm, "erp": erp}


ADDRESS_MAPS = MAPS.split("  companies:")[0]


def test_check_validates_a_fold(config: Config) -> None:
    from replicator.mapping.check import ColumnInfo, check_types
    mset = load(config, ADDRESS_MAPS)
    kinds = {"crm": "postgresql", "erp": "mariadb"}
    out = check_types(mset, _catalogs(), kinds)  # type: ignore[arg-type]
    assert not [f for f in out if not f.ok and not f.warning], out
    assert any(f.ok and "public.address rows of kind = 'email' fold into erpdb.customers.email" in f.what for f in out)
    assert any(f.warning and "crm:public.address.value TEXT -> erp:erpdb.customers.email VARCHAR(200) (crm_to_erp): lossy" in f.what for f in out)
    # a missing column, a NOT NULL column nobody fills, a value that cannot be cast
    cats = _catalogs(address={"source": ColumnInfo("text", nullable=False), "value": ColumnInfo("date")},
                     customers={"email": ColumnInfo("int", bits=32)})
    bad = check_types(mset, cats, kinds)  # type: ignore[arg-type]
    failures = [f.what for f in bad if not f.ok and not f.warning]
    assert any("m.yaml:" in w and "column source of public.address is NOT NULL and the fold does not fill it" in w
               for w in failures), failures
    assert any("crm:public.address.value" in w and "-> erp:erpdb.customers.email" in w and "incompatible" in w
               for w in failures), failures
    made_by_db = load(config, ADDRESS_MAPS.replace("generate: {id: uuid}}\n    erp: {table: customers",
                                                   "generate: {id: default}}\n    erp: {table: customers"))
    failures = [f.what for f in check_types(made_by_db, _catalogs(), kinds) if not f.ok]  # type: ignore[arg-type]
    assert any("generate: id is default, but public.address.id has no DEFAULT" in w for w in failures), failures
    del cats["crm"][ADDRESS]["value"]
    failures = [f.what for f in check_types(mset, cats, kinds) if not f.ok]  # type: ignore[arg-type]
    assert any("mappings.customer_email.fold: column value does not exist in public.address" in w for w in failures)


# ---------------------------------------------------------------- conflicts


class Resolver:
    """Decides as the Detector would for one field: the target's edit wins when `target_wins`."""

    def __init__(self, target_wins: bool) -> None:
        self.target_wins = target_wins
        self.seen: list[Any] = []

    def resolve(self, applier: Any, run: Any, rows: list[Any], write: bool = False) -> list[Any]:
        self.seen.extend(rows)
        return [] if self.target_wins else rows


def test_a_two_way_fold_checks_its_column_for_a_concurrent_edit(config: Config) -> None:
    mset = load(config, MAPS)
    row = {"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a@x.de"}
    for target_wins, expected in ((True, "edited@x.de"), (False, "b@x.de")):
        target = FakeTarget()
        target.rows[CUSTOMERS] = [{"cust_no": 7, "email": "edited@x.de"}]
        resolver = Resolver(target_wins)
        target.resolver = resolver  # type: ignore[assignment]
        fa, _ = _applier(target, {("customers", "c-7"): 7})
        fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, {**row, "value": "b@x.de"}))))
        (tc,) = resolver.seen
        assert tc.table == CUSTOMERS and tc.mapping == "customer_email" and tc.key == (7,)
        assert tc.expect == {"email": "a@x.de", "cust_no": 7} and tc.values == {"email": "b@x.de", "cust_no": 7}
        assert target.rows[CUSTOMERS] == [{"cust_no": 7, "email": expected}]


def test_a_child_rows_insert_delete_and_move_carry_what_the_parent_held_before(config: Config) -> None:
    """The conflict check's `expect` of a two-way fold from the stream: NULL for a row new to its parent (an
    insert, a move, a row come into the slice), the old value for a row that leaves (a delete, a move away)."""
    mset = load(config, MAPS)
    row = {"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a@x.de"}
    assert _one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row))).expect == {VALUE: None}
    gone = _one(route(mset, "crm", RowChange(ADDRESS, Op.DELETE, row, None)))
    assert gone.op is Op.DELETE and gone.expect == {VALUE: "a@x.de"}
    left, came = route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, row, {**row, "owner_id": "c-8"}))
    assert isinstance(left, LinkedChange) and isinstance(came, LinkedChange)
    assert left.values[PARENT] == Ref("customers", "c-7") and left.expect == {VALUE: "a@x.de"}
    assert came.values[PARENT] == Ref("customers", "c-8") and came.expect == {VALUE: None}
    phone = {**row, "kind": "phone"}
    entered = _one(route(mset, "crm", RowChange(ADDRESS, Op.UPDATE, phone, row)))
    assert entered.expect == {VALUE: None}
    # a copy (not the stream) and a one-way fold are not checked
    from replicator.mapping.router import route_flow
    flow = mset.by_name["customer_email"].flow("crm")
    assert flow is not None and _one(route_flow(flow, RowChange(ADDRESS, Op.INSERT, None, row))).expect is None
    one_way = load(config, MAPS.replace("  customer_email:\n    direction: both", "  customer_email:\n    direction: crm_to_erp"))
    assert _one(route(one_way, "crm", RowChange(ADDRESS, Op.DELETE, row, None))).expect is None


class Departed(Resolver):
    """A resolver that also decides a gone child row (`departed`): the edit wins when `target_wins` is False,
    the deleted row's key `again`."""

    def __init__(self, target_wins: bool, again: tuple[Any, ...] | None) -> None:
        super().__init__(target_wins)
        self.again = again
        self.departed_calls: list[tuple[Any, ...]] = []

    def departed(self, applier: Any, change: Any, by: str, parent: Any, slice_: Any) -> tuple[bool, Any]:
        self.departed_calls.append((change.table, change.values, change.expect, by, parent, tuple(slice_)))
        return not self.target_wins, self.again


def test_an_edit_of_the_column_whose_child_row_is_gone_is_decided_not_written_over(config: Config) -> None:
    mset = load(config, MAPS)
    cust = {"cust_no": 7, "name": "A", "email": "a@x.de"}
    change = RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": "b@x.de"})
    for target_wins, again, rows in ((True, ("u1",), []), (False, ("u1",), [("u1", "b@x.de")]),
                                     (False, None, [(None, "b@x.de")])):
        target = FakeTarget()
        resolver = Departed(target_wins, again)
        target.resolver = resolver  # type: ignore[assignment]
        fa, _ = _applier(target, {("customers", 7): "c-7"})
        for o in route(mset, "erp", change):
            if isinstance(o, LinkedChange) and o.flow.fold is not None:
                fa.apply(o)
        assert resolver.departed_calls == [(ADDRESS, {"value": "b@x.de"}, {"value": "a@x.de"}, "owner_id", "c-7",
                                            (("kind", "email"),))]
        got = [(r["id"] if again else None, r["value"]) for r in target.rows.get(ADDRESS, [])]
        assert got == rows, (target_wins, again)
    # the column was NULL before: no row to miss, the row is made as always, unasked
    target = FakeTarget()
    resolver = Departed(True, None)
    target.resolver = resolver  # type: ignore[assignment]
    fa, _ = _applier(target, {("customers", 7): "c-7"})
    empty = {**cust, "email": None}
    for o in route(mset, "erp", RowChange(CUSTOMERS, Op.UPDATE, empty, cust)):
        if isinstance(o, LinkedChange) and o.flow.fold is not None:
            fa.apply(o)
    assert resolver.departed_calls == [] and [r["value"] for r in target.rows[ADDRESS]] == ["a@x.de"]


def test_a_fold_stops_or_ignores_a_truncate_never_propagates_it(config: Config) -> None:
    from replicator.errors import FatalError
    mset = load(config, MAPS)
    with pytest.raises(FatalError):
        route(mset, "crm", RowChange(ADDRESS, Op.TRUNCATE, None, None))
    ignored = load(config, MAPS.replace("    fold: {parent: customers", "    truncate: ignore\n    fold: {parent: customers"))
    assert route(ignored, "crm", RowChange(ADDRESS, Op.TRUNCATE, None, None)) == []
    assert "propagate" in error(config, MAPS.replace("    fold: {parent: customers",
                                                      "    truncate: propagate\n    fold: {parent: customers"))


class Counting(FakeTarget):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def find_keys(self, *a: Any, **k: Any) -> list[tuple[Any, ...]]:
        self.calls.append("select")
        return super().find_keys(*a, **k)

    def insert_returning(self, *a: Any, **k: Any) -> tuple[Any, ...]:
        self.calls.append("insert")
        return super().insert_returning(*a, **k)

    def update_by_key(self, *a: Any, **k: Any) -> int:
        self.calls.append("update")
        return super().update_by_key(*a, **k)

    def delete_by_key(self, *a: Any, **k: Any) -> int:
        self.calls.append("delete")
        return super().delete_by_key(*a, **k)


def test_statements_per_change(config: Config) -> None:
    """The cost of a fold, in statements on the target (and the source, for the several-rows rule)."""
    mset = load(config, MAPS)
    cust = {"cust_no": 7, "name": "A", "email": "a@x.de", "phone": None}
    target = Counting()
    fa, _ = _applier(target, {("customers", 7): "c-7"})

    def run(side: str, change: RowChange) -> list[str]:
        target.calls.clear()
        for o in route(mset, side, change):
            if isinstance(o, LinkedChange) and o.flow.fold is not None:
                fa.apply(o)
        return list(target.calls)
    assert run("erp", RowChange(CUSTOMERS, Op.INSERT, None, cust)) == ["select", "insert"]
    assert run("erp", RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "email": "b@x.de"})) == ["select", "update"]
    assert run("erp", RowChange(CUSTOMERS, Op.UPDATE, cust, {**cust, "name": "B"})) == []  # folded columns unchanged
    source: list[str] = []
    target.rows[CUSTOMERS] = [{"cust_no": 7, "email": None}]
    fa = FoldApplier(target, "x", lambda ref: {("customers", "c-7"): 7}.get((ref.mapping, ref.value)),  # type: ignore[arg-type]
                     lambda lc, ref: None, lambda sql, params: source.append(sql) or [("c-7", "u1", "a@x.de")],
                     "postgresql")
    row = {"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a@x.de"}
    assert run("crm", RowChange(ADDRESS, Op.INSERT, None, row)) == ["update"] and len(source) == 1
    assert source[0] == ('SELECT "owner_id", "id", "value" FROM "public"."address" WHERE "owner_id" = %s '
                         'AND "kind" = %s ORDER BY "owner_id", "id" LIMIT 3')  # folds.child_rows_sql, as verify reads


def test_explain_shows_what_a_row_becomes_through_a_fold(config: Config) -> None:
    import json

    from replicator.mapping.explain.command import run
    mset = load(config, MAPS)
    text = run(config, mset, mapping="customer_email", side="crm", offline=True,
               row='{"id": "u1", "owner_id": "c-7", "kind": "email", "value": "a@x.de"}')
    assert "a fold, crm public.address -> erp erpdb.customers" in text
    # values as the text output writes them elsewhere, not Python reprs ({'kind': 'email'}, 'a@x.de')
    assert 'row: id = "u1", owner_id = "c-7", kind = "email", value = "a@x.de"' in text, text
    assert 'parent: customers "c-7" -> (not looked up)' in text and 'erpdb.customers.email = "a@x.de"' in text, text
    assert 'a second row of kind = "email" for the parent is a row error' in text, text
    out = json.loads(run(config, mset, mapping="customer_email", side="crm", offline=True, as_json=True,
                         row='{"id": "u1", "owner_id": "c-7", "kind": "phone", "value": "1"}'))
    assert out["kind"] == "fold" and out["result"].startswith("not this fold's row")
    text = run(config, mset, mapping="contact_company", side="erp", offline=True,
               row='{"contact_no": 3, "name": "x", "company_no": 9}')
    assert "(a companies key, not looked up)" in text and "public.contact_company row" in text


def test_the_second_sides_copy_fills_a_missing_value_and_never_overwrites_one(config: Config) -> None:
    """A copied row marked insert-only in the fold's column (sync/driver.py: the second side of a two-way fold):
    a child row is made where there is none, a NULL column set; an existing value stays."""
    from dataclasses import replace
    mset = load(config, MAPS)
    target = FakeTarget()
    fa, _ = _applier(target, {("customers", 7): "c-7", ("customers", 8): "c-8"})
    target.rows[ADDRESS] = [{"id": "u1", "owner_id": "c-7", "kind": "email", "value": "first@crm"}]
    for cust_no, email in ((7, "second@erp"), (8, "only@erp")):
        change = RowChange(CUSTOMERS, Op.INSERT, None, {"cust_no": cust_no, "name": "n", "email": email})
        lc = _one([o for o in route(mset, "erp", change) if isinstance(o, LinkedChange) and o.flow.fold is not None])
        fa.apply(replace(lc, insert_only=frozenset({"value"})))
    assert sorted((r["owner_id"], r["value"]) for r in target.rows[ADDRESS]) == [("c-7", "first@crm"),
                                                                               ("c-8", "only@erp")]
    # into the parent's column: only a NULL one is written
    target.rows[CUSTOMERS] = [{"cust_no": 7, "email": "first@erp"}, {"cust_no": 8, "email": None}]
    fa, _ = _applier(target, {("customers", "c-7"): 7, ("customers", "c-8"): 8}, siblings=[])
    for owner, value in (("c-7", "second@crm"), ("c-8", "only@crm")):
        row = {"id": f"u-{owner}", "owner_id": owner, "kind": "email", "value": value}
        fa.apply(replace(_one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row))),
                         insert_only=frozenset({"email"})))
    assert target.rows[CUSTOMERS] == [{"cust_no": 7, "email": "first@erp"}, {"cust_no": 8, "email": "only@crm"}]


def test_a_parent_row_missing_from_an_optional_table_is_made_only_when_missing(config: Config) -> None:
    """`optional: true` on the parent mapping's endpoint: a parent row missing there is created (`make_parent`)
    before the column is written -- when the link finds no row, or names one the update does not find -- and
    only then: a parent row that is there costs no call. Without `optional` nothing is made (the change parks)."""
    maps = MAPS.replace("erp: {table: customers, key: [cust_no]}\n    link:",
                        "erp: {table: customers, key: [cust_no], optional: true}\n    link:")
    mset = load(config, maps)
    target = FakeTarget()
    pairs: dict[Any, Any] = {("customers", "c-7"): 7}
    made: list[Any] = []

    def make_parent(flow: Any, parent: Any) -> bool:
        made.append((flow.mapping, parent))
        pairs[("customers", parent)] = int(parent[2:])
        target.rows.setdefault(CUSTOMERS, []).append({"cust_no": int(parent[2:]), "email": None})
        return True
    parked: list[Ref] = []
    fa = FoldApplier(target, "x", lambda ref: pairs.get((ref.mapping, ref.value)),  # type: ignore[arg-type]
                     lambda lc, ref: parked.append(ref), None, None, mset, make_parent=make_parent)

    def insert(key: str, owner: str, value: str) -> None:
        row = {"id": key, "owner_id": owner, "kind": "email", "value": value}
        fa.apply(_one(route(mset, "crm", RowChange(ADDRESS, Op.INSERT, None, row))))
    target.rows[CUSTOMERS] = [{"cust_no": 7, "email": None}]
    insert("u1", "c-7", "a@x.de")  # the row is there: no call
    assert made == [] and target.rows[CUSTOMERS] == [{"cust_no": 7, "email": "a@x.de"}]
    target.rows[CUSTOMERS] = []  # the pair names a row the target's application deleted
    insert("u1", "c-7", "b@x.de")
    assert made == [("customer_email", "c-7")] and target.rows[CUSTOMERS] == [{"cust_no": 7, "email": "b@x.de"}]
    insert("u8", "c-8", "c@x.de")  # no counterpart at all
    assert made[1:] == [("customer_email", "c-8")] and target.rows[CUSTOMERS][1] == {"cust_no": 8, "email": "c@x.de"}
    assert parked == []
    # not optional: nothing is made, the change parks
    fa = FoldApplier(target, "x", lambda ref: None,  # type: ignore[arg-type]
                     lambda lc, ref: parked.append(ref), None, None, load(config, MAPS), make_parent=make_parent)
    fa.apply(_one(route(load(config, MAPS), "crm", RowChange(ADDRESS, Op.INSERT, None,
                                                             {"id": "u9", "owner_id": "c-9", "kind": "email",
                                                              "value": "d@x.de"}))))
    assert parked == [Ref("customers", "c-9")] and len(made) == 2
