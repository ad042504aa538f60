"""The mapping language (docs/mappings.md) against the real daemon and real servers.

Each test writes a mapping, runs `replicator setup`, starts `python -m replicator run` and checks
what arrives on the other side: renamed columns, value maps, transforms and casts, owned fields,
gates, soft deletes, natural keys and crosswalks (also across kill -9), parked children and their
parents, and SIGHUP reloads. "Does not arrive" is never asserted after a sleep: a later change
that does flow (in the same or a later source transaction) is waited for first, and since a
direction applies its source's transactions in order, what should have come before it has been
decided by then.
"""
from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from typing import Any, Callable

import pytest

from tests.integration.harness import Pair, reload, wait_until, write_mappings

C2E, E2C = "crm_to_erp", "erp_to_crm"


# ------------------------------------------------------------------------------------------ helpers

def alive(pair: Pair) -> None:
    assert pair.proc is not None and pair.proc.poll() is None, \
        f"daemon exited with {pair.proc.returncode if pair.proc else None}:\n{pair.log()[-4000:]}"


def wait(pair: Pair, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """wait_until, failing at once (with the daemon's log) if the daemon died meanwhile."""
    def check() -> Any:
        alive(pair)
        return predicate()
    return wait_until(check, timeout, what)


def wait_for(pair: Pair, fn: Callable[[], Any], expected: Any, what: str, timeout: float = 30) -> None:
    """Wait until fn() == expected; on timeout the message shows the last value seen."""
    last: list[Any] = [None]

    def check() -> bool:
        last[0] = fn()
        return last[0] == expected
    try:
        wait(pair, check, what, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: expected {expected!r}, last seen {last[0]!r}") from None


def erp(pair: Pair, sql: str, params: Any = None) -> list[tuple]:
    return [tuple(r) for r in pair.my_query(sql, params)]


def crm(pair: Pair, sql: str, params: Any = None) -> list[tuple]:
    return [tuple(r) for r in pair.pg_query(sql, params)]


def crm_crosswalk(pair: Pair, mapping: str) -> list[tuple]:
    return crm(pair, "SELECT source_side, source_key, target_key FROM replicator.crosswalk WHERE mapping = %s "
                     "ORDER BY source_side, source_key", (mapping,))


def erp_crosswalk(pair: Pair, mapping: str) -> list[tuple]:
    return erp(pair, f"SELECT source_side, source_key, target_key FROM `{pair.state_schema}`.crosswalk "
                     f"WHERE mapping = %s ORDER BY source_side, source_key", (mapping,))


def parked_total(pair: Pair) -> tuple[int, int]:
    """Rows in the parked tables: (in the ERP, for crm_to_erp; in the CRM, for erp_to_crm)."""
    return (erp(pair, f"SELECT count(*) FROM `{pair.state_schema}`.parked")[0][0],
            crm(pair, "SELECT count(*) FROM replicator.parked")[0][0])


def started(make_pair: Callable[..., Pair], pg_sql: str, my_sql: str, mappings: str, first_sync: bool = True) -> Pair:
    """`first_sync=False`: rows the schema SQL inserted stay where they are at the start (no first-run
    copy), for tests of how the stream links records that exist already (test_sync.py copies them)."""
    pair = make_pair(pg_sql, my_sql, mappings, "" if first_sync else "sync: {on_first_run: false}\n")
    pair.start()
    return pair


def stop(pair: Pair) -> None:
    if pair.proc is not None and pair.proc.poll() is None:
        assert pair.stop() == 0, pair.log()[-4000:]


# ------------------------------------------------------------- 1. rename, cast, value map, transforms

CUSTOMER_PG = """
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, status text NOT NULL, segment text,
                       credit numeric(12,3), since date)
"""
CUSTOMER_MY = """
CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(100) NOT NULL, status_code char(1) NOT NULL,
                        segment_code char(1), credit decimal(12,2), since_text char(10)) ENGINE=InnoDB
"""
CUSTOMER_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name:
        erp: customer_name
        transform: {crm_to_erp: [trim, upper]}
      status:
        erp: status_code
        map: [{crm: active, erp: A}, {crm: blocked, erp: B}]
        unmapped: error
      segment:
        erp: segment_code
        map: [{crm: retail, erp: R}, {crm: wholesale, erp: W}]
        unmapped: {default: X}
      credit:
        transform: {crm_to_erp: [{round: 2}]}
        lossy: allow
      since:
        erp: since_text
        transform: {crm_to_erp: [{date_format: "%d.%m.%Y"}], erp_to_crm: [{parse_date: "%d.%m.%Y"}]}
        lossy: allow
"""


def test_rename_cast_value_map_and_transforms_both_ways(make_pair):
    pair = started(make_pair, CUSTOMER_PG, CUSTOMER_MY, CUSTOMER_MAPPINGS)

    def erp_row(key: int) -> list[tuple]:
        return erp(pair, "SELECT id, customer_name, status_code, segment_code, credit, since_text FROM customers "
                         "WHERE id = %s", (key,))

    def crm_row(key: int) -> list[tuple]:
        return crm(pair, "SELECT id, name, status, segment, credit, since FROM customer WHERE id = %s", (key,))

    # crm -> erp: renamed, trimmed and upper-cased, codes mapped, rounded, date formatted
    pair.pg_query("INSERT INTO customer VALUES (1, '  ann smith ', 'active', 'retail', 12.346, '2024-02-29')")
    wait_for(pair, lambda: erp_row(1), [(1, "ANN SMITH", "A", "R", Decimal("12.35"), "29.02.2024")],
             "crm insert in erp")

    # erp -> crm: codes mapped back, text parsed to a date, no upper-casing in this direction
    pair.my_query("INSERT INTO customers VALUES (2, 'zed ltd', 'B', 'W', 5.5, '31.12.2023')")
    wait_for(pair, lambda: crm_row(2), [(2, "zed ltd", "blocked", "wholesale", Decimal("5.500"), date(2023, 12, 31))],
             "erp insert in crm")

    # updates both ways
    pair.pg_query("UPDATE customer SET status = 'blocked', name = 'ann b. smith' WHERE id = 1")
    wait_for(pair, lambda: erp_row(1)[0][1:3], ("ANN B. SMITH", "B"), "crm update in erp")
    pair.my_query("UPDATE customers SET status_code = 'A', since_text = '01.03.2024' WHERE id = 2")
    wait_for(pair, lambda: crm_row(2)[0][2:], ("active", "wholesale", Decimal("5.500"), date(2024, 3, 1)),
             "erp update in crm")

    # a value the map does not list, with unmapped: {default: X}, sends X
    pair.pg_query("INSERT INTO customer VALUES (3, 'Cy', 'active', 'government', NULL, NULL)")
    wait_for(pair, lambda: erp_row(3), [(3, "CY", "A", "X", None, None)], "unmapped segment sent as the default")
    assert crm_row(3) == [(3, "Cy", "active", "government", None, None)]  # the source keeps its value

    # with unmapped: error (the default) the row stops the stream, with a message naming table, key, column
    pair.pg_query("INSERT INTO customer VALUES (4, 'Dee', 'vip', 'retail', NULL, NULL)")
    code = pair.wait_exit(30)
    log = pair.log()
    assert code != 0, log[-3000:]
    stopped = [line for line in log.splitlines() if "stopped on" in line]
    assert stopped, log[-3000:]
    message = stopped[-1]
    assert "customer" in message and "(4,)" in message and "column status" in message and "'vip'" in message, message
    assert erp_row(4) == []
    # the stream did not skip the row: the next start stops on it again
    pair.start()
    assert pair.wait_exit(30) != 0
    assert [line for line in pair.log().splitlines() if "stopped on" in line][-1] == message
    assert erp_row(4) == []


# ------------------------------------------------------------------------------- 2. owned fields

OWNED_MY = """CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(100), credit_limit decimal(12,2),
                                      phone varchar(50)) ENGINE=InnoDB"""
OWNED_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: {erp: customer_name, owner: crm}
      credit_limit: {owner: erp}
      phone: ~
"""
OWNED_VARIANTS = {
    # the plain (batched) path: the ERP may create customers, so the CRM's name must allow NULL
    "plain": ("CREATE TABLE customer (id int PRIMARY KEY, name text, credit_limit numeric(12,2), phone text)",
              OWNED_MAPPINGS),
    # created once in the CRM, then updated by ownership from either side (the row-by-row path)
    "created_by": ("CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, credit_limit numeric(12,2), "
                   "phone text)",
                   OWNED_MAPPINGS.replace("    direction: both\n", "    direction: both\n    created_by: crm\n")),
}


@pytest.mark.parametrize("variant", sorted(OWNED_VARIANTS))
def test_owned_fields_flow_only_from_their_owner(make_pair, variant):
    pg_sql, mappings = OWNED_VARIANTS[variant]
    pair = started(make_pair, pg_sql, OWNED_MY, mappings)
    erp_row = lambda: erp(pair, "SELECT customer_name, credit_limit, phone FROM customers WHERE id = 1")  # noqa: E731
    crm_row = lambda: crm(pair, "SELECT name, credit_limit, phone FROM customer WHERE id = 1")  # noqa: E731

    # created in the CRM: the ERP-owned credit limit is not sent, the ERP keeps its own (NULL)
    pair.pg_query("INSERT INTO customer VALUES (1, 'Ann', 100, '111')")
    wait_for(pair, lambda: erp_row(), [("Ann", None, "111")], "crm insert in erp")

    # an ERP edit of the ERP-owned credit limit reaches the CRM; its edit of the CRM-owned name does not
    pair.my_query("UPDATE customers SET credit_limit = 5000, customer_name = 'Renamed in ERP', phone = '222' "
                  "WHERE id = 1")
    wait_for(pair, lambda: crm_row()[0][2], "222", "erp update in crm")
    assert crm_row() == [("Ann", Decimal("5000.00"), "222")]

    # a CRM edit of the credit limit does not reach the ERP; its edit of the name does
    pair.pg_query("UPDATE customer SET credit_limit = 1, name = 'Ann B', phone = '333' WHERE id = 1")
    wait_for(pair, lambda: erp_row()[0][2], "333", "crm update in erp")
    assert erp_row() == [("Ann B", Decimal("5000.00"), "333")]
    assert crm_row() == [("Ann B", Decimal("1.00"), "333")]
    stop(pair)


# ------------------------------------------------------------------------------------- 3. gates

QUOTE_PG = """
CREATE TABLE quote (id int PRIMARY KEY, status text NOT NULL, amount numeric(12,2), note text)
"""
QUOTE_MY = """
CREATE TABLE sales_orders (id int PRIMARY KEY, quote_status varchar(20), amount decimal(12,2), note varchar(200))
  ENGINE=InnoDB
"""
QUOTE_MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [id]}
    gate: {crm_to_erp: {column: status, becomes: confirmed}}
    fields:
      id: ~
      status: {erp: quote_status}
      amount: ~
      note: ~
