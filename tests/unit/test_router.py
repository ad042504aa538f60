"""mapping/router: `route` turns a source change into a typed list of target operations (`Routed`):
TargetChanges the applier batches, LinkedChanges the Linker applies row by row."""
from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from replicator.changes import Op, RowChange, TableRef, TargetChange
from replicator.config import Config
from replicator.mapping.model import MappingSet
from replicator.mapping.router import LinkedChange, Ref, Routed, route
from tests.unit.mapsets import load, make_config

CUSTOMER = TableRef("public", "customer")
ORDERS = TableRef("public", "orders")
CONTACT = TableRef("public", "contact")

PLAIN = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
"""

YAML = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
  orders:
    direction: crm_to_erp
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields:
      id: ~
      customer_id: {references: customers}
  contacts:
    direction: crm_to_erp
    crm: {table: contact, key: [id]}
    erp: {table: contacts, key: [contact_no]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    return make_config(tmp_path)


@pytest.fixture
def plain(config: Config) -> MappingSet:
    return load(config, PLAIN)


@pytest.fixture
def mset(config: Config) -> MappingSet:
    return load(config, YAML)


def test_routed_is_the_union_of_the_two_kinds() -> None:
    assert set(get_args(Routed)) == {TargetChange, LinkedChange}


def test_a_plain_flow_gives_target_changes(plain: MappingSet) -> None:
    (out,) = route(plain, "crm", RowChange(CUSTOMER, Op.INSERT, None, {"id": 1, "name": "Ann"}))
    assert isinstance(out, TargetChange)
    assert (str(out.table), out.op, out.key_columns, out.key) == ("erpdb.customers", Op.INSERT, ("cid",), (1,))
    assert dict(out.values) == {"cid": 1, "customer_name": "Ann"}


def test_a_key_change_is_a_delete_of_the_old_row_and_an_upsert_of_the_new(plain: MappingSet) -> None:
    out = route(plain, "crm", RowChange(CUSTOMER, Op.UPDATE, {"id": 1, "name": "Ann"}, {"id": 2, "name": "Ann"}))
    assert [(o.op, o.key) for o in out if isinstance(o, TargetChange)] == [(Op.DELETE, (1,)), (Op.UPDATE, (2,))]


def test_references_links_and_referenced_mappings_give_linked_changes(mset: MappingSet) -> None:
    (customer,) = route(mset, "crm", RowChange(CUSTOMER, Op.INSERT, None, {"id": 1, "name": "Ann"}))
    assert isinstance(customer, LinkedChange)  # referenced by orders (Flow.referenced): the row-by-row path
    (order,) = route(mset, "crm", RowChange(ORDERS, Op.INSERT, None, {"id": 7, "customer_id": 1}))
    assert isinstance(order, LinkedChange)
    assert order.source_key == (7,) and order.values["customer_id"] == Ref("customers", 1)
    (contact,) = route(mset, "crm", RowChange(CONTACT, Op.INSERT, None, {"id": 3, "email": "a@b"}))
    assert isinstance(contact, LinkedChange) and contact.op is Op.INSERT


def test_a_table_no_flow_reads_routes_to_nothing(mset: MappingSet) -> None:
    assert route(mset, "crm", RowChange(TableRef("public", "elsewhere"), Op.INSERT, None, {"id": 1})) == []
    assert route(mset, "erp", RowChange(TableRef("erpdb", "customers"), Op.INSERT, None, {"cid": 1})) == []


SLICED_TWO_WAY = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid], slice: {role: customer}}
    fields:
      id: {erp: cid}
      name: {erp: customer_name}
  linked:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contacts, key: [contact_no], slice: {role: contact}}
    link: {crosswalk: true}
    fields:
      email: ~
"""


def test_a_row_entering_a_two_way_slice_is_written_whole(config: Config) -> None:
    """iDempiere: a vendor becomes a customer (`iscustomer` N -> Y moves it into the slice). A two-way flow
    wrote only the fields the update changed -- none -- so the counterpart was never made and nothing said so
    (docs/walkthrough-suitecrm-idempiere.md)."""
    mset = load(config, SLICED_TWO_WAY)
    erp = TableRef("erpdb", "customers")
    before = {"cid": 120, "customer_name": "Seed Farm", "role": "vendor"}
    (entered,) = route(mset, "erp", RowChange(erp, Op.UPDATE, before, {**before, "role": "customer"}))
    assert isinstance(entered, TargetChange)
    assert (entered.op, entered.key, entered.values, entered.expect) == (
        Op.INSERT, (120,), {"id": 120, "name": "Seed Farm"}, {})
    # inside before and after: only what changed, as before
    inside = {**before, "role": "customer"}
    assert route(mset, "erp", RowChange(erp, Op.UPDATE, inside, {**inside, "role": "customer"})) == []
    (edit,) = route(mset, "erp", RowChange(erp, Op.UPDATE, inside, {**inside, "customer_name": "Seed Farm Inc."}))
    assert isinstance(edit, TargetChange) and edit.op is Op.UPDATE and edit.values == {"id": 120,
                                                                                       "name": "Seed Farm Inc."}
    # an old row without the slice's column (a key-only replica identity) tells nothing: an update
    (keyonly,) = route(mset, "erp", RowChange(erp, Op.UPDATE, {"cid": 120}, {**inside, "customer_name": "X"}))
    assert isinstance(keyonly, TargetChange) and keyonly.op is Op.UPDATE
    # a linked flow's row entering its slice: an insert, which creates or finds the counterpart
    contacts = TableRef("erpdb", "contacts")
    old = {"contact_no": 5, "email": "a@b", "role": "lead"}
    (linked,) = route(mset, "erp", RowChange(contacts, Op.UPDATE, old, {**old, "role": "contact"}))
    assert isinstance(linked, LinkedChange) and linked.op is Op.INSERT and linked.values == {"email": "a@b"}


OPTIONAL = """\
mappings:
  custom:
    direction: {both}
    crm: {table: customer_cstm, key: [id_c], optional: true}
    erp: {table: customers, key: [cid]}
    fields:
      id_c: {erp: cid}
      code_c: {erp: code}
"""


@pytest.mark.parametrize("direction", ["both", "erp_to_crm"])
def test_an_optional_target_gets_no_row_from_a_change_whose_fields_are_all_null(config: Config,
                                                                                direction: str) -> None:
    """`optional: true`: a missing row is one whose fields are all NULL. The stream creates none, as the
    initial sync does not (it writes into a row that exists); a field set creates the row."""
    mset = load(config, OPTIONAL.replace("{both}", direction))
    erp = TableRef("erpdb", "customers")
    empty, filled = {"cid": 1, "code": None}, {"cid": 1, "code": "A-1"}
    (insert,) = route(mset, "erp", RowChange(erp, Op.INSERT, None, empty))
    assert insert.op is Op.INSERT and insert.must_exist
    (insert,) = route(mset, "erp", RowChange(erp, Op.INSERT, None, filled))
    assert not insert.must_exist
    (update,) = route(mset, "erp", RowChange(erp, Op.UPDATE, empty, filled))
    assert update.op is Op.UPDATE and not update.must_exist and update.values["code_c"] == "A-1"
    # a field set back to NULL: a two-way update writes the changed field and leaves the missing row to the
    # conflict check (which creates nothing all NULL); a one-way update writes the whole row into one that exists
    (unset,) = route(mset, "erp", RowChange(erp, Op.UPDATE, filled, empty))
    assert unset.must_exist is (direction != "both")
    assert route(mset, "erp", RowChange(erp, Op.DELETE, filled, None))[0].must_exist is False
