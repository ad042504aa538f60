"""mapping/scope: which references name a row's own record, the mappings keyed by a record, and whether a record
read from the source is outside the referenced mapping (follows the records' keys down)."""
from __future__ import annotations

from typing import Any

from replicator.config import Config
from replicator.mapping.model import Flow
from replicator.mapping.scope import Scope, children, key_reference, record_ref, with_folds
from tests.unit.mapsets import config, load  # noqa: F401 (the fixture)

MAPPINGS = """\
mappings:
  customers:
    direction: both
    crm: {table: account, key: [id], slice: {kind: customer}}
    erp: {table: customer, key: [rowid]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields: {name: ~}
  customer_ext:
    direction: both
    crm: {table: account_ext, key: [id]}
    erp: {table: customer_ext, key: [rowid]}
    fields:
      id: {erp: rowid, references: customers}
      vat: ~
  customer_email:
    direction: both
    erp: {table: contact_row, key: [id], slice: {type: email}, generate: {id: default}}
    crm: {table: account_ext, key: [id]}
    fold: {parent: customer_ext, child: erp, by: owner, value: contact, into: email}
  notes:
    direction: crm_to_erp
    crm: {table: note, key: [id]}
    erp: {table: customer_note, key: [rowid]}
    fields:
      id: {erp: rowid}
      account_id: {erp: customer, references: customers}
"""


class _Rows(Scope):
    """A Scope over rows given by table name and key value instead of a source connection."""

    def __init__(self, mset: Any, side: str, rows: dict[tuple[str, Any], dict[str, Any]]):
        super().__init__(mset, side, None, None)
        self._reader = object()  # type: ignore[assignment]
        self.rows = rows
        self.read: list[tuple[str, Any]] = []

    def row(self, flow: Flow, value: Any) -> dict[str, Any] | None:
        self.read.append((flow.source.table.name, value))
        return self.rows.get((flow.source.table.name, value))


def _flow(mset: Any, name: str, side: str, table: str | None = None) -> Flow:
    m = mset.by_name[name]
    return next(f for f in m.flows if f.source.side == side and (table is None or f.source.table.name == table))


def test_the_records_own_row_and_a_folds_parent_are_record_references(config: Config) -> None:  # noqa: F811
    mset = load(config, MAPPINGS)
    assert key_reference(mset.by_name["customer_ext"], "crm") == "customers"
    assert key_reference(mset.by_name["customer_ext"], "erp") == "customers"
    assert key_reference(mset.by_name["notes"], "crm") is None  # its key is its own
    ext = _flow(mset, "customer_ext", "crm")
    assert record_ref(mset, ext, "crm", "customers", 7, (7,))
    assert not record_ref(mset, ext, "crm", "customers", 8, (7,))  # (another record's key: not its own)
    # a note points at its account: an association, which parks until the account enters
    assert not record_ref(mset, _flow(mset, "notes", "crm"), "crm", "customers", 7, (1,))
    email = _flow(mset, "customer_email", "erp")
    assert record_ref(mset, email, "erp", "customer_ext", 7, ("e1",))
    assert not record_ref(mset, email, "erp", "customers", 7, ("e1",))


def test_the_mappings_keyed_by_a_record_and_their_folds(config: Config) -> None:  # noqa: F811
    mset = load(config, MAPPINGS)
    (ext,) = children(mset, "customers", "crm")
    assert ext.mapping == "customer_ext"
    assert children(mset, "customer_ext", "crm") == []  # a fold is filled with its parent's row, not a child
    assert [f.mapping for f in with_folds(mset, ext)] == ["customer_ext", "customer_email"]


def test_a_record_read_outside_the_slice_or_filter_is_outside(config: Config) -> None:  # noqa: F811
    mset = load(config, MAPPINGS)
    scope = _Rows(mset, "crm", {
        ("account", 1): {"id": 1, "kind": "customer", "deleted": False, "name": "Acme"},
        ("account", 2): {"id": 2, "kind": "vendor", "deleted": False, "name": "Paper"},
        ("account", 3): {"id": 3, "kind": "customer", "deleted": True, "name": "Binned"},
        ("account_ext", 2): {"id": 2, "vat": None},
    })
    assert scope.outside("customers", 1) is None  # in the mapping: its row waits for the counterpart
    assert scope.outside("customers", 2) == "customers"  # a vendor (the slice)
    assert scope.outside("customers", 3) == "customers"  # in the bin (the filter)
    assert scope.outside("customers", 4) is None  # not there yet: it may arrive, the row parks
    # down the records' keys: a fold's parent row (customer_ext) is the record of customers
    assert scope.outside("customer_ext", 2) == "customers"
    assert scope.outside("customer_ext", 9) is None
    # the other direction has no filter on customers' crm side, only the erp side's (no slice): nothing is outside
    back = _Rows(mset, "erp", {("customer", 2): {"rowid": 2, "name": "Paper"}})
    assert back.outside("customers", 2) is None


def test_without_the_source_every_such_change_parks_as_before(config: Config) -> None:  # noqa: F811
    scope = Scope(load(config, MAPPINGS), "crm", None, None)
    assert not scope.usable and scope.outside("customers", 2) is None