"""


def orders(pair: Pair) -> list[tuple]:
    return erp(pair, "SELECT id, quote_status, amount, note FROM sales_orders ORDER BY id")


def test_gate_creates_the_counterpart_exactly_once(make_pair):
    pair = started(make_pair, QUOTE_PG, QUOTE_MY, QUOTE_MAPPINGS)
    filtered = lambda: pair.metric("replicator_rows_filtered_total", direction=C2E)  # noqa: E731

    # drafts: nothing is sent, each change is counted as filtered
    pair.pg_query("INSERT INTO quote VALUES (1, 'draft', 100, NULL)")
    wait_for(pair, lambda: filtered(), 1, "draft insert filtered")
    pair.pg_query("UPDATE quote SET amount = 150 WHERE id = 1")
    wait_for(pair, lambda: filtered(), 2, "draft update filtered")
    assert orders(pair) == []

    # an insert that already has the value opens the gate too
    pair.pg_query("INSERT INTO quote VALUES (2, 'confirmed', 20, 'direct')")
    wait_for(pair, lambda: orders(pair), [(2, "confirmed", Decimal("20.00"), "direct")], "confirmed insert")
    assert orders(pair) == [(2, "confirmed", Decimal("20.00"), "direct")]  # quote 1 still a draft: no order

    # confirming creates one order, with the draft's latest values
    pair.pg_query("UPDATE quote SET status = 'confirmed' WHERE id = 1")
    wait_for(pair, lambda: len(orders(pair)), 2, "order for the confirmed quote")
    assert orders(pair)[0] == (1, "confirmed", Decimal("150.00"), None)

    # later edits update it, whatever the status holds
    pair.pg_query("UPDATE quote SET amount = 200, note = 'bigger' WHERE id = 1")
    wait_for(pair, lambda: orders(pair)[0], (1, "confirmed", Decimal("200.00"), "bigger"),
             "edit of a confirmed quote")
    pair.pg_query("UPDATE quote SET status = 'draft', note = 'reopened' WHERE id = 1")
    wait_for(pair, lambda: orders(pair)[0], (1, "draft", Decimal("200.00"), "reopened"), "quote back to draft")

    # confirming again (draft -> confirmed) does not create a second order
    pair.pg_query("UPDATE quote SET status = 'confirmed', note = 'again' WHERE id = 1")
    wait_for(pair, lambda: orders(pair)[0], (1, "confirmed", Decimal("200.00"), "again"), "re-confirmation")
    assert [r[0] for r in orders(pair)] == [1, 2]
    assert filtered() == 2
    assert pair.metric("replicator_rows_applied_total", direction=C2E, op="insert") == 2, "two orders created"
    stop(pair)


# -------------------------------------------------------------------------------- 4. soft delete

SOFT_PG = "CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL)"
SOFT_MY = """CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(100) NOT NULL,
                                     active tinyint(1) NOT NULL DEFAULT 1) ENGINE=InnoDB"""
SOFT_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    delete: {crm_to_erp: {set: {active: false}}}
    fields:
      id: ~
      name: {erp: customer_name}
"""


