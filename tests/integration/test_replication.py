"""Core two-way replication against real servers: CRUD, multi-table transactions, no echoes."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from tests.integration.harness import wait_until

PG_SCHEMA = """
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, email text, credit numeric(12,2));
CREATE TABLE contact (id int PRIMARY KEY, customer_id int NOT NULL, phone text)
"""
MY_SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(200) NOT NULL, email varchar(200),
                        credit decimal(12,2));
CREATE TABLE contacts (id int PRIMARY KEY, customer_id int NOT NULL, phone varchar(50))
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: {erp: customer_name}
      email: ~
      credit: ~
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contacts, key: [id]}
    fields:
      id: ~
      customer_id: ~
      phone: ~
"""


@pytest.fixture
def pair(make_pair):
    p = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)
    p.start()
    yield p
    p.stop()


def assert_every_commit_echoed_once(pair):
    """Each target transaction the daemon committed came back to the other reader exactly once and
    was dropped there (commits are counted by the batch histogram, heartbeats included; the one
    extra echo is the starting checkpoint that `replicator setup` wrote)."""
    def balanced():
        pairs = [(pair.metric("replicator_loop_dropped_batches_total", direction=back),
                  pair.metric("replicator_apply_batch_rows_count", direction=fwd))
                 for fwd, back in (("crm_to_erp", "erp_to_crm"), ("erp_to_crm", "crm_to_erp"))]
        return pairs if all(dropped == commits + 1 for dropped, commits in pairs) else None
    wait_until(balanced, what="one dropped echo per commit")


def crm_rows(pair):
    return pair.pg_query("SELECT id, name, email, credit FROM customer ORDER BY id")


def erp_rows(pair):
    return [tuple(r) for r in pair.my_query("SELECT id, customer_name, email, credit FROM customers ORDER BY id")]


@pytest.mark.parametrize("origin", ["crm", "erp"])
def test_insert_update_delete_flow_to_the_other_side(pair, origin):
    write = pair.pg_query if origin == "crm" else pair.my_query
    table, name = ("customer", "name") if origin == "crm" else ("customers", "customer_name")
    write(f"INSERT INTO {table} (id, {name}, email, credit) VALUES (1, 'Ann', 'ann@example.com', 10.50)")
    write(f"INSERT INTO {table} (id, {name}, email, credit) VALUES (2, 'Bob', NULL, 0)")
    expected = [(1, "Ann", "ann@example.com", Decimal("10.50")), (2, "Bob", None, Decimal("0.00"))]
    wait_until(lambda: crm_rows(pair) == expected and erp_rows(pair) == expected, what="inserts on both sides")
    write(f"UPDATE {table} SET email = 'bob@example.com', credit = 99999.99 WHERE id = 2")
    write(f"DELETE FROM {table} WHERE id = 1")
    expected = [(2, "Bob", "bob@example.com", Decimal("99999.99"))]
    wait_until(lambda: crm_rows(pair) == expected and erp_rows(pair) == expected, what="update and delete")
    direction = "crm_to_erp" if origin == "crm" else "erp_to_crm"
    assert pair.metric("replicator_rows_applied_total", direction=direction, op="insert") == 2
    assert pair.metric("replicator_rows_applied_total", direction=direction, op="update") == 1
    assert pair.metric("replicator_rows_applied_total", direction=direction, op="delete") == 1
    # what we wrote came back to its reader and was dropped, not applied again
    back = "erp_to_crm" if origin == "crm" else "crm_to_erp"
    assert pair.metric("replicator_rows_applied_total", direction=back) == 0
    assert_every_commit_echoed_once(pair)


def test_key_change_moves_the_row(pair):
    pair.pg_query("INSERT INTO customer VALUES (1, 'Ann', NULL, 1)")
    wait_until(lambda: erp_rows(pair) == [(1, "Ann", None, Decimal("1.00"))])
    pair.pg_query("UPDATE customer SET id = 5 WHERE id = 1")
    wait_until(lambda: erp_rows(pair) == [(5, "Ann", None, Decimal("1.00"))], what="key change applied")


def test_transaction_touching_two_tables_arrives_whole(pair):
    conn = pair.maria.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (7, 'Cy', NULL, 5)")
        for i in range(50):
            cur.execute("INSERT INTO contacts VALUES (%s, 7, %s)", (100 + i, f"+1-555-{i:04d}"))
    conn.commit()
    conn.close()

    def seen():
        # one statement, one snapshot: two queries could straddle the commit
        customers, contacts = pair.pg_query("SELECT (SELECT count(*) FROM customer), (SELECT count(*) FROM contact)")[0]
        # never half a transaction: the customer and all its contacts, or nothing
        assert (customers, contacts) in ((0, 0), (1, 50)), (customers, contacts)
        return contacts == 50

    wait_until(seen, what="multi-table transaction")


def test_alternating_writes_on_both_sides_never_echo(pair):
    n = 500  # per side: 1,000 writes in all

    def writer(query, table, name, base):
        for i in range(n):
            query(f"INSERT INTO {table} (id, {name}, email, credit) VALUES ({base + i}, 'w{i}', NULL, {i})")

    a = threading.Thread(target=writer, args=(pair.pg_query, "customer", "name", 0))
    b = threading.Thread(target=writer, args=(pair.my_query, "customers", "customer_name", 100000))
    a.start(), b.start()
    a.join(), b.join()
    wait_until(lambda: len(crm_rows(pair)) == 2 * n and len(erp_rows(pair)) == 2 * n, timeout=60,
               what="all writes on both sides")
    assert crm_rows(pair) == erp_rows(pair)
    assert_every_commit_echoed_once(pair)
    # zero echoes applied: each direction applied exactly the other side's n writes, nothing more
    assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp") == n
    assert pair.metric("replicator_rows_applied_total", direction="erp_to_crm") == n
    print(f"alternating writes: {2 * n} written, echoes dropped "
          f"crm_to_erp={pair.metric('replicator_loop_dropped_batches_total', direction='crm_to_erp'):.0f} "
          f"erp_to_crm={pair.metric('replicator_loop_dropped_batches_total', direction='erp_to_crm'):.0f}, "
          f"echoes applied 0")
