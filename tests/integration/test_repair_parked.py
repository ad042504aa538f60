"""`verify --repair` and parked rows, on real servers: a row made for a record whose counterpart is gone waits for it
(it would be an orphan, or break a foreign key), and the repair that makes the record again releases it, through
the stream's own unpark path."""
from __future__ import annotations

import argparse
import io

from replicator.config import load
from replicator.mapping.model import load_mappings
from replicator.verify.command import add_arguments, command
from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE quote (id int PRIMARY KEY, customer text NOT NULL);
CREATE TABLE quote_line (id int PRIMARY KEY, quote_id int NOT NULL, qty int NOT NULL)
"""
MY = """
CREATE TABLE orders (order_no int AUTO_INCREMENT PRIMARY KEY, customer varchar(40) NOT NULL) AUTO_INCREMENT=7000;
CREATE TABLE order_lines (line_id int AUTO_INCREMENT PRIMARY KEY, order_no int NOT NULL, qty int NOT NULL,
                          FOREIGN KEY (order_no) REFERENCES orders (order_no))
"""
MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: orders, key: [order_no]}
    link: {crosswalk: true}
    fields:
      customer: {lossy: allow}
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: order_lines, key: [line_id]}
    link: {crosswalk: true}
    fields:
      quote_id: {erp: order_no, references: quotes}
      qty: ~
"""


def verify(pair: Pair, *args: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = load(pair.config_path)
    out = io.StringIO()
    code = command(parser.parse_args(list(args)), config, load_mappings(config), out)
    return code, out.getvalue()


def parked(pair: Pair) -> int:
    return int(pair.my_query(f"SELECT count(*) FROM `{pair.state_schema}`.parked")[0][0])


def test_repair_releases_the_rows_parked_behind_a_parent_it_creates(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config="sync: {on_first_run: false}\nverify: {recheck_seconds: 1}\n")
    pair.start()
    try:
        pair.pg_query("INSERT INTO quote VALUES (1, 'Ann')")
        pair.pg_query("INSERT INTO quote_line VALUES (1, 1, 5)")
        wait_until(lambda: pair.my_query("SELECT count(*) FROM order_lines") == [(1,)], 30, "copied")
        # the ERP's users delete the order (its crosswalk pair stays): a new line does not point at the deleted
        # order -- the foreign key would stop the direction -- it waits for it
        pair.my_query("DELETE FROM order_lines")
        pair.my_query("DELETE FROM orders")
        pair.pg_query("INSERT INTO quote_line VALUES (2, 1, 7)")
        wait_until(lambda: parked(pair) == 1, 30, "the line parked")
        pair.pg_query("INSERT INTO quote VALUES (2, 'Bob')")  # the direction goes on
        wait_until(lambda: pair.my_query("SELECT customer FROM orders") == [("Bob",)], 30, "the next quote")
        code, out = verify(pair, "--mapping", "quotes", "--repair")
        assert code == 0, out
        assert "inserted quotes crm_to_erp" in out, out
        assert "released 1 parked change(s) of crm_to_erp that waited for quotes" in out, out
        # the order back under its pair's key, the line that waited with it
        assert pair.my_query("SELECT o.order_no, o.customer, l.qty FROM order_lines l JOIN orders o "
                             "ON o.order_no = l.order_no") == [(7000, "Ann", 7)]
        assert parked(pair) == 0
        code, out = verify(pair, "--mapping", "quotes")
        assert code == 0, out
        assert pair.stop() == 0
        assert "Traceback" not in pair.log(), pair.log()
    finally:
        pair.stop()