def test_soft_delete_sets_the_target_columns(make_pair):
    pair = started(make_pair, SOFT_PG, SOFT_MY, SOFT_MAPPINGS)
    rows = lambda: erp(pair, "SELECT id, customer_name, active FROM customers ORDER BY id")  # noqa: E731
    pair.pg_query("INSERT INTO customer VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')")
    wait_for(pair, lambda: rows(), [(1, "Ann", 1), (2, "Bob", 1), (3, "Cy", 1)], "inserts in erp")

    pair.pg_query("DELETE FROM customer WHERE id = 1")
    wait_for(pair, lambda: rows()[0], (1, "Ann", 0), "soft delete in erp")
    assert rows() == [(1, "Ann", 0), (2, "Bob", 1), (3, "Cy", 1)]
    assert pair.metric("replicator_rows_applied_total", direction=C2E, op="delete") == 0

    # the other direction propagates deletes (the default)
    pair.my_query("DELETE FROM customers WHERE id = 2")
    wait_for(pair, lambda: crm(pair, "SELECT id FROM customer ORDER BY id"), [(3,)], "erp delete in crm")
    assert rows() == [(1, "Ann", 0), (3, "Cy", 1)]
    stop(pair)


# ------------------------------------------------------------------ 5. natural keys and the crosswalk

NATURAL_PG = """
CREATE TABLE customer (id serial PRIMARY KEY, vat_id text, name text NOT NULL, city text);
CREATE INDEX customer_vat ON customer (vat_id);
INSERT INTO customer (vat_id, name, city) VALUES ('DE100', 'Acme', 'Berlin'), ('DE200', 'Beta', 'Bonn'),
                                                 ('SE600', 'Zeta', 'Malmo')
"""
NATURAL_MY = """
CREATE TABLE customers (cust_no int AUTO_INCREMENT PRIMARY KEY, vat_id varchar(20),
                        customer_name varchar(100) NOT NULL, city varchar(50), KEY (vat_id))
  ENGINE=InnoDB AUTO_INCREMENT=7000;
INSERT INTO customers (cust_no, vat_id, customer_name, city) VALUES
  (5000, 'DE100', 'Acme GmbH', 'Berlin'), (5001, 'FR300', 'Gamma SA', 'Paris'), (5005, 'NL500', 'Epsilon BV', 'Delft'),
  (5006, 'SE600', 'Zeta AB', 'Malmo')
"""
NATURAL_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {natural: [vat_id], crosswalk: true}
    fields:
      vat_id: ~
      name: {erp: customer_name}
      city: ~
