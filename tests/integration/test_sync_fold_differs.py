"""The first copy of a two-way fold whose sides hold different values (docs/operations.md, "Initial sync";
docs/mappings.md, "Child rows folded into columns"): the first side's value wins, a value only the second side
holds is carried over, both sides agree, and the daemon goes quiet -- on a daemon's first start (every mapping
copied in one session: the parent mapping's copy writes the same ERP rows the folds read) and with `replicator
sync` with and without a daemon, either side first. The e-mail fold carries text as it is, the VIP fold through
a value map; the customers mapping is the plain baseline. Before the fix, a copy of the parent mapping and its
folds in one session (a first start, `sync` of everything) left a value only the second side held uncopied for
good: the parent mapping's copy had written the row the fold's copy read, which took that echo for its own."""
from __future__ import annotations

import time

from tests.integration.harness import wait_until

PG = """
CREATE TABLE customer (id int PRIMARY KEY, name text);
CREATE TABLE address (
    id varchar(40) PRIMARY KEY,
    owner_id int NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
    kind text NOT NULL,
    value text NOT NULL
)"""
MY = """
CREATE TABLE customers (id INT NOT NULL PRIMARY KEY, name VARCHAR(100) NULL, email VARCHAR(200) NULL,
                        vip CHAR(1) NULL)"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields: {id: ~, name: ~}
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: customers, key: [id]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email, lossy: allow}
  customer_vip:
    direction: both
    crm: {table: address, key: [id], slice: {kind: vip}, generate: {id: uuid}}
    erp: {table: customers, key: [id]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: vip,
           map: [{crm: 'yes', erp: Y}, {crm: 'no', erp: N}]}
"""
# 1: both sides hold values, different ones; 2: only the CRM; 3: only the ERP; 4: the same on both
BOTH_DIFFER, CRM_ONLY, ERP_ONLY, SAME = 1, 2, 3, 4


def _existing_rows(pair):
    """Rows that exist before `setup`: the copy's business, not the stream's."""
    pair.pg_query("INSERT INTO customer VALUES (1, 'crm-1'), (2, 'crm-2'), (3, 'crm-3'), (4, 'same')")
    pair.my_query("INSERT INTO customers VALUES (1, 'erp-1', 'one@erp', 'N'), (2, 'erp-2', NULL, NULL), "
                  "(3, 'erp-3', 'three@erp', 'Y'), (4, 'same', 'four@both', 'Y')")
    pair.pg_query("INSERT INTO address VALUES ('a1', 1, 'email', 'one@crm'), ('a2', 2, 'email', 'two@crm'), "
                  "('a4', 4, 'email', 'four@both'), ('v1', 1, 'vip', 'yes'), ('v2', 2, 'vip', 'no'), "
                  "('v4', 4, 'vip', 'yes')")


def _crm(pair):
    """The CRM's customers as the ERP would hold them (the VIP row's yes/no as Y/N)."""
    rows = pair.pg_query("SELECT c.id, c.name, e.value, v.value FROM customer c "
                         "LEFT JOIN address e ON e.owner_id = c.id AND e.kind = 'email' "
                         "LEFT JOIN address v ON v.owner_id = c.id AND v.kind = 'vip' ORDER BY c.id")
    return [(i, n, e, {"yes": "Y", "no": "N", None: None}[v]) for i, n, e, v in rows]


def _erp(pair):
    return [tuple(r) for r in pair.my_query("SELECT id, name, email, vip FROM customers ORDER BY id")]


def _pair(make_pair, extra=""):
    pair = make_pair(PG, MY, MAPPINGS, extra_config=extra, setup=False)
    _existing_rows(pair)
    pair.setup()
    return pair


CRM_WINS = [(1, "crm-1", "one@crm", "Y"), (2, "crm-2", "two@crm", "N"), (3, "crm-3", "three@erp", "Y"),
            (4, "same", "four@both", "Y")]


