"""A fold's value map on real servers (docs/mappings.md, "Child rows folded into columns", `map:`): a Krayin-shaped
EAV table on MariaDB (a boolean attribute's TINYINT(1) `boolean_value`) <-> an OFBiz-shaped CHAR(1) `taxable` flag
('Y'/'N') on PostgreSQL. The first copy both ways, verify, the stream both ways with no echo, and a value the map
does not list stopping the direction with table, key and column named."""
from __future__ import annotations

import time

from tests.integration.harness import wait_until, write_mappings

PRODUCT_PG = """
CREATE TABLE product (product_id varchar(20) PRIMARY KEY, product_name varchar(100), taxable char(1))"""
PRODUCTS_MY = """
CREATE TABLE products (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(255) NOT NULL,
                       name VARCHAR(100) NULL, UNIQUE KEY products_sku_unique (sku));
CREATE TABLE attribute_values (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entity_type VARCHAR(255) NOT NULL DEFAULT 'leads',
    boolean_value TINYINT(1) NULL,
    entity_id INT UNSIGNED NOT NULL,
    attribute_id INT UNSIGNED NOT NULL,
    UNIQUE KEY entity_attribute (entity_type, entity_id, attribute_id)
)"""
MAPPINGS = """
mappings:
  products:
    direction: both
    crm: {table: product, key: [product_id], generate: {product_id: {template: "{sku}"}}}
    erp: {table: products, key: [id]}
    link: {crosswalk: true, natural: [sku]}
    fields:
      sku: {crm: product_id, insert_only: true, lossy: allow}
      name: {crm: product_name, lossy: allow}
  product_taxable:                    # the EAV row of attribute 21 <-> the CHAR(1) flag
    direction: both
    erp: {table: attribute_values, key: [id], slice: {entity_type: products, attribute_id: 21},
          generate: {id: default}}
    crm: {table: product, key: [product_id]}
    fold: {parent: products, child: erp, by: entity_id, value: boolean_value, into: taxable,
           map: [{erp: 1, crm: Y}, {erp: 0, crm: N}]}
"""


def _flags(pair):
    return pair.my_query("SELECT p.sku, a.boolean_value FROM products p JOIN attribute_values a ON a.entity_id = p.id "
                         "AND a.entity_type = 'products' AND a.attribute_id = 21 ORDER BY p.sku")


def test_a_boolean_attribute_is_a_y_n_flag_both_ways(make_pair):
    pair = make_pair(PRODUCT_PG, PRODUCTS_MY, MAPPINGS)
    check = pair.cli("check")
    assert "fold into crm:public.product.taxable" in check.stdout or "fold into public.product.taxable" \
        in check.stdout, check.stdout
    assert ", 0 failed" in check.stdout, check.stdout
    pair.pg_query("INSERT INTO product VALUES ('WG-1', 'Widget', 'Y'), ('WG-2', 'Gadget', 'N'), ('WG-3', 'Gizmo', NULL)")
    pair.my_query("INSERT INTO products (id, sku, name) VALUES (1, 'RS-1', 'Skates')")
    pair.my_query("INSERT INTO attribute_values (entity_type, boolean_value, entity_id, attribute_id) VALUES "
                  "('products', 0, 1, 21)")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # OFBiz's flags as Krayin's 1/0 (no row for NULL), Krayin's 0 as 'N'
    assert _flags(pair) == [("RS-1", 0), ("WG-1", 1), ("WG-2", 0)]
    assert pair.pg_query("SELECT product_id, taxable FROM product ORDER BY 1") == [
        ("RS-1", "N"), ("WG-1", "Y"), ("WG-2", "N"), ("WG-3", None)]
    result = pair.cli("verify", check=False)
    assert result.returncode == 0 and "the sides agree" in result.stdout, result.stdout + result.stderr

    pair.start()
    applied = pair.metric("replicator_rows_applied_total", direction="erp_to_crm")
    pair.pg_query("UPDATE product SET taxable = 'N' WHERE product_id = 'WG-1'")
    pair.pg_query("UPDATE product SET taxable = 'Y' WHERE product_id = 'WG-3'")
    wait_until(lambda: _flags(pair) == [("RS-1", 0), ("WG-1", 0), ("WG-2", 0), ("WG-3", 1)], 30,
               "OFBiz's flags as Krayin attribute rows (one updated, one created)")
    pair.my_query("UPDATE attribute_values SET boolean_value = 1 WHERE entity_id = 1 AND attribute_id = 21")
    wait_until(lambda: pair.pg_query("SELECT taxable FROM product WHERE product_id = 'RS-1'") == [("Y",)], 30,
               "Krayin's 1 as 'Y'")
    time.sleep(2)  # what crm_to_erp wrote does not come back
    assert pair.metric("replicator_rows_applied_total", direction="erp_to_crm") == applied + 1
    assert pair.pg_query("SELECT product_id, taxable FROM product ORDER BY 1") == [
        ("RS-1", "Y"), ("WG-1", "N"), ("WG-2", "N"), ("WG-3", "Y")]

    # a value the map does not list: the direction stops naming table, key and column; nothing is written
    pair.pg_query("UPDATE product SET taxable = 'X' WHERE product_id = 'WG-2'")
    assert pair.wait_exit(60) != 0
    log = pair.log()
    assert "table public.product, key ('WG-2',), column taxable" in log and "'X'" in log \
        and "not in the map" in log, log[-3000:]
    assert "Traceback" not in log
    assert _flags(pair) == [("RS-1", 1), ("WG-1", 0), ("WG-2", 0), ("WG-3", 1)]
    # the replay reads the same event: the mapping queues it instead (on_error: quarantine); the operator drops the
    # queued change and corrects the row, whose change streams on
    write_mappings(pair, MAPPINGS.replace("  product_taxable:                    # the EAV row of attribute 21 <-> "
                                          "the CHAR(1) flag\n", "  product_taxable:\n    on_error: quarantine\n"))
    pair.start()
    queued = lambda: pair.my_query(f"SELECT mapping, error FROM `{pair.state_schema}`.dead_letter")  # noqa: E731
    wait_until(lambda: len(queued()) == 1, 30, "the unmapped flag queued")
    (mapping, error), = queued()
    assert mapping == "product_taxable" and "column taxable" in error and "'X'" in error, error
    skipped = pair.cli("dlq", "skip", "--key", "WG-2", "--mapping", "product_taxable", check=False)
    assert skipped.returncode == 0 and queued() == [], skipped.stdout + skipped.stderr
    pair.pg_query("UPDATE product SET taxable = 'Y' WHERE product_id = 'WG-2'")
    wait_until(lambda: _flags(pair) == [("RS-1", 1), ("WG-1", 0), ("WG-2", 1), ("WG-3", 1)], 30, "the corrected flag")
    result = pair.cli("verify", check=False)
    assert result.returncode == 0 and "product_taxable: 8 rows checked, 0 differing" in result.stdout, result.stdout
    assert pair.stop() == 0