"""


def test_natural_key_links_existing_records_and_crosswalk_follows_created_ones(make_pair):
    """Before the start both sides hold Acme (DE100, crm 1 / erp 5000) and Zeta (SE600, crm 3 /
    erp 5006); Beta (crm 2) is CRM-only, Gamma (erp 5001) and Epsilon (erp 5005) ERP-only."""
    pair = started(make_pair, NATURAL_PG, NATURAL_MY, NATURAL_MAPPINGS, first_sync=False)

    def erp_rows() -> list[tuple]:
        return erp(pair, "SELECT cust_no, vat_id, customer_name, city FROM customers ORDER BY cust_no")

    def crm_rows() -> list[tuple]:
        return crm(pair, "SELECT id, vat_id, name, city FROM customer ORDER BY id")

    def links(direction: str, how: str) -> float:
        return pair.metric("replicator_links_created_total", direction=direction, mapping="customers", how=how)

    # Acme, updated in the CRM, is linked by vat_id: the ERP row is updated, not duplicated
    pair.pg_query("UPDATE customer SET city = 'Hamburg' WHERE id = 1")
    wait_for(pair, lambda: erp_rows()[0], (5000, "DE100", "Acme", "Hamburg"), "update linked by vat_id")
    assert [r[0] for r in erp_rows()] == [5000, 5001, 5005, 5006]
    assert erp_crosswalk(pair, "customers") == [("crm", "[1]", "[5000]")]
    assert links(C2E, "natural") == 1

    # the ERP's update of the same record reaches the same CRM row through that pair
    pair.my_query("UPDATE customers SET city = 'Munich' WHERE cust_no = 5000")
    wait_for(pair, lambda: crm_rows()[0], (1, "DE100", "Acme", "Munich"), "erp update through the pair")
    assert len(crm_rows()) == 3
    assert links(E2C, "natural") == 0 and crm_crosswalk(pair, "customers") == []

    # Zeta, updated in the ERP first, is linked the other way round; a CRM update follows the pair
    pair.my_query("UPDATE customers SET city = 'Lund' WHERE cust_no = 5006")
    wait_for(pair, lambda: crm_rows()[2], (3, "SE600", "Zeta AB", "Lund"), "erp update linked by vat_id")
    assert len(crm_rows()) == 3
    assert crm_crosswalk(pair, "customers") == [("erp", "[5006]", "[3]")]
    assert links(E2C, "natural") == 1
    pair.pg_query("UPDATE customer SET name = 'Zeta' WHERE id = 3")
    wait_for(pair, lambda: erp_rows()[3], (5006, "SE600", "Zeta", "Lund"), "crm update through the erp's pair")
    assert links(C2E, "natural") == 1 and len(erp_rows()) == 4

    # a CRM insert whose natural key exists in the ERP links that row instead of inserting
    pair.pg_query("INSERT INTO customer (vat_id, name, city) VALUES ('NL500', 'Epsilon', 'Utrecht')")  # id 4
    wait(pair, lambda: (5005, "NL500", "Epsilon", "Utrecht") in erp_rows(), "insert linked by vat_id")
    assert [r[0] for r in erp_rows()] == [5000, 5001, 5005, 5006]
    assert links(C2E, "natural") == 2

    # a new CRM customer appears once in the ERP, with an ERP-generated key
    pair.pg_query("INSERT INTO customer (vat_id, name, city) VALUES ('IT400', 'Delta', 'Rome')")  # id 5
    new = wait(pair, lambda: [r for r in erp_rows() if r[1] == "IT400"], "created customer")
    assert new == [(7000, "IT400", "Delta", "Rome")]
    assert erp_crosswalk(pair, "customers") == [("crm", "[1]", "[5000]"), ("crm", "[4]", "[5005]"),
                                                ("crm", "[5]", "[7000]")]
    assert links(C2E, "crosswalk") == 1

    # later updates, both ways, reach the same rows
    pair.pg_query("UPDATE customer SET name = 'Delta SpA' WHERE id = 5")
    wait(pair, lambda: (7000, "IT400", "Delta SpA", "Rome") in erp_rows(), "crm update of a created customer")
    pair.my_query("UPDATE customers SET city = 'Milan' WHERE cust_no = 7000")
    wait(pair, lambda: (5, "IT400", "Delta SpA", "Milan") in crm_rows(), "erp update of a created customer")

    # an ERP-only customer touched in the ERP is created in the CRM with a CRM-generated key
    pair.my_query("UPDATE customers SET city = 'Lyon' WHERE cust_no = 5001")
    wait(pair, lambda: (6, "FR300", "Gamma SA", "Lyon") in crm_rows(), "erp customer created in crm")
    assert crm_crosswalk(pair, "customers") == [("erp", "[5001]", "[6]"), ("erp", "[5006]", "[3]")]
    pair.pg_query("UPDATE customer SET name = 'Gamma' WHERE id = 6")
    wait(pair, lambda: (5001, "FR300", "Gamma", "Lyon") in erp_rows(), "crm update through the crm's pair")

    assert crm_rows() == [(1, "DE100", "Acme", "Munich"), (2, "DE200", "Beta", "Bonn"), (3, "SE600", "Zeta", "Lund"),
                          (4, "NL500", "Epsilon", "Utrecht"), (5, "IT400", "Delta SpA", "Milan"),
                          (6, "FR300", "Gamma", "Lyon")]
    assert erp_rows() == [(5000, "DE100", "Acme", "Munich"), (5001, "FR300", "Gamma", "Lyon"),
                          (5005, "NL500", "Epsilon", "Utrecht"), (5006, "SE600", "Zeta", "Lund"),
                          (7000, "IT400", "Delta SpA", "Milan")]
    assert links(E2C, "crosswalk") == 1 and links(E2C, "natural") == 1
    assert links(C2E, "crosswalk") == 1 and links(C2E, "natural") == 2
    stop(pair)


CONTACT_PG = NATURAL_PG + """;
CREATE TABLE contact (id serial PRIMARY KEY, customer_id int NOT NULL, phone text)
"""
CONTACT_MY = NATURAL_MY + """;
CREATE TABLE contacts (contact_no int AUTO_INCREMENT PRIMARY KEY, cust_no int NOT NULL, phone varchar(50))
  ENGINE=InnoDB AUTO_INCREMENT=900
"""
CONTACT_MAPPINGS = NATURAL_MAPPINGS + """
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contacts, key: [contact_no]}
    link: {crosswalk: true}
    fields:
      customer_id: {erp: cust_no, references: customers}
      phone: ~
"""


def test_child_waiting_for_a_parent_linked_by_natural_key_is_applied(make_pair):
    """A contact of Acme (on both sides, not linked yet) waits; when an update links Acme by its
    natural key, Acme has a counterpart and the contact must follow."""
    pair = started(make_pair, CONTACT_PG, CONTACT_MY, CONTACT_MAPPINGS, first_sync=False)  # Acme not linked yet
    pair.pg_query("INSERT INTO contact (customer_id, phone) VALUES (1, '+49 30 1234')")
    wait_for(pair, lambda: pair.metric("replicator_parked_rows", direction=C2E), 1, "contact parked")
    wait_for(pair, lambda: parked_total(pair), (1, 0), "parked row committed")  # the gauge moves before commit
    assert erp(pair, "SELECT * FROM contacts") == []

    pair.pg_query("UPDATE customer SET city = 'Hamburg' WHERE id = 1")
    wait_for(pair, lambda: erp(pair, "SELECT city FROM customers WHERE cust_no = 5000"), [("Hamburg",)],
             "Acme linked")
    assert erp_crosswalk(pair, "customers") == [("crm", "[1]", "[5000]")]
    wait_for(pair, lambda: erp(pair, "SELECT contact_no, cust_no, phone FROM contacts"), [(900, 5000, "+49 30 1234")],
             "the parked contact applied once its parent is linked", timeout=15)
    assert pair.metric("replicator_parked_rows", direction=C2E) == 0
    assert parked_total(pair) == (0, 0)
    stop(pair)


# ---------------------------------------------------------------------- 6. crosswalk and kill -9

KILL_PG = "CREATE TABLE customer (id serial PRIMARY KEY, vat_id text NOT NULL, name text NOT NULL)"
KILL_MY = """CREATE TABLE customers (cust_no int AUTO_INCREMENT PRIMARY KEY, vat_id varchar(20) NOT NULL,
                                     customer_name varchar(100) NOT NULL) ENGINE=InnoDB AUTO_INCREMENT=100000"""
KILL_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields:
      vat_id: ~
      name: {erp: customer_name}
"""


