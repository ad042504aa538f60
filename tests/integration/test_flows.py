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
import random
import re
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration.harness import Pair, wait_until

ROOT = Path(__file__).resolve().parents[2]
ERP_IDS = 1_000_000_000
DEBTORS = 100_000  # the ERP numbers its debtors (customers) from here; the CRM its accounts from 1


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
    # the databases start empty: no first-run copy (a sync copies whole rows, it does not decide conflicts,
    # and flow 2's test restarts the daemon)
    pair = make_pair("", "", "mappings: {}\n", "sync: {on_first_run: false}\n", setup=False)
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
    assert status == "EN" and ecust == erp_id(pair, "customers", "customer_no", "K000001") != cust
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
    wait_for(pair, lambda: crm(pair, "SELECT order_status::text, promised_date::text, erp_order_no FROM crm.quote "
                                     "WHERE id = %s", (qid,)), [("released", "2027-01-20", oid)],
             "ERP status, delivery date and order number on the quote")
    assert crm(pair, "SELECT status::text FROM crm.quote WHERE id = %s", (qid,)) == [("confirmed",)]
    assert erp(pair, "SELECT count(*) FROM sales_orders") == [(1,)]

    # an order the ERP takes itself (EDI: no quote) stays the ERP's: neither it, nor its lines, nor its
    # post-calculation are parked for a quote that never comes (issue 12)
    filtered = pair.metric("replicator_rows_filtered_total", direction="erp_to_crm", table="crm.quote_line") or 0
    edi = erp_exec(pair, "INSERT INTO sales_orders (customer_id, customer_po, total_net, status, origin) "
                         "VALUES (%s, 'EDI-ORDERS-77', 2400, 'IV', 'EDI')", (ecust,))
    erp_exec(pair, "INSERT INTO sales_order_lines (sales_order_id, line_no, item_id, quantity, unit_price, line_net, "
                   "unit_cost, line_cost, origin) VALUES (%s, 10, %s, 2, 1200, 2400, 700, 1400, 'EDI')",
             (edi, items[0]))
    erp_exec(pair, "INSERT INTO order_costs (sales_order_id, revenue, material_cost, labour_cost, overhead_cost, "
                   "total_cost, contribution, costed_at, origin) VALUES (%s, 2400, 900, 300, 200, 1400, 1000, "
                   "'2026-12-01 10:00:00', 'EDI')", (edi,))
    erp_exec(pair, "UPDATE sales_orders SET status = 'IP' WHERE id = %s", (oid,))  # a later change: arrives after
    wait_for(pair, lambda: crm(pair, "SELECT order_status::text FROM crm.quote WHERE id = %s", (qid,)),
             [("in_production",)], "the CRM order's next status")
    assert pair.metric("replicator_parked_rows", direction="erp_to_crm") in (None, 0)
    assert pair.metric("replicator_rows_filtered_total", direction="erp_to_crm", table="crm.quote_line") == filtered + 1
    assert crm(pair, "SELECT count(*) FROM crm.quote") == [(1,)] and crm(pair, "SELECT count(*) FROM crm.order_margin") \
        == [(0,)]


# -------------------------------------------------------------------------------- flow 2

