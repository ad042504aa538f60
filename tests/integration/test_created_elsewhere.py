"""A reference to a record of a mapping that only the other side creates (`created_by:`), on real servers: a row of
a record the other side made (its pair made by the other direction) is carried; one of a record made on this side,
which can never get a counterpart, is not parked for good but counted and logged, as the record's own change is;
such a row parked by an earlier version is dropped at the start."""
from __future__ import annotations

from replicator.changes import Op, RowChange, TableRef
from replicator.codec import dumps_change, dumps_key
from tests.integration.harness import wait_until

PG = """
CREATE TABLE orders (id serial PRIMARY KEY, ref text);
CREATE TABLE order_line (id int PRIMARY KEY, order_id int NOT NULL, qty int NOT NULL)
"""
MY = """
CREATE TABLE orders (order_no int AUTO_INCREMENT PRIMARY KEY, ref varchar(20)) AUTO_INCREMENT=7000;
CREATE TABLE order_lines (line_id int AUTO_INCREMENT PRIMARY KEY, order_no int NOT NULL, qty int NOT NULL)
"""
MAPPINGS = """
mappings:
  orders:
    direction: both
    created_by: erp
    crm: {table: orders, key: [id], generate: {id: default}}
    erp: {table: orders, key: [order_no]}
    link: {crosswalk: true}
    fields:
      ref: {lossy: allow}
  order_lines:
    direction: crm_to_erp
    crm: {table: order_line, key: [id]}
    erp: {table: order_lines, key: [line_id]}
    link: {crosswalk: true}
    fields:
      order_id: {erp: order_no, references: orders}
      qty: ~
"""


def test_rows_of_a_record_only_the_other_side_creates(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    # a line of a CRM-made order, parked by an earlier version: it would wait for good
    legacy = RowChange(TableRef("public", "order_line"), Op.INSERT, None, {"id": 9, "order_id": 99, "qty": 1})
    pair.my_query(f"INSERT INTO `{pair.state_schema}`.parked (stream, waiting_mapping, waiting_key, mapping, `change`) "
                  f"VALUES ('crm_to_erp', 'orders', %s, 'order_lines', %s)", (dumps_key((99,)), dumps_change(legacy)))
    pair.start()
    try:
        wait_until(lambda: "dropped a parked insert change of order_lines: it waited for orders [99]" in pair.log(),
                   30, "the legacy parked change dropped")
        assert pair.my_query(f"SELECT count(*) FROM `{pair.state_schema}`.parked") == [(0,)]
        # the ERP makes an order, the CRM gets it (its pair in the CRM's crosswalk) and adds a line: carried
        pair.my_query("INSERT INTO orders (ref) VALUES ('E-1')")
        crm_id = wait_until(lambda: pair.pg_query("SELECT id FROM orders WHERE ref = 'E-1'"), 30, "the order in the CRM")
        pair.pg_query("INSERT INTO order_line VALUES (1, %s, 5)", (crm_id[0][0],))
        wait_until(lambda: pair.my_query("SELECT order_no, qty FROM order_lines") == [(7000, 5)], 30, "the line")
        # a CRM user makes an order: only the ERP creates orders, so it never gets one; nor does its line
        pair.pg_query("INSERT INTO orders (id, ref) VALUES (500, 'C-1')")
        pair.pg_query("INSERT INTO order_line VALUES (2, 500, 7)")
        wait_until(lambda: "order_lines row (2,) not carried: its orders record (500,) was made on crm" in pair.log(),
                   30, "the line not carried")
        assert "only erp creates orders records (created_by: erp)" in pair.log()
        out = pair.cli("explain", "--mapping", "order_lines", "--side", "crm", "--key", "2").stdout
        assert "the orders record 500 was made on crm and can never get a counterpart in erp" in out, out
        assert "would be parked" not in out, out
        assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 0
        assert pair.my_query("SELECT count(*) FROM order_lines") == [(1,)]
        assert pair.stop() == 0
        assert "Traceback" not in pair.log(), pair.log()
    finally:
        pair.stop()
