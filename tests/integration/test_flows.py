"""The six reference flows (mappings/*.yaml on demo/schema/*.sql), each asserting its business outcome.

Every test loads the shipped reference schemas into throwaway databases, runs `replicator setup`
with all six shipped mapping files, starts the daemon and plays one piece of business: a quote
confirmed (twice) becomes one ERP order with its lines, an account is created on either side and
edited on both at once, a product with its BOM reaches the item master, the ERP's costs and margins
reach the CRM, a complaint is handled on both sides. Nothing is asserted after a sleep: each test
waits for the change that must arrive.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration.harness import Pair, wait_until

ROOT = Path(__file__).resolve().parents[2]
ERP_IDS = 1_000_000_000


# ------------------------------------------------------------------------------------------ helpers

def _mariadb_statements(text: str) -> list[str]:
    """erp.sql without its CREATE DATABASE / USE (the test's own database is the ERP's)."""
    text = re.sub(r"--[^\n]*", "", text)
    out = []
    for stmt in re.split(r";\s*\n", text):
        stmt = stmt.strip()
        if stmt and not re.match(r"(CREATE\s+DATABASE|USE)\b", stmt, re.IGNORECASE):
            out.append(stmt)
    return out


@pytest.fixture
def flows(make_pair: Callable[..., Pair], pg_db: Any, maria_db: Any) -> Pair:
    """A daemon running the shipped mappings between the reference CRM and ERP schemas."""
    conn = pg_db.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute((ROOT / "demo" / "schema" / "crm.sql").read_text(encoding="utf-8"))
    finally:
        conn.close()
    conn = maria_db.connect()
    try:
        with conn.cursor() as cur:
            for stmt in _mariadb_statements((ROOT / "demo" / "schema" / "erp.sql").read_text(encoding="utf-8")):
                cur.execute(stmt)
        conn.commit()
    finally:
        conn.close()
    pair = make_pair("", "", "mappings: {}\n", setup=False)
    target = pair.tmp / "mappings"
    for old in target.iterdir():
        old.unlink()
    for src in sorted((ROOT / "mappings").glob("*.yaml")):
        shutil.copy(src, target / src.name)
    pair.setup()
    pair.start()
    yield pair
    if pair.proc is not None and pair.proc.poll() is None:
        assert pair.stop() == 0, pair.log()[-4000:]


def wait_for(pair: Pair, fn: Callable[[], Any], expected: Any, what: str, timeout: float = 30) -> None:
    last: list[Any] = [None]

    def check() -> bool:
        assert pair.proc is not None and pair.proc.poll() is None, f"daemon exited:\n{pair.log()[-4000:]}"
        last[0] = fn()
        return bool(last[0] == expected)
    try:
        wait_until(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: expected {expected!r}, last seen {last[0]!r}\n{pair.log()[-3000:]}") from None


def crm(pair: Pair, sql: str, params: Any = None) -> list[tuple]:
    return [tuple(r) for r in pair.pg_query(sql, params)]


def erp(pair: Pair, sql: str, params: Any = None) -> list[tuple]:
    return [tuple(r) for r in pair.my_query(sql, params)]


def erp_exec(pair: Pair, sql: str, params: Any = None) -> int:
    """One ERP transaction, committed; the last insert id."""
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            last = cur.lastrowid
        conn.commit()
        return int(last or 0)
    finally:
        conn.close()


def crm_customer(pair: Pair, no: str = "K000001", name: str = "Brandt Maschinenbau GmbH") -> int:
    cid = crm(pair, "INSERT INTO crm.customer (customer_no, account_name, vat_id, city, email, phone) "
                    "VALUES (%s, %s, 'DE123456789', 'Hamburg', 'info@brandt.de', '+49 40 1000') RETURNING id",
              (no, name))[0][0]
    wait_for(pair, lambda: len(erp(pair, "SELECT id FROM customers WHERE customer_no = %s", (no,))), 1,
             f"account {no} in the ERP")
    return int(cid)


def crm_product(pair: Pair, sku: str, kind: str = "manufactured", price: str = "1200.00") -> int:
    pid = crm(pair, "INSERT INTO crm.product (sku, name, product_type, list_price, configuration) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
              (sku, f"Förderband {sku}", kind, price, json.dumps({"width_mm": 800, "options": ["atex"]})))[0][0]
    wait_for(pair, lambda: len(erp(pair, "SELECT id FROM items WHERE item_no = %s", (sku,))), 1, f"item {sku}")
    return int(pid)


def erp_id(pair: Pair, table: str, column: str, value: Any) -> int:
    return int(erp(pair, f"SELECT id FROM `{table}` WHERE `{column}` = %s", (value,))[0][0])


def draft_quote(pair: Pair, customer: int, products: list[int], quote_no: str = "Q000001") -> int:
    """A quote with one line per product, in one CRM transaction."""
    conn = pair.pg.connect()
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO crm.quote (quote_no, customer_id, status, total_net, requested_delivery, "
                    "customer_po) VALUES (%s, %s, 'draft', 3600, '2027-01-15', 'PO-4711') RETURNING id",
                    (quote_no, customer))
        qid = cur.fetchone()[0]
        for no, pid in enumerate(products, start=1):
            cur.execute("INSERT INTO crm.quote_line (quote_id, line_no, product_id, quantity, unit_price, line_net) "
                        "VALUES (%s, %s, %s, 1, 1200, 1200)", (qid, no * 10, pid))
    conn.close()
    return int(qid)


def confirmed_order(pair: Pair, lines: int = 3) -> tuple[int, int, list[int]]:
    """(CRM quote id, ERP order id, CRM product ids) of a quote with `lines` lines, confirmed."""
    cust = crm_customer(pair)
    products = [crm_product(pair, f"FB-{n:05d}") for n in range(1, lines + 1)]
    qid = draft_quote(pair, cust, products)
    crm(pair, "UPDATE crm.quote SET status = 'confirmed', confirmed_at = now() WHERE id = %s", (qid,))
    wait_for(pair, lambda: len(erp(pair, "SELECT id FROM sales_order_lines")), lines, "the order's lines")
    return qid, erp_id(pair, "sales_orders", "crm_quote_no", "Q000001"), products


# -------------------------------------------------------------------------------- flow 4

def test_flow4_confirmed_quote_becomes_one_erp_order_with_its_lines_and_status_comes_back(flows: Pair) -> None:
    pair = flows
    cust = crm_customer(pair)
    products = [crm_product(pair, f"FB-{n:05d}") for n in (1, 2, 3)]
    qid = draft_quote(pair, cust, products)
    # a draft (and a sent quote) is no order: its lines wait
    crm(pair, "UPDATE crm.quote SET status = 'sent' WHERE id = %s", (qid,))
    wait_for(pair, lambda: pair.metric("replicator_parked_rows", direction="crm_to_erp"), 3, "draft lines parked")
    assert erp(pair, "SELECT count(*) FROM sales_orders") == [(0,)]

    seen: set[tuple[int, int]] = set()
    done = threading.Event()

    def watch() -> None:
        conn = pair.maria.connect()
        try:
            with conn.cursor() as cur:
                while not done.is_set():
                    cur.execute("SELECT (SELECT count(*) FROM sales_orders), (SELECT count(*) FROM sales_order_lines)")
                    seen.add(tuple(cur.fetchone()))
                    conn.commit()
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        crm(pair, "UPDATE crm.quote SET status = 'confirmed', confirmed_at = now() WHERE id = %s", (qid,))
        wait_until(lambda: (1, 3) in seen, 30, "order with its three lines")
    finally:
        done.set()
        watcher.join()
    assert seen <= {(0, 0), (1, 3)}, f"the ERP showed an order without all its lines: {sorted(seen)}"

    # the ERP numbered the order itself; the lines point at it and at the ERP's own item numbers
    order = erp(pair, "SELECT id, customer_id, crm_quote_no, customer_po, total_net, status FROM sales_orders")
    assert len(order) == 1
    oid, ecust, quote_no, po, total, status = order[0]
    assert oid >= ERP_IDS and quote_no == "Q000001" and po == "PO-4711" and total == Decimal("3600.00")
    assert status == "EN" and ecust == erp_id(pair, "customers", "customer_no", "K000001")
    items = [erp_id(pair, "items", "item_no", f"FB-{n:05d}") for n in (1, 2, 3)]
    assert erp(pair, "SELECT sales_order_id, line_no, item_id FROM sales_order_lines ORDER BY line_no") == \
        [(oid, 10, items[0]), (oid, 20, items[1]), (oid, 30, items[2])]

    # confirmed twice (reopened, confirmed again): still one order, updated
    crm(pair, "UPDATE crm.quote SET status = 'sent', customer_po = 'PO-4712' WHERE id = %s", (qid,))
    crm(pair, "UPDATE crm.quote SET status = 'confirmed', total_net = 3700 WHERE id = %s", (qid,))
    wait_for(pair, lambda: erp(pair, "SELECT id, customer_po, total_net FROM sales_orders"),
             [(oid, "PO-4712", Decimal("3700.00"))], "re-confirmation updates the one order")

    # the ERP releases and promises a date, then ships: the CRM quote shows it, in its own words
    erp_exec(pair, "UPDATE sales_orders SET status = 'RL', promised_date = '2027-01-20' WHERE id = %s", (oid,))
    wait_for(pair, lambda: crm(pair, "SELECT order_status::text, promised_date::text FROM crm.quote WHERE id = %s",
                               (qid,)), [("released", "2027-01-20")], "ERP status and delivery date on the quote")
    assert crm(pair, "SELECT status::text FROM crm.quote WHERE id = %s", (qid,)) == [("confirmed",)]
    assert erp(pair, "SELECT count(*) FROM sales_orders") == [(1,)]