def test_crosswalk_survives_kill_9(make_pair):
    n, kills = 800, 3
    pair = started(make_pair, KILL_PG, KILL_MY, KILL_MAPPINGS)
    erp_count = lambda: erp(pair, "SELECT count(*) FROM customers")[0][0]  # noqa: E731
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            conn = pair.pg.connect()
            conn.autocommit = True
            with conn.cursor() as cur:
                i = 0
                while i < n:
                    batch = 1 if i % 3 else 4  # one-row and four-row transactions
                    cur.execute("BEGIN")
                    for j in range(i, min(n, i + batch)):
                        cur.execute("INSERT INTO customer (vat_id, name) VALUES (%s, %s)", (f"V{j:05d}", f"c{j}"))
                    cur.execute("COMMIT")
                    i += batch
                    time.sleep(0.01)
            conn.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        applied = 0
        for k in range(1, kills + 1):
            # kill while it applies: as soon as it has made progress since the last start
            threshold = min(n, applied + (n // 8 if k == 1 else 1))
            applied = wait(pair, lambda: (lambda c: c if c >= threshold else None)(erp_count()),
                           f"{threshold} rows before kill {k}", timeout=60)
            pair.kill()
            pair.start()
    finally:
        t.join()
    assert not errors, errors
    wait(pair, lambda: erp_count() >= n, "every CRM row in the ERP", timeout=90)

    crm_rows = dict(crm(pair, "SELECT id, vat_id FROM customer"))
    erp_rows = dict(erp(pair, "SELECT cust_no, vat_id FROM customers"))
    assert len(crm_rows) == n, "the daemon's ERP inserts came back to the CRM"
    assert len(erp_rows) == n and len(set(erp_rows.values())) == n, "unlinked copies in the ERP"
    pairs = erp_crosswalk(pair, "customers")
    assert len(pairs) == n and {p[0] for p in pairs} == {"crm"}
    by_source = {int(p[1][1:-1]): int(p[2][1:-1]) for p in pairs}
    assert len(by_source) == n and len(set(by_source.values())) == n
    assert set(by_source) == set(crm_rows) and set(by_source.values()) == set(erp_rows)
    assert all(crm_rows[s] == erp_rows[t] for s, t in by_source.items()), "a pair links different records"
    assert crm_crosswalk(pair, "customers") == []

    # the pairs work after the restarts, both ways
    pair.my_query("UPDATE customers SET customer_name = CONCAT(customer_name, '!')")
    wait(pair, lambda: crm(pair, "SELECT count(*) FROM customer WHERE name LIKE '%!'")[0][0] == n,
         "erp update of every row in the crm", timeout=60)
    assert len(crm(pair, "SELECT id FROM customer")) == n
    pair.pg_query("UPDATE customer SET name = name || '?' WHERE id = (SELECT min(id) FROM customer)")
    first = min(crm_rows)
    wait(pair, lambda: erp(pair, "SELECT customer_name FROM customers WHERE cust_no = %s", (by_source[first],))
         == [("c0!?",)], "crm update through a pair")
    assert erp_count() == n
    stop(pair)


# ---------------------------------------------------------------- 7. children before their parent

LINES_PG = """
CREATE TABLE orders (id int PRIMARY KEY, customer text);
CREATE TABLE order_line (id int PRIMARY KEY, order_id int NOT NULL, qty int NOT NULL)
"""
LINES_MY = """
CREATE TABLE orders (id int PRIMARY KEY, customer varchar(50)) ENGINE=InnoDB;
CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL, qty int NOT NULL) ENGINE=InnoDB
"""
LINES_MAPPINGS = """
mappings:
  orders:
    direction: both
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields:
      id: ~
      customer: ~
  order_lines:
    direction: both
    crm: {table: order_line, key: [id]}
    erp: {table: order_lines, key: [id]}
    fields:
      id: ~
      order_id: {references: orders}
      qty: ~
"""


def test_child_before_parent_is_parked_until_the_parent_arrives(make_pair):
    pair = started(make_pair, LINES_PG, LINES_MY, LINES_MAPPINGS)
    parked = lambda direction: pair.metric("replicator_parked_rows", direction=direction)  # noqa: E731

    # crm -> erp: a line for order 10, then an edit of it, then the order
    pair.pg_query("INSERT INTO order_line VALUES (1, 10, 5)")
    wait_for(pair, lambda: parked(C2E), 1, "line parked")
    pair.pg_query("UPDATE order_line SET qty = 6 WHERE id = 1")
    wait_for(pair, lambda: parked(C2E), 2, "line edit parked behind it")
    wait_for(pair, lambda: parked_total(pair), (2, 0), "parked rows committed")  # the gauge moves before commit
    assert erp(pair, "SELECT * FROM order_lines") == []
    pair.pg_query("INSERT INTO orders VALUES (10, 'Ann')")
    wait_for(pair, lambda: erp(pair, "SELECT * FROM order_lines"), [(1, 10, 6)], "line applied with its order")
    assert erp(pair, "SELECT * FROM orders") == [(10, "Ann")]
    wait_for(pair, lambda: parked(C2E), 0, "nothing parked")
    assert parked_total(pair) == (0, 0)

    # a line for an order that is there goes straight through
    pair.pg_query("INSERT INTO order_line VALUES (2, 10, 1)")
    wait_for(pair, lambda: len(erp(pair, "SELECT * FROM order_lines")), 2, "line of an existing order")
    assert parked(C2E) == 0

    # erp -> crm
    pair.my_query("INSERT INTO order_lines VALUES (3, 20, 7)")
    wait_for(pair, lambda: parked(E2C), 1, "erp line parked")
    wait_for(pair, lambda: parked_total(pair), (0, 1), "parked row committed")
    assert crm(pair, "SELECT * FROM order_line WHERE id = 3") == []
    pair.my_query("INSERT INTO orders VALUES (20, 'Bob')")
    wait_for(pair, lambda: crm(pair, "SELECT * FROM order_line WHERE id = 3"), [(3, 20, 7)],
             "erp line with its order")
    assert crm(pair, "SELECT * FROM orders ORDER BY id") == [(10, "Ann"), (20, "Bob")]
    wait_for(pair, lambda: parked(E2C), 0, "nothing parked")
    assert parked_total(pair) == (0, 0)
    assert crm(pair, "SELECT * FROM order_line ORDER BY id") == [(1, 10, 6), (2, 10, 1), (3, 20, 7)]
    assert erp(pair, "SELECT * FROM order_lines ORDER BY id") == [(1, 10, 6), (2, 10, 1), (3, 20, 7)]
    stop(pair)


PARENT_PG = """
CREATE TABLE quote (id int PRIMARY KEY, status text NOT NULL);
CREATE TABLE quote_line (id int PRIMARY KEY, quote_id int NOT NULL, qty int NOT NULL)
"""
PARENT_MY = """
CREATE TABLE sales_orders (id int PRIMARY KEY, status varchar(20)) ENGINE=InnoDB;
CREATE TABLE sales_order_lines (id int PRIMARY KEY, order_id int NOT NULL, qty int NOT NULL) ENGINE=InnoDB
"""
PARENT_MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [id]}
    gate: {crm_to_erp: {column: status, becomes: confirmed}}
    fields:
      id: ~
      status: ~
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: sales_order_lines, key: [id]}
    parent: {mapping: quotes, field: quote_id}
    fields:
      id: ~
      quote_id: {erp: order_id}
      qty: ~