def test_flow2_accounts_created_on_either_side_and_edited_on_both_agree(flows: Pair) -> None:
    pair = flows
    # created in the CRM: the ERP numbers the account itself, linked by the account number (crosswalk)
    cid = crm_customer(pair, "K000001", "Brandt Maschinenbau GmbH")
    eid = erp_id(pair, "customers", "customer_no", "K000001")
    assert cid < DEBTORS <= eid < ERP_IDS
    assert erp(pair, f"SELECT source_key, target_key FROM `{pair.state_schema}`.crosswalk "
                     f"WHERE mapping = 'customers' AND source_side = 'crm'") == [(f"[{cid}]", f"[{eid}]")]
    # created in the ERP (accounts receivable): the CRM numbers it itself and gets the whole account
    new = erp_exec(pair, "INSERT INTO customers (customer_no, name, city, email, credit_limit, payment_terms) "
                         "VALUES ('D900001', 'Vogel Hydraulik KG', 'Bremen', 'ap@vogel.de', 25000, 'NET60')")
    assert DEBTORS <= new < ERP_IDS
    wait_for(pair, lambda: crm(pair, "SELECT account_name, city, email, credit_limit, payment_terms::text "
                                     "FROM crm.customer WHERE customer_no = 'D900001'"),
             [("Vogel Hydraulik KG", "Bremen", "ap@vogel.de", Decimal("25000.00"), "NET60")],
             "ERP account in the CRM")
    vogel = crm(pair, "SELECT id FROM crm.customer WHERE customer_no = 'D900001'")[0][0]
    assert vogel < DEBTORS and vogel != new

    # other flows follow the link: a contact of each account points at the ERP's own debtor number
    k1 = crm(pair, "INSERT INTO crm.contact (customer_id, first_name, last_name, is_primary) "
                   "VALUES (%s, 'Jana', 'Brandt', true) RETURNING id", (cid,))[0][0]
    k2 = crm(pair, "INSERT INTO crm.contact (customer_id, first_name, last_name, is_primary) "
                   "VALUES (%s, 'Ole', 'Vogel', true) RETURNING id", (vogel,))[0][0]
    wait_for(pair, lambda: erp(pair, "SELECT id, customer_id FROM contacts ORDER BY id"), [(k1, eid), (k2, new)],
             "contacts on the ERP's debtors")

    # the money side belongs to the ERP: its edit flows; the CRM's edit of it does not (the name, edited
    # in the same CRM transaction, does)
    erp_exec(pair, "UPDATE customers SET credit_limit = 50000, credit_blocked = 1 WHERE id = %s", (eid,))
    wait_for(pair, lambda: crm(pair, "SELECT credit_limit, credit_blocked FROM crm.customer WHERE id = %s", (cid,)),
             [(Decimal("50000.00"), True)], "credit line in the CRM")
    crm(pair, "UPDATE crm.customer SET credit_limit = 1, account_name = 'Brandt Fördertechnik GmbH' WHERE id = %s",
        (cid,))
    wait_for(pair, lambda: erp(pair, "SELECT name FROM customers WHERE id = %s", (eid,)),
             [("Brandt Fördertechnik GmbH",)], "the CRM's name edit in the ERP")
    assert erp(pair, "SELECT credit_limit FROM customers WHERE id = %s", (eid,)) == [(Decimal("50000.00"),)]

    # both sides edit the same field before either edit is replicated: one rule decides, alike on both sides.
    # The ERP's edit commits 2 s after the CRM's (commit times count in whole seconds): `latest` by commit
    # time makes it the winner on both sides. (Edits within one second are a tie, which the first connection,
    # the CRM, wins: that is what the demo's races showed every time while its two edits committed together.)
    assert pair.stop() == 0
    crm(pair, "UPDATE crm.customer SET phone = '+49 40 2222' WHERE id = %s", (cid,))
    time.sleep(2.1)
    erp_exec(pair, "UPDATE customers SET phone = '+49 40 3333', street = 'Hafenweg 1' WHERE id = %s", (eid,))
    pair.proc = None
    pair.start()
    same = lambda: (crm(pair, "SELECT phone, street FROM crm.customer WHERE id = %s", (cid,)),  # noqa: E731
                    erp(pair, "SELECT phone, street FROM customers WHERE id = %s", (eid,)))
    # the street, edited on one side only, is no conflict and survives
    wait_for(pair, same, ([("+49 40 3333", "Hafenweg 1")], [("+49 40 3333", "Hafenweg 1")]), "both sides agree")
    listed = pair.cli("conflicts", "--mapping", "customers", "--json").stdout.splitlines()
    records = [json.loads(line) for line in listed if line.strip()]
    phone = [r for r in records if r["field"] == "phone"]
    # decided by the two commit times (not by the fallback for an unknown time), in each direction
    assert phone and all(r["kind"] == "update_differs" and r["rule"] == "latest" and r["winner"] == "erp"
                         and r["detail"].endswith("erp's commit is later") for r in phone), records
    assert not [r for r in records if r["field"] == "street"], records
    # recorded in both sides' <state>.conflicts: the same decision
    stored = crm(pair, "SELECT count(*) FROM replicator.conflicts WHERE mapping = 'customers'")[0][0] + \
        erp(pair, f"SELECT count(*) FROM `{pair.state_schema}`.conflicts WHERE mapping = 'customers'")[0][0]
    assert stored >= 1, records


