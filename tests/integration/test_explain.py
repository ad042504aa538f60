"""`replicator explain` against real servers: rows read by key (read-only), value maps, owned fields,
filters, gates, references, and counterparts found by key, crosswalk pair (in either database) or
natural key on the other side. Nothing is ever written: every test compares both databases before
and after. The daemon is never started."""
from __future__ import annotations

import json

import pytest

from replicator.codec import dumps_key
from tests.integration.harness import Pair

PG_SCHEMA = """
CREATE TABLE customer (id serial PRIMARY KEY, vat_id text, name text NOT NULL, status text NOT NULL,
                       credit_limit numeric(12,2), deleted boolean NOT NULL DEFAULT false);
CREATE TABLE quote (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, total numeric(12,2));
ALTER TABLE quote REPLICA IDENTITY FULL;
CREATE TABLE product (sku text PRIMARY KEY, price numeric(10,2))
"""
MY_SCHEMA = """
CREATE TABLE customers (cust_no int AUTO_INCREMENT PRIMARY KEY, vat_id varchar(32), customer_name varchar(200) NOT NULL,
                        status_code char(1) NOT NULL, credit_limit decimal(12,2), source varchar(10));
CREATE TABLE sales_orders (id int PRIMARY KEY, cust_no int NOT NULL, total decimal(12,2));
CREATE TABLE items (sku varchar(32) PRIMARY KEY, list_price decimal(10,2))
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {natural: [vat_id], crosswalk: true}
    filter:
      crm_to_erp: {deleted: {eq: false}}
    fields:
      vat_id: {transform: {crm_to_erp: [trim, upper]}}
      name: {erp: customer_name, transform: {crm_to_erp: [trim]}}
      status: {erp: status_code, map: [{crm: active, erp: A}, {crm: blocked, erp: B}]}
      credit_limit: {owner: erp}
      origin: {crm: ~, erp: source, constant: crm}
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [id]}
    gate:
      crm_to_erp: {column: status, becomes: confirmed}
    fields:
      id: ~
      customer_id: {erp: cust_no, references: customers}
      total: ~
  products:
    direction: both
    crm: {table: product, key: [sku]}
    erp: {table: items, key: [sku]}
    fields:
      sku: ~
      price: {erp: list_price}
"""


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)


def explain(pair: Pair, *args: str) -> dict:
    result = pair.cli("explain", *args, "--json")
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def snapshot(pair: Pair) -> tuple:
    """Everything explain could possibly write, on both sides."""
    s = f"`{pair.state_schema}`"
    return (
        pair.pg_query("SELECT * FROM customer ORDER BY id"),
        pair.pg_query("SELECT * FROM quote ORDER BY id"),
        pair.pg_query("SELECT * FROM product ORDER BY sku"),
        pair.pg_query("SELECT mapping, source_side, source_key, target_key FROM replicator.crosswalk ORDER BY 1, 2, 3"),
        pair.pg_query("SELECT count(*) FROM replicator.parked"),
        pair.pg_query("SELECT stream, position, txn_seq FROM replicator.checkpoint ORDER BY 1"),
        [tuple(r) for r in pair.my_query("SELECT * FROM customers ORDER BY cust_no")],
        [tuple(r) for r in pair.my_query("SELECT * FROM sales_orders ORDER BY id")],
        [tuple(r) for r in pair.my_query("SELECT * FROM items ORDER BY sku")],
        [tuple(r) for r in pair.my_query(f"SELECT mapping, source_side, source_key, target_key FROM {s}.crosswalk "
                                         "ORDER BY 1, 2, 3")],
        pair.my_query(f"SELECT count(*) FROM {s}.parked"),
        [tuple(r) for r in pair.my_query(f"SELECT stream, position, txn_seq FROM {s}.checkpoint ORDER BY 1")],
    )


def column(result: dict, name: str) -> dict:
    return next(c for c in result["columns"] if c["column"] == name)