"""


def test_children_declared_with_parent_wait_for_the_gated_parent(make_pair):
    """The docs' form, `parent: {mapping: quotes, field: quote_id}` (shared keys, no `references`):
    lines of a draft quote must not reach the ERP before their order."""
    pair = started(make_pair, PARENT_PG, PARENT_MY, PARENT_MAPPINGS)
    conn = pair.pg.connect()
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO quote VALUES (1, 'draft')")
        cur.execute("INSERT INTO quote_line VALUES (11, 1, 1), (12, 1, 2)")
    conn.close()
    wait(pair, lambda: pair.metric("replicator_rows_filtered_total", direction=C2E) >= 1, "draft quote filtered")
    wait(pair, lambda: pair.metric("replicator_parked_rows", direction=C2E) >= 2
         or erp(pair, "SELECT * FROM sales_order_lines"), "the lines parked (or sent)")
    assert erp(pair, "SELECT * FROM sales_order_lines") == [], "lines of a draft quote reached the ERP without it"
    assert pair.metric("replicator_parked_rows", direction=C2E) == 2

    pair.pg_query("UPDATE quote SET status = 'confirmed' WHERE id = 1")
    wait_for(pair, lambda: erp(pair, "SELECT * FROM sales_order_lines ORDER BY id"), [(11, 1, 1), (12, 1, 2)],
             "lines with their order")
    assert erp(pair, "SELECT * FROM sales_orders") == [(1, "confirmed")]
    assert pair.metric("replicator_parked_rows", direction=C2E) == 0
    stop(pair)


# ---------------------------------------------------- 8. a quote with lines becomes an order with lines

ORDER_PG = """
CREATE TABLE quote (id serial PRIMARY KEY, customer text NOT NULL, status text NOT NULL);
CREATE TABLE quote_line (id serial PRIMARY KEY, quote_id int NOT NULL REFERENCES quote, line_no int NOT NULL,
                         qty int NOT NULL, price numeric(10,2) NOT NULL)
"""
ORDER_MY = """
CREATE TABLE sales_orders (order_no int AUTO_INCREMENT PRIMARY KEY, customer varchar(50) NOT NULL,
                           crm_status varchar(20)) ENGINE=InnoDB AUTO_INCREMENT=7000;
CREATE TABLE sales_order_lines (line_id int AUTO_INCREMENT PRIMARY KEY, order_no int NOT NULL, line_no int NOT NULL,
                                qty int NOT NULL, price decimal(10,2) NOT NULL,
                                FOREIGN KEY (order_no) REFERENCES sales_orders (order_no))
  ENGINE=InnoDB AUTO_INCREMENT=9000
"""
ORDER_MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [order_no]}
    link: {crosswalk: true}
    gate: {crm_to_erp: {column: status, becomes: confirmed}}
    fields:
      customer: ~
      status: {erp: crm_status}
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: sales_order_lines, key: [line_id]}
    link: {crosswalk: true}
    parent: {mapping: quotes, field: quote_id}
    fields:
      quote_id: {erp: order_no, references: quotes}
      line_no: ~
      qty: ~
      price: ~
"""


def draft_quote_with_lines(pair: Pair, lines: int) -> None:
    conn = pair.pg.connect()
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO quote (customer, status) VALUES ('Ann', 'draft')")
        for i in range(1, lines + 1):
            cur.execute("INSERT INTO quote_line (quote_id, line_no, qty, price) VALUES (1, %s, %s, 9.99)", (i, i))
    conn.close()


def erp_order(pair: Pair) -> tuple[list[tuple], list[tuple]]:
    return (erp(pair, "SELECT order_no, customer, crm_status FROM sales_orders ORDER BY order_no"),
            erp(pair, "SELECT line_id, order_no, line_no, qty, price FROM sales_order_lines ORDER BY line_no"))


def test_quote_with_lines_becomes_an_order_with_lines_in_one_transaction(make_pair):
    pair = started(make_pair, ORDER_PG, ORDER_MY, ORDER_MAPPINGS)
    draft_quote_with_lines(pair, 3)
    wait_for(pair, lambda: pair.metric("replicator_parked_rows", direction=C2E), 3, "draft lines parked")
    assert pair.metric("replicator_rows_filtered_total", direction=C2E) == 1
    wait_for(pair, lambda: parked_total(pair), (3, 0), "parked rows committed")  # the gauge moves before commit
    assert erp_order(pair) == ([], [])

    seen: set[tuple[int, int]] = set()
    done = threading.Event()

    def watch() -> None:
        conn = pair.maria.connect()
        try:
            with conn.cursor() as cur:
                while not done.is_set():
                    # one statement, one snapshot
                    cur.execute("SELECT (SELECT count(*) FROM sales_orders), (SELECT count(*) FROM sales_order_lines)")
                    seen.add(tuple(cur.fetchone()))
                    conn.commit()
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pair.pg_query("UPDATE quote SET status = 'confirmed' WHERE id = 1")
        wait(pair, lambda: (1, 3) in seen, "order with its lines")
    finally:
        done.set()
        watcher.join()
    assert seen <= {(0, 0), (1, 3)}, f"the ERP showed an order without all its lines: {sorted(seen)}"

    assert erp_order(pair) == ([(7000, "Ann", "confirmed")],
                               [(9000, 7000, 1, 1, Decimal("9.99")), (9001, 7000, 2, 2, Decimal("9.99")),
                                (9002, 7000, 3, 3, Decimal("9.99"))])
    assert erp_crosswalk(pair, "quotes") == [("crm", "[1]", "[7000]")]
    assert erp_crosswalk(pair, "quote_lines") == [("crm", "[1]", "[9000]"), ("crm", "[2]", "[9001]"),
                                                  ("crm", "[3]", "[9002]")]
    assert pair.metric("replicator_parked_rows", direction=C2E) == 0 and parked_total(pair) == (0, 0)
    assert pair.metric("replicator_links_created_total", direction=C2E, mapping="quote_lines", how="crosswalk") == 3

    # afterwards a line edit updates its line, and a new line joins the order directly
    pair.pg_query("UPDATE quote_line SET qty = 20 WHERE line_no = 2")
    pair.pg_query("INSERT INTO quote_line (quote_id, line_no, qty, price) VALUES (1, 4, 4, 1.50)")
    wait_for(pair, lambda: len(erp_order(pair)[1]), 4, "new line")
    assert erp_order(pair)[1] == [(9000, 7000, 1, 1, Decimal("9.99")), (9001, 7000, 2, 20, Decimal("9.99")),
                                  (9002, 7000, 3, 3, Decimal("9.99")), (9003, 7000, 4, 4, Decimal("1.50"))]
    assert pair.metric("replicator_parked_rows", direction=C2E) == 0
    stop(pair)


