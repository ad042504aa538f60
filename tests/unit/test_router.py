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
from tests.unit.test_mapping import load, make_config

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
