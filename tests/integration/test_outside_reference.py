"""Rows keyed by a record outside the referenced mapping (mapping/scope.py), on real servers: the first copy and
the stream skip them (counted, not parked), a record that does not exist yet still parks, a record entering the
mapping brings its second table's row, one leaving takes it along by that mapping's delete, and a row that only
points at a record (a note's account) still parks until the record enters."""
from __future__ import annotations

from replicator.changes import Op, RowChange, TableRef
from replicator.codec import dumps_change, dumps_key
from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE account (id int PRIMARY KEY, kind text NOT NULL, deleted boolean NOT NULL DEFAULT false, name text);
CREATE TABLE account_ext (id int PRIMARY KEY, vat text);
CREATE TABLE note (id int PRIMARY KEY, account_id int NOT NULL, body text)
"""
MY = """
CREATE TABLE customer (rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40));
CREATE TABLE customer_ext (rowid INT NOT NULL PRIMARY KEY, vat VARCHAR(20));
CREATE TABLE customer_note (rowid INT NOT NULL PRIMARY KEY, customer INT NOT NULL, body VARCHAR(40))
"""
MAPPINGS = """
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: account, key: [id], slice: {kind: customer}}
    erp: {table: customer, key: [rowid]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields:
      name: {lossy: allow}
  customer_ext:
    direction: crm_to_erp
    crm: {table: account_ext, key: [id]}
    erp: {table: customer_ext, key: [rowid]}
    fields:
      id: {erp: rowid, references: customers}
      vat: {lossy: allow}
  notes:
    direction: crm_to_erp
    crm: {table: note, key: [id]}
    erp: {table: customer_note, key: [rowid]}
    fields:
      id: {erp: rowid}
      account_id: {erp: customer, references: customers}
      body: {lossy: allow}
"""


def ext(pair: Pair) -> list[tuple]:
    return [tuple(r) for r in pair.my_query("SELECT c.name, e.vat FROM customer_ext e JOIN customer c ON c.rowid = "
                                            "e.rowid ORDER BY c.name")]


def test_rows_of_records_outside_the_referenced_mapping_are_not_parked(make_pair):
    pair = make_pair(PG, MY, MAPPINGS)
    pair.pg_query("INSERT INTO account (id, kind, deleted, name) VALUES (1, 'customer', false, 'Acme'), "
                  "(2, 'vendor', false, 'Paper'), (3, 'customer', true, 'Binned')")
    pair.pg_query("INSERT INTO account_ext (id, vat) VALUES (1, 'V1'), (2, 'V2'), (3, 'V3')")
    pair.pg_query("INSERT INTO note (id, account_id, body) VALUES (1, 2, 'call Paper')")

    # the first copy: the vendor's and the binned record's second-table rows are not the mapping's; the vendor's
    # note points at a record that may become a customer: it waits
    out = pair.cli("sync").stdout
    assert "notes crm_to_erp  1 waiting for customers" in out, out
    assert "customer_ext" not in out.split("still parked", 1)[1], out
    assert ext(pair) == [("Acme", "V1")]
    # explain says why, as the stream decides it
    out = pair.cli("explain", "--mapping", "customer_ext", "--side", "crm", "--key", "3").stdout
    assert "exists outside the slice or filter of mapping customers" in out and "would be parked" not in out, out
    out = pair.cli("explain", "--mapping", "notes", "--side", "crm", "--key", "1").stdout
    assert "would be parked waiting for customers 2" in out, out

    # a change parked for good by an earlier version (the binned record's row): dropped when the stream starts
    legacy = RowChange(TableRef("public", "account_ext"), Op.UPDATE, {"id": 3, "vat": "V3"}, {"id": 3, "vat": "V3x"})
    pair.my_query(f"INSERT INTO `{pair.state_schema}`.parked (stream, waiting_mapping, waiting_key, mapping, `change`) "
                  f"VALUES ('crm_to_erp', 'customers', %s, 'customer_ext', %s)", (dumps_key((3,)), dumps_change(legacy)))

    pair.start()
    wait_until(lambda: "dropped a parked update change of customer_ext row (3,)" in pair.log(), 30,
               "the change parked before dropped at the start")
    assert pair.my_query(f"SELECT mapping FROM `{pair.state_schema}`.parked") == [("notes",)]
    # the stream: an edit of a row outside is counted, not parked
    pair.pg_query("UPDATE account_ext SET vat = 'V3b' WHERE id = 3")
    wait_until(lambda: pair.metric("replicator_rows_outside_total", direction="crm_to_erp", mapping="customer_ext",
                                   outside_of="customers") >= 1, 30, "the binned record's row counted outside")
    assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 1  # the note only

    # a record that does not exist yet: its row parks, and follows it when it arrives
    pair.pg_query("INSERT INTO account_ext (id, vat) VALUES (4, 'V4')")
    wait_until(lambda: pair.metric("replicator_parked_rows", direction="crm_to_erp") == 2, 30, "the row parked")
    pair.pg_query("INSERT INTO account (id, kind, name) VALUES (4, 'customer', 'Late')")
    wait_until(lambda: ext(pair) == [("Acme", "V1"), ("Late", "V4")], 30, "the parked row after its record")

    # the vendor becomes a customer: its row (skipped) is read and written, its note (parked) replayed
    pair.pg_query("UPDATE account SET kind = 'customer' WHERE id = 2")
    wait_until(lambda: ext(pair) == [("Acme", "V1"), ("Late", "V4"), ("Paper", "V2")], 30, "the vendor's row")
    wait_until(lambda: pair.my_query("SELECT n.body, c.name FROM customer_note n JOIN customer c ON c.rowid = "
                                     "n.customer") == [("call Paper", "Paper")], 30, "the note replayed")
    # Acme into the bin: the customer goes (leave defaults to delete), and its row with it (customer_ext's delete)
    pair.pg_query("UPDATE account SET deleted = true WHERE id = 1")
    wait_until(lambda: ext(pair) == [("Late", "V4"), ("Paper", "V2")], 30, "Acme's row gone with it")
    assert pair.my_query("SELECT count(*) FROM customer_ext") == [(2,)]
    assert pair.metric("replicator_rows_left_total", mapping="customer_ext", action="propagate") == 1
    assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 0
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