def test_flow2_the_demos_two_sided_edit_is_won_by_the_later_commit(flows: Pair) -> None:
    """demo/traffic.py's both_edit_customer against the running daemon: each time the side it announces
    as committing later wins on both sides, decided by the two commit times. (Before, its two edits
    committed milliseconds apart: a tie in whole seconds, which the CRM, the first connection, always won.)"""
    import importlib.util

    from replicator.config import load

    pair = flows
    crm_customer(pair, "K000001", "Brandt Maschinenbau GmbH")
    spec = importlib.util.spec_from_file_location("demo_traffic", ROOT / "demo" / "traffic.py")
    assert spec is not None and spec.loader is not None
    traffic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(traffic)
    sides = traffic.Sides(load(pair.config_path))
    winners = []
    try:
        for seed in range(4):
            t = traffic.Traffic(sides, random.Random(seed))
            line = t.run("both", t.both_edit_customer)
            m = re.search(r"phone set to (.+) in the CRM and to (.+) in the ERP at once, the (CRM|ERP) committing", line)
            assert m, line
            later = m.group(3).lower()
            phone = m.group(1) if later == "crm" else m.group(2)
            winners.append(later)
            wait_for(pair, lambda: (crm(pair, "SELECT phone FROM crm.customer WHERE customer_no = 'K000001'"),
                                    erp(pair, "SELECT phone FROM customers WHERE customer_no = 'K000001'")),
                     ([(phone,)], [(phone,)]), f"the {later}'s phone on both sides ({line})")
    finally:
        sides.close()
    assert set(winners) == {"crm", "erp"}, winners  # both orders were raced
    wait_until(lambda: crm(pair, "SELECT count(*) FROM replicator.conflicts")[0][0] == 4 and
               erp(pair, f"SELECT count(*) FROM `{pair.state_schema}`.conflicts")[0][0] == 4, 30, "8 records")
    for q in (crm, erp):
        schema = "replicator" if q is crm else f"`{pair.state_schema}`"
        got = q(pair, f"SELECT winner, detail FROM {schema}.conflicts WHERE field = 'phone' ORDER BY id")
        assert [w for w, _ in got] == winners and all(d.endswith(f"{w}'s commit is later") for w, d in got), got


# -------------------------------------------------------------------------------- flow 3

def test_flow3_products_boms_and_configurations_get_the_erps_item_numbers(flows: Pair) -> None:
    pair = flows
    motor = crm_product(pair, "GM-00001", kind="purchased", price="310.00")
    config = {"width_mm": 1200, "voltage": 400, "options": ["stainless", "washdown"]}
    conn = pair.pg.connect()
    with conn, conn.cursor() as cur:  # the product and its BOM agreed in one CRM transaction
        cur.execute("INSERT INTO crm.product (sku, name, product_type, list_price, configuration) "
                    "VALUES ('FB-00042', 'Förderband 1200', 'manufactured', 8400, %s) RETURNING id",
                    (json.dumps(config),))
        belt = cur.fetchone()[0]
        cur.execute("INSERT INTO crm.bom_line (product_id, position, component_product_id, quantity, note) "
                    "VALUES (%s, 10, %s, 2, 'Kundenvorgabe'), (%s, 20, %s, 1, NULL)", (belt, motor, belt, motor))
    conn.close()
    wait_for(pair, lambda: len(erp(pair, "SELECT id FROM boms")), 2, "the BOM in the ERP")
    item, motor_item = erp_id(pair, "items", "item_no", "FB-00042"), erp_id(pair, "items", "item_no", "GM-00001")
    assert item >= ERP_IDS and motor_item >= ERP_IDS and item != belt
    row = erp(pair, "SELECT item_type, description, list_price, configuration FROM items WHERE id = %s", (item,))[0]
    assert row[:3] == ("FERT", "Förderband 1200", Decimal("8400.00")) and json.loads(row[3]) == config
    assert erp(pair, "SELECT item_type FROM items WHERE id = %s", (motor_item,)) == [("HAWA",)]
    assert erp(pair, "SELECT parent_item_id, line_no, component_item_id, quantity, remark FROM boms ORDER BY line_no") \
        == [(item, 10, motor_item, Decimal("2.0000"), "Kundenvorgabe"), (item, 20, motor_item, Decimal("1.0000"), None)]
    # a change of the agreed configuration reaches the item
    crm(pair, "UPDATE crm.product SET configuration = configuration || '{\"voltage\": 230}' WHERE id = %s", (belt,))
    wait_for(pair, lambda: json.loads(erp(pair, "SELECT configuration FROM items WHERE id = %s", (item,))[0][0])
             ["voltage"], 230, "new configuration")