def pair_in_erp(pair: Pair, crm_id: int, cust_no: int) -> None:
    """A crosswalk pair the crm_to_erp direction created: recorded in the ERP's crosswalk."""
    pair.my_query(f"INSERT INTO `{pair.state_schema}`.crosswalk (mapping, source_side, source_key, target_key) "
                  "VALUES ('customers', 'crm', %s, %s)", (dumps_key((crm_id,)), dumps_key((cust_no,))))


def pair_in_crm(pair: Pair, cust_no: int, crm_id: int) -> None:
    """A pair the erp_to_crm direction created: recorded in the CRM's crosswalk."""
    pair.pg_query("INSERT INTO replicator.crosswalk (mapping, source_side, source_key, target_key) "
                  "VALUES ('customers', 'erp', %s, %s)", (dumps_key((cust_no,)), dumps_key((crm_id,))))


def test_value_map_owned_field_and_natural_key_match_in_erp(pair: Pair) -> None:
    pair.pg_query("INSERT INTO customer (id, vat_id, name, status, credit_limit) "
                  "VALUES (1, ' de1 ', ' Ann ', 'active', 5)")
    pair.my_query("INSERT INTO customers VALUES (7, 'DE1', 'Ann GmbH', 'A', 100, 'crm')")
    before = snapshot(pair)

    r = explain(pair, "--mapping", "customers", "--side", "crm", "--key", "1")
    assert r["source"]["from"] == "read from crm by id = 1 (read-only)"
    assert r["row"] == {"id": 1, "vat_id": " de1 ", "name": " Ann ", "status": "active", "credit_limit": "5.00",
                        "deleted": False}
    assert column(r, "status_code")["value"] == "A"
    assert 'value map entry 1: crm "active" -> erp "A"' in column(r, "status_code")["rules"]
    assert column(r, "vat_id")["value"] == "DE1"
    assert column(r, "customer_name")["value"] == "Ann"
    assert "crm.name -> erp.customer_name (renamed)" in column(r, "customer_name")["rules"]
    assert column(r, "source")["value"] == "crm"
    assert [n["field"] for n in r["not_sent"]] == ["credit_limit"]
    assert "owned by erp" in r["not_sent"][0]["reason"]
    assert r["filter"]["passes"] is True
    assert r["gate"] is None
    key = r["key"]
    assert key["kind"] == "crosswalk" and key["source_key"] == {"id": 1}
    assert [(s["by"], s["found"]) for s in key["lookups"]] == [("crosswalk", False), ("natural", True)]
    assert key["counterpart"] == {"by": "natural", "target_key": {"cust_no": 7}}
    assert r["outcome"]["action"] == "update"
    assert "cust_no = 7" in r["outcome"]["text"] and "record the crosswalk pair" in r["outcome"]["text"]

    text = pair.cli("explain", "--mapping", "customers", "--side", "crm", "--key", "1").stdout
    assert "status_code" in text and 'value map entry 1: crm "active" -> erp "A"' in text
    assert "credit_limit  owned by erp" in text
    assert 'by natural: natural key vat_id = "DE1" matches erp' in text
    assert "result: would update the erp" in text
    assert snapshot(pair) == before


def test_natural_key_match_from_the_erp_side(pair: Pair) -> None:
    pair.pg_query("INSERT INTO customer (id, vat_id, name, status) VALUES (3, 'DE2', 'Bob', 'active')")
    pair.my_query("INSERT INTO customers VALUES (8, 'DE2', 'Bob', 'B', 250, NULL)")
    before = snapshot(pair)
    r = explain(pair, "--mapping", "customers", "--side", "erp", "--key", "8")
    assert r["direction"] == "erp_to_crm"
    assert column(r, "status")["value"] == "blocked"
    assert 'value map entry 2: erp "B" -> crm "blocked"' in column(r, "status")["rules"]
    assert column(r, "credit_limit")["value"] == "250.00"  # owned by erp: flows from here
    assert {n["field"]: n["reason"] for n in r["not_sent"]} == {"origin": "no column on crm (crm: ~)"}
    assert r["filter"] is None
    assert r["key"]["counterpart"] == {"by": "natural", "target_key": {"id": 3}}
    assert r["outcome"]["action"] == "update"
    assert snapshot(pair) == before