def test_a_first_start_copies_folds_whose_sides_differ_to_the_first_sides_values(make_pair):
    pair = _pair(make_pair)
    pair.start()  # sync.on_first_run: the three mappings copied in one session, the CRM's side first
    wait_until(lambda: _crm(pair) == _erp(pair) == CRM_WINS, 30,
               "the CRM's values where both hold one, the ERP's e-mail and flag of customer 3 in the CRM")
    wait_until(lambda: pair.metric("replicator_sync_running") == 0 and pair.metric("replicator_parked_rows") == 0,
               30, "the copies done, nothing parked")
    applied = [pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")]
    time.sleep(2)  # settled: nothing goes back and forth
    assert [pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")] \
        == applied
    assert _crm(pair) == _erp(pair) == CRM_WINS
    # the stream carries the folds on from there, no echo
    pair.my_query("UPDATE customers SET email = 'three@new' WHERE id = 3")
    wait_until(lambda: _crm(pair)[2] == (3, "crm-3", "three@new", "Y"), 30, "the ERP's edit in the CRM")
    assert pair.stop() == 0


def test_sync_without_a_daemon_copies_every_mapping_in_one_session_alike(make_pair):
    # no daemon: `sync` streams in-process until every copy is done, in one session like a first start
    pair = _pair(make_pair, "sync: {on_first_run: false}\n")
    result = pair.cli("sync", check=False, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert _crm(pair) == _erp(pair) == CRM_WINS


def test_sync_of_the_parent_then_its_folds_while_the_daemon_runs_the_erp_first(make_pair):
    pair = _pair(make_pair, "sync: {on_first_run: false, first_side: erp}\n")
    pair.start()
    # the parent first, then its two folds in one request (the daemon copies them, `sync` shows the progress)
    for mappings in (["customers"], ["customer_email", "customer_vip"]):
        result = pair.cli("sync", *(a for m in mappings for a in ("--mapping", m)), check=False, timeout=60)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    # the ERP's values where both hold one; customer 2's e-mail and flag, which only the CRM holds, in the ERP (a
    # fold's copy never takes a missing value for one, whichever side is first)
    erp_wins = [(1, "erp-1", "one@erp", "N"), (2, "erp-2", "two@crm", "N"), (3, "erp-3", "three@erp", "Y"),
                (4, "same", "four@both", "Y")]
    wait_until(lambda: _crm(pair) == _erp(pair) == erp_wins, 30, "the ERP's values, customer 2's from the CRM")
    applied = [pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")]
    time.sleep(2)  # settled
    assert [pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")] \
        == applied
    assert pair.stop() == 0


FLAG_PG = "CREATE TABLE product (id int PRIMARY KEY, name text, taxable char(1))"
FLAG_MY = """
CREATE TABLE products (id INT NOT NULL PRIMARY KEY, name VARCHAR(100) NULL);
CREATE TABLE attribute_values (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, entity_id INT NOT NULL,
                               attribute_id INT NOT NULL, boolean_value TINYINT(1) NULL)"""
FLAG_MAPPINGS = """
mappings:
  products:
    direction: both
    crm: {table: product, key: [id]}
    erp: {table: products, key: [id]}
    fields: {id: ~, name: ~}
  product_taxable:
    direction: both
    erp: {table: attribute_values, key: [id], slice: {attribute_id: 21}, generate: {id: default}}
    crm: {table: product, key: [id]}
    fold: {parent: products, child: erp, by: entity_id, value: boolean_value, into: taxable,
           map: [{erp: 1, crm: Y}, {erp: 0, crm: N}]}
"""


def test_a_first_start_with_the_child_rows_side_first_in_mariadb(make_pair):
    """The other way round: the child rows in MariaDB are the first side (its connection first), the folded
    column is PostgreSQL's, read by the second side's copy from the rows the products mapping's copy wrote."""
    pair = make_pair(FLAG_PG, FLAG_MY, FLAG_MAPPINGS, setup=False, maria_first=True)
    pair.pg_query("INSERT INTO product VALUES (1, 'crm-1', 'Y'), (2, 'crm-2', 'N'), (3, 'crm-3', NULL)")
    pair.my_query("INSERT INTO products VALUES (1, 'erp-1'), (2, 'erp-2'), (3, 'erp-3')")
    pair.my_query("INSERT INTO attribute_values (entity_id, attribute_id, boolean_value) VALUES (1, 21, 0), (3, 21, 1)")
    pair.setup()
    pair.start()

    def flags():
        crm = pair.pg_query("SELECT id, name, taxable FROM product ORDER BY id")
        erp = pair.my_query("SELECT p.id, p.name, CASE a.boolean_value WHEN 1 THEN 'Y' WHEN 0 THEN 'N' END FROM "
                            "products p LEFT JOIN attribute_values a ON a.entity_id = p.id AND a.attribute_id = 21 "
                            "ORDER BY p.id")
        return crm, [tuple(r) for r in erp]
    expected = [(1, "erp-1", "N"), (2, "erp-2", "N"), (3, "erp-3", "Y")]
    wait_until(lambda: flags() == (expected, expected), 30, "the ERP's flag of 1, the CRM's only flag of 2 in the ERP")
    wait_until(lambda: pair.metric("replicator_sync_running") == 0, 30, "the copies done")
    assert pair.my_query("SELECT count(*) FROM attribute_values") == [(3,)]
    assert pair.stop() == 0