def test_line_deleted_while_parked_does_not_come_back(make_pair):
    """A draft quote is edited before it is confirmed: line 2 deleted, line 3 changed. The order
    gets the quote's lines as they are at confirmation."""
    pair = started(make_pair, ORDER_PG, ORDER_MY, ORDER_MAPPINGS)
    draft_quote_with_lines(pair, 3)
    pair.pg_query("DELETE FROM quote_line WHERE line_no = 2")
    pair.pg_query("UPDATE quote_line SET qty = 30 WHERE line_no = 3")
    pair.pg_query("UPDATE quote SET status = 'confirmed' WHERE id = 1")  # after the edits in the WAL
    wait_for(pair, lambda: erp_order(pair)[0], [(7000, "Ann", "confirmed")], "order created")
    assert [r[2:4] for r in erp_order(pair)[1]] == [(1, 1), (3, 30)], "the ERP order's lines (line_no, qty)"
    assert pair.metric("replicator_parked_rows", direction=C2E) == 0 and parked_total(pair) == (0, 0)
    stop(pair)


# ---------------------------------------------------------------------------------------- 9. reload

RELOAD_PG = "CREATE TABLE customer (id int PRIMARY KEY, name text, city text)"
RELOAD_MY = """CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(100), display_name varchar(100),
                                       city varchar(50)) ENGINE=InnoDB"""
RELOAD_V1 = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: {erp: customer_name}
      city: ~
"""
RELOAD_V2 = RELOAD_V1.replace("customer_name", "display_name")
RELOAD_YAML_ERROR = RELOAD_V1.replace("city: ~", "city: {erp: city\n")
RELOAD_BAD_COLUMN = RELOAD_V1.replace("customer_name", "no_such_column")


def test_reload_keeps_running_mappings_on_errors_and_swaps_valid_ones(make_pair):
    pair = started(make_pair, RELOAD_PG, RELOAD_MY, RELOAD_V1)
    rows = lambda: erp(pair, "SELECT id, customer_name, display_name, city FROM customers ORDER BY id")  # noqa: E731
    failures = lambda: pair.metric("replicator_mapping_reload_failures_total")  # noqa: E731
    pair.pg_query("INSERT INTO customer VALUES (1, 'Ann', 'Oslo')")
    wait_for(pair, lambda: rows(), [(1, "Ann", None, "Oslo")], "first insert")
    loaded_at = pair.metric("replicator_mapping_last_reload_timestamp_seconds")
    assert failures() == 0

    # a YAML error: refused, counted, the daemon keeps the old mapping
    write_mappings(pair, RELOAD_YAML_ERROR)
    reload(pair)
    wait_for(pair, lambda: failures(), 1, "reload failure counted")
    pair.pg_query("INSERT INTO customer VALUES (2, 'Bob', 'Rome')")
    wait(pair, lambda: (2, "Bob", None, "Rome") in rows(), "replication with the old mapping")
    pair.my_query("UPDATE customers SET customer_name = 'Bobby' WHERE id = 2")
    wait_for(pair, lambda: crm(pair, "SELECT name FROM customer WHERE id = 2"), [("Bobby",)],
             "old mapping, erp to crm")

    # a mapping naming a column that does not exist: refused by the catalog check
    write_mappings(pair, RELOAD_BAD_COLUMN)
    reload(pair)
    wait_for(pair, lambda: failures(), 2, "second reload failure counted")
    pair.pg_query("INSERT INTO customer VALUES (3, 'Cy', 'Lima')")
    wait(pair, lambda: (3, "Cy", None, "Lima") in rows(), "still the old mapping")
    assert pair.metric("replicator_mapping_last_reload_timestamp_seconds") == loaded_at
    assert "mapping reload refused" in pair.log()

    # a valid new mapping: the name now goes to display_name. Changes made as soon as the reload is
    # reported (the metric is polled tightly) are new changes: they must follow the new mapping.
    write_mappings(pair, RELOAD_V2)
    reload(pair)
    deadline = time.monotonic() + 30
    while pair.metric("replicator_mapping_last_reload_timestamp_seconds") == loaded_at:
        alive(pair)
        assert time.monotonic() < deadline, "the valid mapping was not loaded"
        time.sleep(0.005)
    pair.pg_query("INSERT INTO customer VALUES (4, 'Dan', 'Kyiv')")
    pair.my_query("UPDATE customers SET display_name = 'Cyd', customer_name = 'Cyc' WHERE id = 3")
    wait(pair, lambda: crm(pair, "SELECT name FROM customer WHERE id = 3") != [("Cy",)]
         and erp(pair, "SELECT id FROM customers WHERE id = 4"), "the changes after the reload applied")
    assert erp(pair, "SELECT id, customer_name, display_name, city FROM customers WHERE id = 4") \
        == [(4, None, "Dan", "Kyiv")], "a CRM change made after the reload was applied with the old mapping"
    assert crm(pair, "SELECT name FROM customer WHERE id = 3") == [("Cyd",)], \
        "an ERP change made after the reload was applied with the old mapping"
    # a two-way mapping's update writes only the fields that changed (a new field is filled by `sync`)
    pair.pg_query("UPDATE customer SET name = 'Anna', city = 'Bergen' WHERE id = 1")
    wait_for(pair, lambda: erp(pair, "SELECT customer_name, display_name, city FROM customers WHERE id = 1"),
             [("Ann", "Anna", "Bergen")], "crm update with the new mapping")
    assert failures() == 2
    alive(pair)
    stop(pair)


# ------------------------------------------------- a renamed key: `replicator crosswalk rename` moves its pair

RENAME_PG = "CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL)"
RENAME_MY = "CREATE TABLE customers (code varchar(40) PRIMARY KEY, name varchar(100) NOT NULL) ENGINE=InnoDB"
RENAME_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [code], generate: {code: uuid}}
    link: {crosswalk: true}
    fields:
      name: ~
"""


