"""mapping/parking.renamed_reference: a parked change of a renamed record's child names the new key."""
from __future__ import annotations

from replicator.changes import Op, RowChange, TableRef
from replicator.config import Config
from replicator.mapping.parking import renamed_reference
from tests.unit.mapsets import config, load  # noqa: F401 (the fixture)

MAPPINGS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contacts, key: [contact_no]}
    link: {crosswalk: true}
    fields:
      customer_id: {erp: cust_no, references: customers}
      phone: ~
"""
CONTACTS = TableRef("erpdb", "contacts")


def test_only_the_column_that_names_the_renamed_record_is_rewritten(config: Config) -> None:  # noqa: F811
    mset = load(config, MAPPINGS)
    # the contact's own key and its phone hold the old key's value too: they are not references to it
    change = RowChange(CONTACTS, Op.INSERT, None, {"contact_no": 5000, "cust_no": 5000, "phone": 5000})
    moved = renamed_reference(mset, "erp", "contacts", change, "customers", 5000, 7100)
    assert moved.after == {"contact_no": 5000, "cust_no": 7100, "phone": 5000}
    update = RowChange(CONTACTS, Op.UPDATE, {"contact_no": 1, "cust_no": 5000, "phone": "a"},
                       {"contact_no": 1, "cust_no": 5000, "phone": "b"})
    moved = renamed_reference(mset, "erp", "contacts", update, "customers", 5000, 7100)
    assert moved.after is not None and moved.after["cust_no"] == 7100 and moved.after["phone"] == "b"
    # typed: a text "5000" is another key than the number 5000 (the crosswalk holds typed keys)
    assert renamed_reference(mset, "erp", "contacts", change, "customers", "5000", "7100") == change


def test_a_change_that_names_another_record_is_left_as_it_is(config: Config) -> None:  # noqa: F811
    """(Its replay parks it under the key it names, as before.)"""
    mset = load(config, MAPPINGS)
    other = RowChange(CONTACTS, Op.INSERT, None, {"contact_no": 5000, "cust_no": 4000, "phone": "x"})
    assert renamed_reference(mset, "erp", "contacts", other, "customers", 5000, 7100) == other