def test_filter_failing(pair: Pair) -> None:
    pair.pg_query("INSERT INTO customer (id, vat_id, name, status, deleted) VALUES (2, 'DE9', 'Old', 'active', true)")
    before = snapshot(pair)
    r = explain(pair, "--mapping", "customers", "--side", "crm", "--key", "2")
    assert r["filter"] == {"passes": False, "conditions": [
        {"column": "deleted", "op": "eq", "arg": False, "present": True, "value": True, "holds": False}]}
    assert r["outcome"] == {"action": "filtered", "text": "nothing sent: the row does not pass the filter"}
    text = pair.cli("explain", "--mapping", "customers", "--side", "crm", "--key", "2").stdout
    assert "filter: fails: deleted is true, the filter wants eq false" in text
    assert snapshot(pair) == before


def test_gate_closed_and_open_references_and_crosswalk_pairs_in_both_databases(pair: Pair) -> None:
    pair.pg_query("INSERT INTO customer (id, vat_id, name, status) VALUES (1, 'DE1', 'Ann', 'active'), "
                  "(2, 'DE2', 'Bob', 'active'), (4, 'DE4', 'Cy', 'active')")
    pair.my_query("INSERT INTO customers VALUES (7, 'DE1', 'Ann', 'A', NULL, 'crm'), (8, 'DE4', 'Cy', 'A', NULL, NULL)")
    pair_in_erp(pair, 1, 7)  # crm 1 <-> erp 7, created crm_to_erp
    pair_in_crm(pair, 8, 4)  # erp 8 <-> crm 4, created erp_to_crm
    pair.pg_query("INSERT INTO quote VALUES (10, 1, 'draft', 99.50), (11, 1, 'confirmed', 10), "
                  "(12, 2, 'confirmed', 10), (13, 1, 'draft', 5), (14, 4, 'confirmed', 1)")
    pair.my_query("INSERT INTO sales_orders VALUES (13, 7, 1)")
    before = snapshot(pair)

    closed = explain(pair, "--mapping", "quotes", "--side", "crm", "--key", "10")
    assert closed["gate"] == {"column": "status", "becomes": ["confirmed"], "present": True, "value": "draft",
                              "open": False}
    assert closed["references"][0]["found"] is True and closed["references"][0]["counterpart"] == 7
    assert closed["key"]["lookups"][0] == {"by": "key", "found": False,
                                           "text": f"erp {pair.maria.dbname}.sales_orders has no row id = 10"}
    assert closed["outcome"]["action"] == "gate_closed"
    text = pair.cli("explain", "--mapping", "quotes", "--side", "crm", "--key", "10").stdout
    assert 'gate: closed: status is "draft", not "confirmed"' in text
    assert "result: nothing sent: no counterpart exists and the gate is closed" in text

    opened = explain(pair, "--mapping", "quotes", "--side", "crm", "--key", "11")
    assert opened["gate"]["open"] is True
    assert column(opened, "cust_no")["reference"]["counterpart"] == 7
    assert opened["outcome"]["action"] == "insert"
    assert opened["outcome"]["text"] == f"would insert a new erp {pair.maria.dbname}.sales_orders row id = 11"

    parked = explain(pair, "--mapping", "quotes", "--side", "crm", "--key", "12")
    assert parked["references"][0]["found"] is False
    assert parked["outcome"]["action"] == "parked"
    assert parked["outcome"]["text"].startswith("would be parked waiting for customers 2")

    existing = explain(pair, "--mapping", "quotes", "--side", "crm", "--key", "13")  # gate closed, row exists
    assert existing["gate"]["open"] is False
    assert existing["outcome"]["action"] == "update"
    assert existing["outcome"]["text"].startswith(f"would update the erp {pair.maria.dbname}.sales_orders row id = 13")

    other_way = explain(pair, "--mapping", "quotes", "--side", "crm", "--key", "14")  # pair in crm's crosswalk
    assert other_way["references"][0]["counterpart"] == 8
    assert other_way["outcome"]["action"] == "insert"

    by_pair = explain(pair, "--mapping", "customers", "--side", "crm", "--key", "4")
    assert by_pair["key"]["counterpart"]["target_key"] == {"cust_no": 8}
    assert by_pair["key"]["counterpart"]["where"] == "crm's crosswalk replicator.crosswalk"
    erp7 = explain(pair, "--mapping", "customers", "--side", "erp", "--key", "7")
    assert erp7["key"]["counterpart"]["target_key"] == {"id": 1}
    assert erp7["key"]["counterpart"]["where"] == f"erp's crosswalk {pair.state_schema}.crosswalk"
    assert snapshot(pair) == before