def test_crosswalk_rename_moves_the_pair_of_a_renamed_record_from_either_database(make_pair):
    """ERPNext-style renames of the key on the ERP side: one record created in the ERP (its pair in the CRM's
    crosswalk, `source_key`), one created in the CRM (its pair in the ERP's crosswalk, `target_key`). The stream
    refuses each rename with the fix; `replicator crosswalk rename` with the daemon stopped moves each pair, and
    after the start the renames arrive, nothing is doubled, and each side's edits reach the renamed record."""
    pair = started(make_pair, RENAME_PG, RENAME_MY, RENAME_MAPPINGS)
    crm_rows = lambda: crm(pair, "SELECT id, name FROM customer ORDER BY id")  # noqa: E731
    erp_rows = lambda: erp(pair, "SELECT code, name FROM customers ORDER BY name")  # noqa: E731
    pair.my_query("INSERT INTO customers VALUES ('CUST-1', 'Grant')")
    wait_for(pair, crm_rows, [(1, "Grant")], "erp insert in crm")
    pair.pg_query("INSERT INTO customer (name) VALUES ('Acme')")
    wait(pair, lambda: len(erp_rows()) == 2, "crm insert in erp")
    acme_code = erp(pair, "SELECT code FROM customers WHERE name = 'Acme'")[0][0]

    # while the daemon runs, the command refuses: the stream caches pairs
    busy = pair.cli("crosswalk", "rename", "--mapping", "customers", "--side", "erp", "--from", "CUST-1",
                    "--to", "Grant Inc", check=False)
    assert busy.returncode == 1 and "a replicator daemon is running" in busy.stderr, busy.stderr

    pair.my_query("UPDATE customers SET code = 'Grant Inc', name = 'Grant Industries' WHERE code = 'CUST-1'")
    pair.my_query("UPDATE customers SET code = 'ACME-2', name = 'Acme Corp' WHERE code = %s", (acme_code,))
    wait_until(lambda: pair.proc.poll() is not None, 30, "the direction stops at the refused rename")
    assert 'the key changed from ["CUST-1"] to ["Grant Inc"]' in pair.log(), pair.log()[-3000:]
    assert ("`replicator crosswalk rename --mapping customers --side erp --from CUST-1 --to 'Grant Inc'`"
            in pair.log()), pair.log()[-3000:]

    def rename(old: str, new: str, check: bool = True) -> Any:
        return pair.cli("crosswalk", "rename", "--mapping", "customers", "--side", "erp", "--from", old, "--to", new,
                        check=check)
    # mistakes are clear errors that move nothing
    wrong = rename("CUST-9", "Grant Inc", check=False)
    assert wrong.returncode == 78 and 'no crosswalk pair of mapping customers holds erp key ["CUST-9"]' in wrong.stderr
    both = rename("Grant Inc", "ACME-2", check=False)  # both rows exist: two records, not a rename
    assert both.returncode == 78 and 'still holds a row with key ["Grant Inc"]' in both.stderr, both.stderr

    out = rename("CUST-1", "Grant Inc").stdout
    assert ('moved the crosswalk pair of mapping customers: erp key ["CUST-1"] -> ["Grant Inc"] (paired with crm '
            'key [1]; source_key in crm\'s crosswalk)') in out, out
    out = rename(acme_code, "ACME-2").stdout
    assert f'erp key ["{acme_code}"] -> ["ACME-2"] (paired with crm key [2]; target_key in erp\'s crosswalk)' in out
    assert crm_crosswalk(pair, "customers") == [("erp", '["Grant Inc"]', "[1]")]
    assert erp_crosswalk(pair, "customers") == [("crm", "[2]", '["ACME-2"]')]

    pair.start()
    wait_for(pair, crm_rows, [(1, "Grant Industries"), (2, "Acme Corp")], "both renames in crm, nothing doubled")
    pair.pg_query("UPDATE customer SET name = name || ' (crm)'")
    wait_for(pair, erp_rows, [("ACME-2", "Acme Corp (crm)"), ("Grant Inc", "Grant Industries (crm)")],
             "crm edits reach the renamed records")
    stop(pair)


def test_crosswalk_rename_moves_the_children_parked_under_the_old_key(make_pair):
    """An ERP contact of Acme (on both sides, not linked yet) parks in the CRM, waiting for ERP customer 5000. The
    CRM's next edit links Acme by its natural key in the other direction (the pair in the ERP's crosswalk), and the
    daemon stops before the contact's next retry. The ERP then renames Acme's key to 7100 (and its contact's
    reference with it). Before, the contact waited under 5000 for good -- its own parked row names 5000 too; now
    `crosswalk rename` moves it with the pair (the parked row in the CRM, the pair in the ERP: two databases), and at
    the start it is applied, referencing Acme, once."""
    pair = started(make_pair, CONTACT_PG, CONTACT_MY, CONTACT_MAPPINGS, first_sync=False)
    pair.my_query("INSERT INTO contacts (cust_no, phone) VALUES (5000, '+49 30 1234')")
    wait_for(pair, lambda: parked_total(pair), (0, 1), "the contact parked in the CRM")
    pair.pg_query("UPDATE customer SET city = 'Hamburg' WHERE id = 1")
    wait_for(pair, lambda: erp_crosswalk(pair, "customers"), [("crm", "[1]", "[5000]")], "Acme linked by crm_to_erp")
    stop(pair)
    assert parked_total(pair) == (0, 1)  # its retry (every minute) did not come

    pair.my_query("UPDATE customers SET cust_no = 7100 WHERE cust_no = 5000")
    pair.my_query("UPDATE contacts SET cust_no = 7100 WHERE cust_no = 5000")
    out = pair.cli("crosswalk", "rename", "--mapping", "customers", "--side", "erp", "--from", "5000",
                   "--to", "7100").stdout
    assert "erp key [5000] -> [7100] (paired with crm key [1]; target_key in erp's crosswalk)" in out, out
    assert "moved 1 change(s) parked until the record had a counterpart (in crm's parked) to the new key" in out, out
    assert erp_crosswalk(pair, "customers") == [("crm", "[1]", "[7100]")]
    (waiting,) = crm(pair, "SELECT waiting_mapping, waiting_key, change FROM replicator.parked")
    assert waiting[:2] == ("customers", "[7100]") and '"cust_no":7100,' in waiting[2], waiting

    pair.start()
    wait_for(pair, lambda: crm(pair, "SELECT customer_id, phone FROM contact"), [(1, "+49 30 1234")],
             "the parked contact applied, referencing Acme")
    wait_for(pair, lambda: crm(pair, "SELECT id, city FROM customer WHERE vat_id = 'DE100'"), [(1, "Hamburg")],
             "Acme's rename arrived, nothing doubled")
    assert parked_total(pair) == (0, 0)
    assert erp(pair, "SELECT cust_no, phone FROM contacts") == [(7100, "+49 30 1234")]
    stop(pair)