# -------------------------------------------------------------------------------- flows 1 and 5

def test_flow1_and_5_actual_cost_margin_and_profitability_reach_the_crm(flows: Pair) -> None:
    pair = flows
    qid, oid, products = confirmed_order(pair, lines=2)
    cust = crm(pair, "SELECT customer_id FROM crm.quote WHERE id = %s", (qid,))[0][0]
    ecust = erp_id(pair, "customers", "customer_no", "K000001")  # the ERP's own number of the account
    item = erp_id(pair, "items", "item_no", "FB-00001")
    # the ERP costs the order lines, post-calculates the invoiced order, runs standard costing and
    # the yearly profitability: each in its own tables, with its own numbers
    erp_exec(pair, "UPDATE sales_order_lines SET unit_cost = 700.5, line_cost = 700.50 WHERE sales_order_id = %s",
             (oid,))
    erp_exec(pair, "UPDATE sales_orders SET status = 'IV' WHERE id = %s", (oid,))
    erp_exec(pair, "INSERT INTO order_costs (sales_order_id, revenue, material_cost, labour_cost, overhead_cost, "
                   "freight_cost, total_cost, contribution, margin_pct, costed_at) "
                   "VALUES (%s, 2400, 900, 350, 151, 120, 1521, 879, 36.63, '2026-12-01 10:00:00')", (oid,))
    erp_exec(pair, "INSERT INTO item_costs (item_id, cost_version, standard_cost, material_cost, labour_cost, "
                   "overhead_cost, margin_pct, costed_at) VALUES (%s, 'STD2026-4', 690.1234, 450, 180, 60.1234, "
                   "42.49, '2026-12-01 10:00:00')", (item,))
    erp_exec(pair, "INSERT INTO customer_profitability (customer_id, fiscal_year, order_count, revenue, "
                   "cost_of_sales, gross_profit, gross_margin_pct, computed_at) "
                   "VALUES (%s, 2026, 1, 2400, 1521, 879, 36.63, '2026-12-01 10:00:00')", (ecust,))
    wait_for(pair, lambda: crm(pair, "SELECT quote_id, revenue, total_cost, margin, margin_pct FROM crm.order_margin"),
             [(qid, Decimal("2400.00"), Decimal("1521.00"), Decimal("879.00"), Decimal("36.63"))],
             "the order's actual margin on its quote")
    wait_for(pair, lambda: crm(pair, "SELECT product_id, standard_cost, cost_version FROM crm.product_cost"),
             [(products[0], Decimal("690.1234"), "STD2026-4")], "standard cost on the CRM product")
    wait_for(pair, lambda: crm(pair, "SELECT customer_id, fiscal_year, gross_profit FROM crm.customer_profitability"),
             [(cust, 2026, Decimal("879.00"))], "profitability on the CRM account")
    wait_for(pair, lambda: crm(pair, "SELECT line_no, unit_cost, line_cost FROM crm.quote_line WHERE quote_id = %s "
                                     "ORDER BY line_no", (qid,)),
             [(10, Decimal("700.5000"), Decimal("700.50")), (20, Decimal("700.5000"), Decimal("700.50"))],
             "the line cost on the quote lines")
    assert crm(pair, "SELECT order_status::text FROM crm.quote WHERE id = %s", (qid,)) == [("invoiced",)]
    # the ERP withdraws the year's profitability row: the delete finds the CRM's row through the account's
    # link (the key column is a reference; it used to look for the ERP's debtor number in the CRM)
    assert ecust != cust
    erp_exec(pair, "DELETE FROM customer_profitability WHERE customer_id = %s AND fiscal_year = 2026", (ecust,))
    wait_for(pair, lambda: crm(pair, "SELECT count(*) FROM crm.customer_profitability"), [(0,)],
             "the profitability row deleted in the CRM")