def test_row_option_new_record_and_parked_children(pair: Pair) -> None:
    before = snapshot(pair)
    row = json.dumps({"id": 5, "vat_id": "de5", "name": "Dee", "status": "blocked", "credit_limit": None,
                      "deleted": False})
    r = explain(pair, "--mapping", "customers", "--side", "crm", "--row", row)
    assert r["source"]["from"] == "row given with --row"
    assert column(r, "status_code")["value"] == "B"
    assert [(s["by"], s["found"]) for s in r["key"]["lookups"]] == [("crosswalk", False), ("natural", False)]
    assert r["outcome"]["action"] == "insert"
    assert "erp generates its key (cust_no)" in r["outcome"]["text"]
    assert snapshot(pair) == before


def test_shared_key_update_or_insert(pair: Pair) -> None:
    pair.pg_query("INSERT INTO product VALUES ('A-1', 9.90), ('B-2', 1)")
    pair.my_query("INSERT INTO items VALUES ('A-1', 8)")
    before = snapshot(pair)
    a = explain(pair, "--mapping", "products", "--side", "crm", "--key", "A-1")
    assert a["key"] == {"kind": "shared", "source_columns": ["sku"], "target_key": {"sku": "A-1"}, "exists": True}
    assert a["outcome"]["action"] == "update" and column(a, "list_price")["value"] == "9.90"
    b = explain(pair, "--mapping", "products", "--side", "crm", "--key", "B-2")
    assert b["key"]["exists"] is False and b["outcome"]["action"] == "insert"
    assert snapshot(pair) == before


def test_configuration_problems_exit_78(pair: Pair) -> None:
    before = snapshot(pair)
    cases = [
        (("--mapping", "customers", "--side", "crm", "--key", "999"),
         "no row in crm public.customer with id = 999"),
        (("--mapping", "nope", "--side", "crm", "--key", "1"), "unknown mapping 'nope'"),
        (("--mapping", "customers", "--side", "sap", "--key", "1"), "unknown side 'sap'"),
        (("--mapping", "quotes", "--side", "erp", "--key", "1"), "does not flow from erp: it flows crm_to_erp"),
        (("--mapping", "customers", "--side", "crm", "--key", "abc"), "cannot read crm public.customer where id"),
        # a one-column key is the whole text (ERPNext names hold commas): the database refuses it for an integer
        (("--mapping", "customers", "--side", "crm", "--key", "1,2"), "cannot read crm public.customer where id = 1,2"),
    ]
    for args, message in cases:
        result = pair.cli("explain", *args, check=False)
        assert result.returncode == 78, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith("replicator: configuration error: ") and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert snapshot(pair) == before


def test_sessions_are_read_only(pair: Pair) -> None:
    """Belt and braces: the connections explain reads through refuse writes at the server."""
    from replicator.config import load
    from replicator.mapping.explain import ReadOnlyDb

    config = load(pair.config_path)
    before = snapshot(pair)
    for side, sql in (("crm", "INSERT INTO product VALUES ('X', 1)"), ("erp", "INSERT INTO items VALUES ('X', 1)")):
        db = ReadOnlyDb(config.side(side))
        try:
            with pytest.raises(Exception, match="read-only transaction|READ ONLY transaction"):
                db.query(sql, [])
            db.rollback()
            with pytest.raises(RuntimeError, match="never writes"):
                db.execute(sql, [])
        finally:
            db.close()
    assert snapshot(pair) == before