# -------------------------------------------------------------------------------- flow 6

def test_flow6_complaints_and_service_records_both_ways_in_each_sides_codes(flows: Pair) -> None:
    pair = flows
    qid, oid, products = confirmed_order(pair, lines=1)
    cust = crm(pair, "SELECT customer_id FROM crm.quote WHERE id = %s", (qid,))[0][0]
    ecust = erp_id(pair, "customers", "customer_no", "K000001")  # the ERP's own number of the account
    # once the ERP works on the order (its first change after replicator created it), the CRM quote shows
    # the ERP's order number; sales logs a complaint about that order
    erp_exec(pair, "UPDATE sales_orders SET status = 'DL' WHERE id = %s", (oid,))
    wait_for(pair, lambda: crm(pair, "SELECT erp_order_no FROM crm.quote WHERE id = %s", (qid,)), [(oid,)],
             "ERP order number on the quote")
    kid = crm(pair, "INSERT INTO crm.complaint (customer_id, quote_id, erp_order_no, product_id, reported_at, channel, "
                    "category, severity, subject) VALUES (%s, %s, %s, %s, '2026-12-02 09:00:00+00', 'phone', "
                    "'quality', 2, 'Lager läuft heiß') RETURNING id", (cust, qid, oid, products[0]))[0][0]
    wait_for(pair, lambda: erp(pair, "SELECT customer_id, sales_order_id, status FROM complaints WHERE id = %s",
                               (kid,)), [(ecust, oid, "NEW")], "complaint in the ERP")
    # quality management works on it in the ERP: a repair, then closed with a credit note
    sid = erp_exec(pair, "INSERT INTO service_records (complaint_id, customer_id, performed_at, record_type, "
                         "technician, labour_hours, cost) VALUES (%s, %s, '2026-12-03 08:00:00', 'REPAIR', "
                         "'K. Nowak', 2.5, 480)", (kid, ecust))
    assert sid >= ERP_IDS
    erp_exec(pair, "UPDATE complaints SET status = 'CLO', credit_note_amount = 250, resolution = 'Lager getauscht', "
                   "closed_at = '2026-12-04 12:00:00' WHERE id = %s", (kid,))
    wait_for(pair, lambda: crm(pair, "SELECT record_type, performed_by, cost FROM crm.service_record WHERE id = %s",
                               (sid,)), [("repair", "K. Nowak", Decimal("480.00"))], "ERP repair in the CRM")
    wait_for(pair, lambda: crm(pair, "SELECT status, credit_note_amount, resolution FROM crm.complaint WHERE id = %s",
                               (kid,)), [("closed", Decimal("250.00"), "Lager getauscht")], "closed in the CRM")
    # service follows up from the CRM: a call, in the ERP's code
    sid2 = crm(pair, "INSERT INTO crm.service_record (complaint_id, customer_id, performed_at, record_type, "
                     "performed_by) VALUES (%s, %s, now(), 'call', 'M. Yilmaz') RETURNING id", (kid, cust))[0][0]
    wait_for(pair, lambda: erp(pair, "SELECT record_type, customer_id FROM service_records WHERE id = %s", (sid2,)),
             [("CALL", ecust)], "CRM call in the ERP")
