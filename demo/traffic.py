"""Live traffic for the replicator demo: a CRM and an ERP at work, and proof that they agree.

    python demo/traffic.py --config demo-data/replicator.yaml [--rate 4] [--seconds 0]
                           [--check-every 10] [--seed N]

Writes business activity into both databases, a few actions per second, one line per action:

  CRM (PostgreSQL): new accounts with contacts, contact changes, new products with bills of
      materials, quotes, confirmed quotes (flow 4 turns the quote itself into the ERP order),
      complaints and service calls.
  ERP (MariaDB):    new accounts, credit limit / payment term / credit block changes, invoice
      recipients, orders received by EDI (the ERP's alone), order status and delivery updates,
      order post-calculation, standard costing,
      customer profitability, returns with credit notes, service work.
  both:             now and then the same account edited on both sides at once (a conflict,
      decided by flow 2's `latest` rule; scripts/demo lists them with `replicator conflicts`).

Empty databases first get a quick opening round (accounts, products, orders taken all the way
to invoicing, complaints), so that every mapping has rows within seconds; --seconds counts the
steady traffic after it.

Every --check-every seconds it stops writing and runs `replicator verify` until both sides agree
through the mappings (crosswalks, value maps and all), then prints one line with the rows checked
per mapping. It runs until --seconds have passed (default: until Ctrl-C) and ends with a last
check; the exit code is 0 when the last check agreed.

Rows each side writes follow the demo's rules: shared ids come from the side's own sequence (the
CRM from 1, the ERP from 1 000 000 000); the ERP numbers its debtors, items and orders itself; only
the CRM creates contacts, products and the orders that are quotes (EDI orders stay in the ERP); a
complaint's status is driven by the side that opened it.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Callable

import psycopg2
import psycopg2.extras
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from replicator.config import Config, load  # noqa: E402

CENT = Decimal("0.01")
# the later of the two edits of both_edit_customer commits this much later: more than the whole second
# commit times are compared in, so the race has a later edit for `latest` to find
RACE_SECONDS = 1.5

COMPANY_A = ["Brandt", "Keller", "Hofmann", "Wagner", "Lindner", "Vogel", "Krüger", "Seidel", "Albrecht",
             "Nordwerk", "Rheintal", "Elbe", "Alpen", "Hanse", "Weser", "Taunus", "Spree", "Isar"]
COMPANY_B = ["Maschinenbau", "Fördertechnik", "Antriebstechnik", "Verpackung", "Anlagenbau", "Metallbau",
             "Hydraulik", "Automation", "Lebensmitteltechnik", "Kunststofftechnik", "Logistik"]
LEGAL = ["GmbH", "GmbH & Co. KG", "AG", "KG", "SE"]
CITIES = [("20095", "Hamburg"), ("28195", "Bremen"), ("80331", "München"), ("70173", "Stuttgart"),
          ("50667", "Köln"), ("04109", "Leipzig"), ("90402", "Nürnberg"), ("30159", "Hannover"),
          ("44135", "Dortmund"), ("01067", "Dresden"), ("68159", "Mannheim"), ("33602", "Bielefeld")]
STREETS = ["Industriestraße", "Hafenweg", "Am Gewerbepark", "Werkstraße", "Mühlenweg", "Lindenallee"]
FIRST = ["Anna", "Jonas", "Lea", "Felix", "Sophie", "Lukas", "Marie", "Paul", "Laura", "Tim", "Julia", "Max"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Becker", "Schulz", "Koch", "Richter"]
TITLES = ["Einkaufsleiter", "Technischer Leiter", "Geschäftsführer", "Buchhaltung", "Projektingenieur",
          "Leiter Instandhaltung"]
PRODUCTS = [("Förderband", "FB"), ("Getriebemotor", "GM"), ("Hydraulikaggregat", "HA"), ("Schaltschrank", "SS"),
            ("Rollenbahn", "RB"), ("Hubtisch", "HT"), ("Dosierpumpe", "DP"), ("Schneckenförderer", "SF"),
            ("Kühlaggregat", "KA"), ("Greifer", "GR"), ("Sensorleiste", "SL"), ("Steuerungseinheit", "ST")]
COMPLAINTS = {
    "quality": ["Lager läuft heiß", "Undichtigkeit am Flansch", "Lackschäden", "Maßabweichung am Gehäuse"],
    "delivery": ["Lieferung unvollständig", "Liefertermin überschritten", "Transportschaden"],
    "invoice": ["Rechnungsbetrag weicht vom Angebot ab", "Skonto nicht berücksichtigt"],
    "documentation": ["Prüfzertifikat fehlt", "Betriebsanleitung in falscher Sprache"],
    "service": ["Techniker nicht erschienen", "Ersatzteil falsch geliefert"],
}
ORDER_FLOW = ["EN", "RL", "IP", "SH", "DL", "IV"]  # the ERP's order status codes (flow 4 maps them)
ORDER_WORDS = {"EN": "entered", "RL": "released", "IP": "in production", "SH": "shipped", "DL": "delivered",
               "IV": "invoiced", "CX": "cancelled"}
TECHNICIANS = ["S. Brandl", "M. Yilmaz", "K. Nowak", "T. Hansen", "R. Costa"]


def money(x: Any) -> Decimal:
    return Decimal(x).quantize(CENT, ROUND_HALF_UP)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Skip(Exception):
    """An action that has nothing to work on yet; another one is chosen."""


# ---------------------------------------------------------------------------------- the two sides


class Sides:
    def __init__(self, config: Config):
        self.config = config
        crm, erp = config.side("crm"), config.side("erp")
        self.pg = psycopg2.connect(host=crm.host, port=crm.port, dbname=crm.database, user=crm.apply.user,
                                   password=crm.apply.password.value, application_name="demo-traffic",
                                   options="-c timezone=UTC")
        self.my = pymysql.connect(host=erp.host, port=erp.port, database=erp.database, user=erp.apply.user,
                                  password=erp.apply.password.value, charset="utf8mb4", autocommit=False,
                                  init_command="SET time_zone = '+00:00'")

    def close(self) -> None:
        for db in (self.pg, self.my):
            try:
                db.close()
            except Exception:
                pass

    # small query helpers, each inside the current transaction
    def crm(self, sql: str, params: Any = None) -> list[tuple]:
        with self.pg.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def crm_one(self, sql: str, params: Any = None) -> tuple | None:
        rows = self.crm(sql, params)
        return rows[0] if rows else None

    def erp(self, sql: str, params: Any = None) -> list[tuple]:
        with self.my.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def erp_one(self, sql: str, params: Any = None) -> tuple | None:
        rows = self.erp(sql, params)
        return rows[0] if rows else None

    def crm_next_id(self, table: str) -> int:
        return self.crm_one("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", (table,))[0]


# ---------------------------------------------------------------------------------- actions


class Traffic:
    def __init__(self, sides: Sides, rng: random.Random):
        self.s = sides
        self.rng = rng
        # (side, weight, action)
        # an order needs five ERP steps from entered to invoiced: the weights keep the ERP ahead of
        # the orders the CRM and EDI create, so orders keep reaching the post-calculation
        self.actions: list[tuple[str, int, Callable[[], str]]] = [
            ("crm", 2, self.crm_new_customer),
            ("erp", 1, self.erp_new_customer),
            ("both", 1, self.both_edit_customer),
            ("crm", 3, self.crm_update_contact),
            ("crm", 1, self.crm_remove_contact),
            ("crm", 1, self.crm_new_product),
            ("crm", 3, self.crm_new_quote),
            ("crm", 2, self.crm_confirm_quote),
            ("crm", 1, self.crm_complaint),
            ("crm", 2, self.crm_service_call),
            ("erp", 3, self.erp_credit_change),
            ("erp", 1, self.erp_invoice_recipient),
            ("erp", 14, self.erp_advance_order),
            ("erp", 3, self.erp_confirm_orders),
            ("erp", 1, self.erp_edi_order),
            ("erp", 2, self.erp_item_costing),
            ("erp", 2, self.erp_customer_profitability),
            ("erp", 1, self.erp_return),
            ("erp", 1, self.erp_service_work),
        ]
        self.count = {"crm": 0, "erp": 0, "both": 0}

    def step(self) -> str | None:
        """Run one randomly chosen action in its own transaction; returns the line to print."""
        for _ in range(10):
            side, _w, action = self.rng.choices(self.actions, weights=[a[1] for a in self.actions])[0]
            try:
                return self.run(side, action)
            except Skip:
                continue
        return None

    def run(self, side: str, action: Callable[[], str]) -> str:
        """One action in its own transaction; raises Skip when it had nothing to work on."""
        dbs = {"crm": [self.s.pg], "erp": [self.s.my], "both": [self.s.pg, self.s.my]}[side]
        try:
            text = action()
            for db in dbs:
                db.commit()
        except Skip:
            for db in dbs:
                db.rollback()
            raise
        except (psycopg2.Error, pymysql.MySQLError) as exc:
            for db in dbs:
                db.rollback()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"[{side}] {action.__name__}: skipped ({first})"
        self.count[side] += 1
        return f"[{side}] {text}"

    # An empty pair of databases gets a quick opening round, so that every flow has data within
    # seconds: accounts, products, orders that go all the way to invoicing, complaints. Between
    # the rounds the traffic waits until the other side has the data it builds on.
    OPENING = [
        [("crm_new_customer", 6), ("erp_new_customer", 2), ("crm_new_product", 8), ("crm_new_quote", 8),
         ("crm_confirm_quote", 6)],
        [("erp_credit_change", 4), ("erp_advance_order", 36), ("erp_item_costing", 4),
         ("erp_customer_profitability", 3)],
        [("crm_complaint", 2), ("erp_return", 2)],
        [("crm_service_call", 2), ("erp_service_work", 3)],
    ]

    def opening_needed(self) -> bool:
        empty = self.s.crm_one("SELECT NOT EXISTS (SELECT 1 FROM crm.customer)")[0]
        self.s.pg.rollback()
        return bool(empty)

    def opening(self, settle: Callable[[], bool], stopped: Callable[[], bool]) -> bool:
        for round_ in self.OPENING:
            for name, times in round_:
                action = getattr(self, name)
                for _ in range(times):
                    if stopped():
                        return True
                    try:
                        say(self.run(name.split("_", 1)[0], action))
                    except Skip:
                        break
            if not settle():
                return False
        return True

    # ------------------------------------------------------------------ CRM
    def crm_new_customer(self) -> str:
        s, r = self.s, self.rng
        cid = s.crm_next_id("crm.customer")
        name = f"{r.choice(COMPANY_A)} {r.choice(COMPANY_B)}"
        legal = r.choice(LEGAL)
        postal, city = r.choice(CITIES)
        domain = re.sub(r"[^a-z]", "", name.lower().replace("ü", "ue").replace("ö", "oe").replace("ä", "ae"))[:18]
        s.crm("""INSERT INTO crm.customer (id, customer_no, account_name, legal_form, vat_id, industry, segment,
                     street, postal_code, city, country_code, email, phone, website, account_owner)
                 VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'DE', %s, %s, %s, %s)""",
              (cid, f"K{cid:06d}", f"{name} {legal}", legal, f"DE{r.randrange(10**8, 10**9)}",
               "Maschinenbau", r.choice("ABC"), f"{r.choice(STREETS)} {r.randint(1, 120)}", postal, city,
               f"info@{domain}.de", f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}",
               f"https://www.{domain}.de", r.choice(["jschulz", "mkaya", "lberger"])))
        n = r.randint(1, 3)
        for i in range(n):
            first, last = r.choice(FIRST), r.choice(LAST)
            s.crm("""INSERT INTO crm.contact (customer_id, salutation, first_name, last_name, job_title, email,
                         phone, is_primary, gdpr_consent_at)
                     VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())""",
                  (cid, r.choice(["Frau", "Herr"]), first, last, r.choice(TITLES),
                   f"{first.lower()}.{last.lower()}@{domain}.de".replace("ü", "ue").replace("ö", "oe"),
                   f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}", i == 0))
        return f"[flow 2] new account {cid} {name} {legal}, {city}, with {n} contact(s)"

    def crm_update_contact(self) -> str:
        s, r = self.s, self.rng
        row = s.crm_one("SELECT id, first_name, last_name FROM crm.contact ORDER BY random() LIMIT 1")
        if row is None:
            raise Skip
        cid, first, last = row
        if r.random() < 0.5:
            phone = f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}"
            s.crm("UPDATE crm.contact SET phone = %s, updated_at = now() WHERE id = %s", (phone, cid))
            return f"contact {cid} {first} {last}: new phone {phone}"
        title = r.choice(TITLES)
        s.crm("UPDATE crm.contact SET job_title = %s, updated_at = now() WHERE id = %s", (title, cid))
        return f"contact {cid} {first} {last}: now {title}"

    def crm_remove_contact(self) -> str:
        s = self.s
        # someone left the customer: a contact nothing refers to (deletes flow too)
        row = s.crm_one("""SELECT c.id, c.first_name, c.last_name, c.customer_id FROM crm.contact c
                           WHERE NOT c.is_primary AND NOT c.is_invoice_recipient
                             AND NOT EXISTS (SELECT 1 FROM crm.quote q WHERE q.contact_id = c.id)
                             AND NOT EXISTS (SELECT 1 FROM crm.complaint k WHERE k.contact_id = c.id)
                           ORDER BY random() LIMIT 1""")
        if row is None:
            raise Skip
        kid, first, last, cust = row
        s.crm("DELETE FROM crm.contact WHERE id = %s", (kid,))
        return f"contact {kid} {first} {last} has left account {cust}: deleted"

    def crm_new_product(self) -> str:
        s, r = self.s, self.rng
        pid = s.crm_next_id("crm.product")
        base, code = r.choice(PRODUCTS)
        size = r.choice([400, 600, 800, 1000, 1200, 1600])
        config = {"width_mm": size, "voltage": r.choice([230, 400]), "ip_class": r.choice(["IP54", "IP65"]),
                  "options": r.sample(["stainless", "atex", "heating", "washdown", "remote"], k=r.randint(0, 2))}
        price = money(r.uniform(800, 25000))
        s.crm("""INSERT INTO crm.product (id, sku, name, description, product_type, unit, list_price, configuration)
                 VALUES (%s, %s, %s, %s, %s, 'pcs', %s, %s)""",
              (pid, f"{code}-{pid:05d}", f"{base} {size}", f"{base}, Baubreite {size} mm, kundenspezifisch",
               r.choice(["manufactured", "manufactured", "purchased"]), price, json.dumps(config)))
        parts = s.crm("SELECT id FROM crm.product WHERE id <> %s ORDER BY random() LIMIT %s",
                      (pid, r.randint(0, 3)))
        for pos, (component,) in enumerate(parts, start=1):
            s.crm("""INSERT INTO crm.bom_line (product_id, position, component_product_id, quantity, scrap_pct)
                     VALUES (%s, %s, %s, %s, %s)""",
                  (pid, pos * 10, component, Decimal(r.randint(1, 8)), Decimal(r.choice(["0", "1.5", "3"]))))
        return f"[flow 3] new product {pid} {base} {size} ({price} EUR) with {len(parts)} BOM line(s)"

    def crm_new_quote(self) -> str:
        s, r = self.s, self.rng
        cust = s.crm_one("SELECT id, account_name FROM crm.customer ORDER BY random() LIMIT 1")
        products = s.crm("SELECT id, list_price, configuration FROM crm.product ORDER BY random() LIMIT %s",
                         (r.randint(1, 3),))
        if cust is None or not products:
            raise Skip
        qid = s.crm_next_id("crm.quote")
        contact = s.crm_one("SELECT id FROM crm.contact WHERE customer_id = %s ORDER BY is_primary DESC LIMIT 1",
                            (cust[0],))
        total = Decimal(0)
        lines = []
        for no, (pid, price, config) in enumerate(products, start=1):
            qty = Decimal(r.randint(1, 10))
            disc = Decimal(r.choice(["0", "0", "2.5", "5", "10"]))
            net = money(qty * price * (100 - disc) / 100)
            total += net
            lines.append((qid, no, pid, qty, price, disc, net, json.dumps(config) if config else None))
        s.crm("""INSERT INTO crm.quote (id, quote_no, customer_id, contact_id, status, valid_until, total_net,
                     requested_delivery, sales_rep)
                 VALUES (%s, %s, %s, %s, 'sent', current_date + 30, %s, current_date + %s, %s)""",
              (qid, f"Q{qid:06d}", cust[0], contact[0] if contact else None, total, r.randint(14, 60),
               r.choice(["jschulz", "mkaya", "lberger"])))
        psycopg2.extras.execute_values(
            s.pg.cursor(),
            "INSERT INTO crm.quote_line (quote_id, line_no, product_id, quantity, unit_price, discount_pct, "
            "line_net, configuration) VALUES %s", lines)
        return f"[flow 4] quote Q{qid:06d} sent to {cust[1]}: {len(lines)} line(s), {total} EUR"

    def crm_confirm_quote(self) -> str:
        s, r = self.s, self.rng
        q = s.crm_one("""SELECT q.id, q.quote_no, q.customer_id, c.account_name, c.credit_blocked, q.total_net,
                                q.requested_delivery, q.currency
                         FROM crm.quote q JOIN crm.customer c ON c.id = q.customer_id
                         WHERE q.status = 'sent' ORDER BY random() LIMIT 1 FOR UPDATE OF q""")
        if q is None:
            raise Skip
        qid, quote_no, cust, name, blocked, total, requested, currency = q
        if blocked:
            # the credit block is owned by the ERP and arrived through flow 2
            s.crm("UPDATE crm.quote SET status = 'lost', updated_at = now() WHERE id = %s", (qid,))
            return f"quote {quote_no} for {name} NOT confirmed: the ERP has blocked the account's credit"
        # no copy step: the gate of flow 4 turns the confirmed quote and its lines into one ERP order
        s.crm("UPDATE crm.quote SET status = 'confirmed', confirmed_at = now(), customer_po = %s, updated_at = now() "
              "WHERE id = %s", (f"PO-{r.randint(10000, 99999)}", qid))
        return f"[flow 4] quote {quote_no} confirmed by {name} ({total} EUR): becomes one ERP sales order with lines"

    def crm_complaint(self) -> str:
        s, r = self.s, self.rng
        row = s.crm_one("""SELECT q.id, q.erp_order_no, q.customer_id, l.product_id,
                                  (SELECT id FROM crm.contact c WHERE c.customer_id = q.customer_id LIMIT 1)
                           FROM crm.quote q JOIN crm.quote_line l ON l.quote_id = q.id
                           WHERE q.order_status IN ('shipped', 'delivered', 'invoiced') AND q.erp_order_no IS NOT NULL
                           ORDER BY random() LIMIT 1""")
        if row is None:
            raise Skip
        qid, order_no, cust, pid, contact = row
        category = r.choice(["quality", "delivery", "invoice", "documentation", "service"])
        subject = r.choice(COMPLAINTS[category])
        cid = s.crm_one("""INSERT INTO crm.complaint (customer_id, contact_id, quote_id, erp_order_no, product_id,
                               reported_at, channel, category, severity, subject, description)
                           VALUES (%s, %s, %s, %s, %s, now(), %s, %s, %s, %s, %s) RETURNING id""",
                        (cust, contact, qid, order_no, pid, r.choice(["phone", "email", "portal", "visit"]), category,
                         r.randint(1, 4), subject, f"Kunde meldet zu Auftrag {order_no}: {subject}."))[0]
        return f"[flow 6] complaint {cid} about ERP order {order_no}: {subject} ({category})"

    def crm_service_call(self) -> str:
        s, r = self.s, self.rng
        # the CRM drives the complaints it opened (ids below the ERP's range)
        row = s.crm_one("""SELECT id, customer_id, status, subject FROM crm.complaint
                           WHERE id < 1000000000 AND status IN ('open', 'in_progress')
                           ORDER BY random() LIMIT 1 FOR UPDATE""")
        if row is None:
            raise Skip
        cid, cust, status, subject = row
        kind = r.choice(["call", "visit", "inspection"])
        hours = Decimal(r.choice(["0.25", "0.5", "1", "2", "4"]))
        s.crm("""INSERT INTO crm.service_record (complaint_id, customer_id, performed_at, record_type, performed_by,
                     labour_hours, notes, details)
                 VALUES (%s, %s, now(), %s, %s, %s, %s, %s)""",
              (cid, cust, kind, r.choice(TECHNICIANS), hours, f"{kind}: {subject}",
               json.dumps({"follow_up": r.random() < 0.3, "satisfaction": r.randint(1, 5)})))
        new = "in_progress" if status == "open" else r.choice(["resolved", "closed"])
        closed = "now()" if new == "closed" else "NULL"
        resolution = "Ursache behoben, Kunde informiert" if new != "in_progress" else None
        s.crm(f"UPDATE crm.complaint SET status = %s, resolution = coalesce(%s, resolution), closed_at = {closed} "
              "WHERE id = %s", (new, resolution, cid))
        return f"[flow 6] complaint {cid}: {kind} ({hours} h), status {status} -> {new}"

    # ------------------------------------------------------------------ ERP
    def erp_new_customer(self) -> str:
        s, r = self.s, self.rng
        # accounts receivable opens a debtor itself (flow 2: accounts are created on either side)
        name = f"{r.choice(COMPANY_A)} {r.choice(COMPANY_B)} {r.choice(LEGAL)}"
        postal, city = r.choice(CITIES)
        s.erp("""INSERT INTO customers (customer_no, name, vat_id, street, postal_code, city, email, phone,
                     credit_limit, payment_terms)
                 VALUES (CONCAT('D', LPAD(FLOOR(RAND() * 100000000), 9, '0')), %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
              (name, f"DE{r.randrange(10**8, 10**9)}", f"{r.choice(STREETS)} {r.randint(1, 120)}", postal, city,
               f"buchhaltung@{re.sub(r'[^a-z]', '', name.lower())[:16]}.de",
               f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}",
               Decimal(r.choice([5000, 10000, 25000])), r.choice(["NET14", "NET30", "PREPAID"])))
        cid = s.erp_one("SELECT LAST_INSERT_ID()")[0]
        s.erp("UPDATE customers SET customer_no = %s WHERE id = %s", (f"D{cid}", cid))
        return f"[flow 2] new debtor {cid} {name}, {city} (created in the ERP)"

    def both_edit_customer(self) -> str:
        s, r = self.s, self.rng
        # sales and accounting change the phone number of the same account at the same moment, each in its
        # own system: a conflict that flow 2's `latest` rule decides alike on both sides: the later commit
        # wins. Both updates run before either commits; the earlier side commits here, the later side's
        # transaction stays open RACE_SECONDS longer (run() commits it). Its row lock holds the earlier
        # edit's replication back, so the two edits really race, and they commit in different seconds
        # (commit times count in whole seconds: two commits a few milliseconds apart, as this action made
        # before, are a tie that the first connection, the CRM, always won).
        # each side numbers the account itself: the same account is the one with the same account number
        row = s.erp_one("SELECT id, customer_no, name FROM customers ORDER BY RAND() LIMIT 1")
        if row is None:
            raise Skip
        eid, no, name = row
        found = s.crm_one("SELECT id FROM crm.customer WHERE customer_no = %s", (no,))
        if found is None:
            raise Skip  # not in the CRM yet (created in the ERP a moment ago)
        cid = found[0]
        crm_phone = f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}"
        erp_phone = f"+49 {r.randint(30, 999)} {r.randint(100000, 9999999)}"
        s.crm("UPDATE crm.customer SET phone = %s, updated_at = now() WHERE id = %s", (crm_phone, cid))
        s.erp("UPDATE customers SET phone = %s WHERE id = %s", (erp_phone, eid))
        later = r.choice(["crm", "erp"])
        (s.my if later == "crm" else s.pg).commit()
        time.sleep(RACE_SECONDS)
        return (f"[flow 2] account {no} {name} (CRM id {cid}, ERP debtor {eid}): phone set to {crm_phone} in the "
                f"CRM and to {erp_phone} in the ERP at once, the {later.upper()} committing {RACE_SECONDS:g} s "
                f"later (a conflict: the {later.upper()}'s phone wins on both sides)")

    def erp_credit_change(self) -> str:
        s, r = self.s, self.rng
        row = s.erp_one("SELECT id, name, credit_limit, credit_blocked FROM customers ORDER BY RAND() LIMIT 1 "
                        "FOR UPDATE")
        if row is None:
            raise Skip
        cid, name, limit, blocked = row
        if blocked or r.random() < 0.08:
            block = 0 if blocked else 1
            s.erp("UPDATE customers SET credit_blocked = %s WHERE id = %s", (block, cid))
            return f"account {cid} {name}: credit {'BLOCKED (overdue invoices)' if block else 'released again'}"
        new_limit = Decimal(r.choice([10000, 25000, 50000, 75000, 100000, 150000, 250000]))
        terms = r.choice(["NET14", "NET30", "NET30", "NET60", "PREPAID"])
        s.erp("UPDATE customers SET credit_limit = %s, payment_terms = %s WHERE id = %s", (new_limit, terms, cid))
        return f"account {cid} {name}: credit limit {limit} -> {new_limit} EUR, terms {terms}"

    def erp_invoice_recipient(self) -> str:
        s = self.s
        # the primary contact: the CRM deletes only other contacts, so this update never races a
        # delete (an update that arrives after its row was deleted would insert it again)
        row = s.erp_one("SELECT id, customer_id, first_name, last_name FROM contacts "
                        "WHERE is_primary = 1 AND is_invoice_recipient = 0 ORDER BY RAND() LIMIT 1")
        if row is None:
            raise Skip
        kid, cust, first, last = row
        s.erp("UPDATE contacts SET is_invoice_recipient = (id = %s) WHERE customer_id = %s", (kid, cust))
        return f"contact {kid} {first} {last} now receives the invoices of account {cust}"

    def erp_confirm_orders(self) -> str:
        s = self.s
        # order intake: the ERP confirms every order it received with a delivery date. Besides being what
        # an ERP does, this is the ERP's first change of an order replicator created, and only a change
        # carries the ERP-owned fields (its order number, the status EN) back onto the CRM quote: values
        # the ERP fills in while replicator creates the order do not flow back by themselves
        rows = s.erp("SELECT id FROM sales_orders WHERE status = 'EN' AND promised_date IS NULL FOR UPDATE")
        if not rows:
            raise Skip
        s.erp("UPDATE sales_orders SET promised_date = COALESCE(requested_delivery, UTC_DATE() + INTERVAL 21 DAY) "
              "WHERE status = 'EN' AND promised_date IS NULL")
        return (f"[flow 4] order confirmation: {len(rows)} new order(s) confirmed with a delivery date "
                f"(ERP order number and date show on the CRM quote)")

    def erp_edi_order(self) -> str:
        s, r = self.s, self.rng
        # a customer orders by EDI: the ERP takes the order itself, no CRM quote behind it. It is marked
        # origin 'EDI' (order, lines, later its post-calculation) and flows 1 and 4 filter it out, so
        # nothing of it waits (parked) for a quote that never comes
        cust = s.erp_one("SELECT id, name FROM customers WHERE credit_blocked = 0 ORDER BY RAND() LIMIT 1")
        items = s.erp("SELECT id, list_price FROM items WHERE status = 'released' ORDER BY RAND() LIMIT %s",
                      (r.randint(1, 3),))
        if cust is None or not items:
            raise Skip
        lines = [(iid, Decimal(r.randint(1, 20)), price) for iid, price in items]
        total = sum((money(qty * price) for _iid, qty, price in lines), Decimal(0))
        s.erp("INSERT INTO sales_orders (customer_id, customer_po, requested_delivery, total_net, origin) "
              "VALUES (%s, %s, UTC_DATE() + INTERVAL 14 DAY, %s, 'EDI')",
              (cust[0], f"EDI-{r.randint(100000, 999999)}", total))
        oid = s.erp_one("SELECT LAST_INSERT_ID()")[0]
        for no, (iid, qty, price) in enumerate(lines, start=1):
            s.erp("INSERT INTO sales_order_lines (sales_order_id, line_no, item_id, quantity, unit_price, line_net, "
                  "origin) VALUES (%s, %s, %s, %s, %s, %s, 'EDI')", (oid, no * 10, iid, qty, price, money(qty * price)))
        return (f"[flow 4] EDI order {oid} from {cust[1]}: {len(lines)} line(s), {total} EUR (the ERP's own order, "
                f"no CRM quote: flows 1 and 4 leave it out)")

    def erp_advance_order(self) -> str:
        s, r = self.s, self.rng
        # work in progress first (the order furthest along), then the oldest
        row = s.erp_one("""SELECT id, status, customer_id, total_net, origin FROM sales_orders
                           WHERE status NOT IN ('IV', 'CX')
                           ORDER BY FIELD(status, 'DL', 'SH', 'IP', 'RL', 'EN'), updated_at
                           LIMIT 1 FOR UPDATE""")
        if row is None:
            raise Skip
        oid, status, cust, total, origin = row
        where = "on the CRM quote" if origin == "CRM" else "EDI order: the ERP's alone"
        order_no = oid  # the ERP's own order number
        if status == "EN" and r.random() < 0.03:
            s.erp("UPDATE sales_orders SET status = 'CX' WHERE id = %s", (oid,))
            return f"[flow 4] order {order_no} cancelled (CX)"
        new = ORDER_FLOW[ORDER_FLOW.index(status) + 1]
        extra = ""
        if new == "RL":
            promised = date.today() + timedelta(days=r.randint(10, 45))
            # costing of the lines: flows back to the CRM with the lines (flow 1 via flow 4)
            for lid, qty, price in s.erp("SELECT id, quantity, unit_price FROM sales_order_lines "
                                         "WHERE sales_order_id = %s", (oid,)):
                unit_cost = (price * Decimal(r.uniform(0.55, 0.85))).quantize(Decimal("0.0001"))
                s.erp("UPDATE sales_order_lines SET unit_cost = %s, line_cost = %s WHERE id = %s",
                      (unit_cost, money(unit_cost * qty), lid))
            s.erp("UPDATE sales_orders SET status = 'RL', promised_date = %s WHERE id = %s", (promised, oid))
            extra = f", promised for {promised} (shows on the CRM quote), lines costed"
        elif new == "SH":
            tracking = f"00340{r.randint(10**12, 10**13 - 1)}"
            s.erp("UPDATE sales_orders SET status = 'SH', shipped_at = UTC_TIMESTAMP(6), tracking_no = %s "
                  "WHERE id = %s", (tracking, oid))
            extra = f", tracking {tracking}"
        elif new == "DL":
            s.erp("UPDATE sales_orders SET status = 'DL', delivered_at = UTC_TIMESTAMP(6) WHERE id = %s",
                  (oid,))
        elif new == "IV":
            cost = s.erp_one("SELECT COALESCE(SUM(line_cost), 0) FROM sales_order_lines WHERE sales_order_id = %s",
                             (oid,))[0]
            material = money(cost * Decimal("0.62"))
            labour = money(cost * Decimal("0.23"))
            overhead = money(cost - material - labour)
            freight = money(r.uniform(40, 600))
            total_cost = material + labour + overhead + freight
            contribution = total - total_cost
            pct = (contribution / total * 100).quantize(CENT) if total else None
            s.erp("""INSERT INTO order_costs (sales_order_id, revenue, material_cost, labour_cost, overhead_cost,
                         freight_cost, total_cost, contribution, margin_pct, costing_run, costed_at, origin)
                     VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, UTC_TIMESTAMP(6), %s)
                     ON DUPLICATE KEY UPDATE revenue = VALUES(revenue), total_cost = VALUES(total_cost),
                         contribution = VALUES(contribution), margin_pct = VALUES(margin_pct),
                         costing_run = costing_run + 1, costed_at = VALUES(costed_at)""",
                  (oid, total, material, labour, overhead, freight, total_cost, contribution, pct, origin))
            s.erp("UPDATE sales_orders SET status = 'IV' WHERE id = %s", (oid,))
            extra = f", [flow 1] post-calculation: actual margin {contribution} EUR ({pct} %)" + (
                " onto the CRM quote" if origin == "CRM" else " (EDI order: stays in the ERP)")
        else:
            s.erp("UPDATE sales_orders SET status = %s WHERE id = %s", (new, oid))
        return f"[flow 4] order {order_no}: {status} -> {new} ({ORDER_WORDS[new]} {where}){extra}"

    def erp_item_costing(self) -> str:
        s, r = self.s, self.rng
        row = s.erp_one("SELECT id, item_no, list_price FROM items ORDER BY RAND() LIMIT 1")
        if row is None:
            raise Skip
        iid, item_no, price = row
        material = (price * Decimal(r.uniform(0.30, 0.45))).quantize(Decimal("0.0001"))
        labour = (price * Decimal(r.uniform(0.10, 0.20))).quantize(Decimal("0.0001"))
        overhead = (price * Decimal(r.uniform(0.05, 0.12))).quantize(Decimal("0.0001"))
        std = material + labour + overhead
        pct = ((price - std) / price * 100).quantize(CENT) if price else None
        version = f"STD{date.today().year}-{r.randint(1, 4)}"
        s.erp("""INSERT INTO item_costs (item_id, cost_version, standard_cost, material_cost, labour_cost,
                     overhead_cost, margin_pct, costed_at)
                 VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))
                 ON DUPLICATE KEY UPDATE cost_version = VALUES(cost_version), standard_cost = VALUES(standard_cost),
                     material_cost = VALUES(material_cost), labour_cost = VALUES(labour_cost),
                     overhead_cost = VALUES(overhead_cost), margin_pct = VALUES(margin_pct),
                     costed_at = VALUES(costed_at)""",
              (iid, version, std, material, labour, overhead, pct))
        return f"[flow 5] costing run {version}: item {item_no} standard cost {std.quantize(CENT)} EUR (margin {pct} %)"

    def erp_customer_profitability(self) -> str:
        s = self.s
        row = s.erp_one("SELECT id, name FROM customers ORDER BY RAND() LIMIT 1")
        if row is None:
            raise Skip
        cid, name = row
        year = date.today().year
        # aggregated from the ERP's own post-calculations
        s.erp("""INSERT INTO customer_profitability (customer_id, fiscal_year, order_count, revenue, cost_of_sales,
                     gross_profit, gross_margin_pct, open_receivables, computed_at)
                 SELECT %s, %s, COUNT(o.id), COALESCE(SUM(c.revenue), 0), COALESCE(SUM(c.total_cost), 0),
                        COALESCE(SUM(c.contribution), 0),
                        ROUND(100 * SUM(c.contribution) / NULLIF(SUM(c.revenue), 0), 2),
                        COALESCE(SUM(CASE WHEN o.status = 'IV' THEN o.total_net END), 0),
                        UTC_TIMESTAMP(6)
                 FROM sales_orders o LEFT JOIN order_costs c ON c.sales_order_id = o.id
                 WHERE o.customer_id = %s AND YEAR(o.order_date) = %s AND o.status <> 'CX'
                 ON DUPLICATE KEY UPDATE order_count = VALUES(order_count), revenue = VALUES(revenue),
                     cost_of_sales = VALUES(cost_of_sales), gross_profit = VALUES(gross_profit),
                     gross_margin_pct = VALUES(gross_margin_pct), open_receivables = VALUES(open_receivables),
                     computed_at = VALUES(computed_at)""", (cid, year, cid, year))
        n, revenue, profit = s.erp_one("SELECT order_count, revenue, gross_profit FROM customer_profitability "
                                       "WHERE customer_id = %s AND fiscal_year = %s", (cid, year))
        return f"[flow 5] profitability {year} of {name}: {n} order(s), revenue {revenue}, gross profit {profit} EUR"

    def erp_return(self) -> str:
        s, r = self.s, self.rng
        row = s.erp_one("""SELECT o.id, o.id, o.customer_id, l.item_id FROM sales_orders o
                           JOIN sales_order_lines l ON l.sales_order_id = o.id
                           WHERE o.status IN ('DL', 'IV') ORDER BY RAND() LIMIT 1""")
        if row is None:
            raise Skip
        oid, order_no, cust, iid = row
        subject = r.choice(COMPLAINTS["quality"] + COMPLAINTS["delivery"])
        category = "quality" if subject in COMPLAINTS["quality"] else "delivery"
        s.erp("""INSERT INTO complaints (customer_id, sales_order_id, item_id, opened_at, channel, category, severity,
                     subject, description, qm_notification_no)
                 VALUES (%s, %s, %s, UTC_TIMESTAMP(6), 'return', %s, %s, %s, %s, %s)""",
              (cust, oid, iid, category, r.randint(2, 4), subject, f"Retoure zu {order_no}: {subject}",
               f"QM{r.randint(100000, 999999)}"))
        cid = s.erp_one("SELECT LAST_INSERT_ID()")[0]
        return f"[flow 6] return {cid} on order {order_no}: {subject}"

    def erp_service_work(self) -> str:
        s, r = self.s, self.rng
        # repairs and replacements on any open complaint; credit notes only on the ERP's own
        row = s.erp_one("""SELECT id, customer_id, status FROM complaints
                           WHERE status IN ('NEW', 'WIP') ORDER BY RAND() LIMIT 1 FOR UPDATE""")
        if row is None:
            raise Skip
        cid, cust, status = row
        own = cid >= 1_000_000_000
        kind = r.choice(["repair", "replacement", "credit"] if own else ["repair", "replacement"])
        hours = Decimal(r.choice(["0", "1", "2.5", "6"])) if kind != "credit" else Decimal(0)
        cost = money(r.uniform(80, 2500))
        s.erp("""INSERT INTO service_records (complaint_id, customer_id, performed_at, record_type, technician,
                     labour_hours, cost, notes, details)
                 VALUES (%s, %s, UTC_TIMESTAMP(6), %s, %s, %s, %s, %s, %s)""",
              (cid, cust, kind.upper() if kind != "replacement" else "REPLACE", r.choice(TECHNICIANS), hours, cost,
               f"{kind} ausgeführt",
               json.dumps({"parts": r.randint(0, 4), "warranty": r.random() < 0.6})))
        text = f"[flow 6] complaint {cid}: {kind} booked, cost {cost} EUR"
        if own:
            if kind == "credit":
                s.erp("UPDATE complaints SET credit_note_amount = %s, status = 'CLO', closed_at = UTC_TIMESTAMP(6), "
                      "resolution = 'Gutschrift erteilt' WHERE id = %s", (cost, cid))
                text += ", credit note issued, closed"
            elif status == "NEW":
                s.erp("UPDATE complaints SET status = 'WIP' WHERE id = %s", (cid,))
                text += ", in progress"
        return text


# ---------------------------------------------------------------------------------- agreement


class Checker:
    """Both sides compared through the mappings by `replicator verify` (crosswalks, value maps, translated
    foreign keys: a plain key-by-key comparison of the two tables no longer says anything)."""

    SUMMARY = re.compile(r"^(\S+): (\d+) rows checked, (\d+) differing")

    def __init__(self, config_path: str, metrics_url: str | None, prepare: Callable[[], None] | None = None):
        self.config_path = config_path
        self.metrics_url = metrics_url
        self.prepare = prepare  # run before each comparison (the ERP's order intake, see erp_confirm_orders)

    def compare(self) -> tuple[list[tuple[str, int, int]], list[str]]:
        """Rows checked and differing per mapping, and the lines that describe differences."""
        result = subprocess.run([sys.executable, "-m", "replicator", "verify", "--config", self.config_path,
                                 "--log-level", "warning"], capture_output=True, text=True, timeout=300)
        counts, problems = [], []
        for line in result.stdout.splitlines():
            m = self.SUMMARY.match(line)
            if m:
                counts.append((m.group(1), int(m.group(2)), int(m.group(3))))
            elif line.strip() and not line.startswith("verify: "):
                problems.append(line.strip())
        if result.returncode != 0 and not problems:
            problems.append(f"replicator verify exited {result.returncode}: "
                            f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        return counts, problems if result.returncode != 0 else []

    def applied(self) -> str:
        if not self.metrics_url:
            return ""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return " | metrics endpoint not reachable"
        rows: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r'^replicator_rows_applied_total\{(.*)\} (\S+)$', line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                rows[labels.get("direction", "?")] = rows.get(labels.get("direction", "?"), 0) + float(m.group(2))
        return " | rows applied: " + ", ".join(f"{d} {int(n)}" for d, n in sorted(rows.items()))

    def wait_agree(self, timeout: float) -> bool:
        started = time.monotonic()
        while True:
            if self.prepare is not None:
                self.prepare()
            counts, problems = self.compare()
            waited = time.monotonic() - started
            if not problems or waited >= timeout:
                break
            time.sleep(0.5)
        table = "  ".join(f"{name} {n}" if d == 0 else f"{name} {n} ({d} differ)" for name, n, d in counts)
        if not problems:
            say(f"[agree] replicator verify: both sides agree after {waited:.1f} s; rows checked: {table}"
                f"{self.applied()}")
            return True
        say(f"[DIFFER] after {waited:.0f} s: {table}{self.applied()}")
        for p in problems[:10]:
            say(f"         {p}")
        return False


# ---------------------------------------------------------------------------------- main


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def say(text: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Live CRM/ERP traffic for the replicator demo.")
    p.add_argument("--config", default="demo-data/replicator.yaml", help="replicator configuration (connections)")
    p.add_argument("--rate", type=float, default=4.0, help="actions per second (default %(default)s)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--check-every", type=float, default=20.0, help="seconds between agreement checks")
    p.add_argument("--check-timeout", type=float, default=30.0, help="how long a check waits for agreement")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--metrics-url", default=None, help="replicator /metrics URL (default: from the configuration)")
    p.add_argument("--watch-pid", type=int, default=None, help="stop with an error when this process (the daemon) ends")
    args = p.parse_args(argv)
    if args.rate <= 0:
        p.error("--rate must be positive")

    config = load(args.config)
    metrics_url = args.metrics_url or f"http://{config.metrics_address}:{config.metrics_port}/metrics"
    sides = Sides(config)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    traffic = Traffic(sides, random.Random(seed))
    def order_intake() -> None:
        try:
            say(traffic.run("erp", traffic.erp_confirm_orders))
        except Skip:
            pass

    checker = Checker(args.config, metrics_url, order_intake)

    stopping = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    say(f"traffic: {args.rate:g} action(s)/s, seed {seed}, agreement check every {args.check_every:g} s, "
        + (f"for {args.seconds:g} s" if args.seconds else "until Ctrl-C"))
    checks_failed = 0
    if traffic.opening_needed():
        say("[opening] the databases are empty: a quick opening round first")
        if not traffic.opening(lambda: checker.wait_agree(args.check_timeout), lambda: stopping):
            checks_failed += 1
        say("[opening] done; steady traffic from here")
    started = time.monotonic()
    deadline = started + args.seconds if args.seconds else None
    next_check = started + args.check_every
    next_action = started
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            if args.watch_pid and not _alive(args.watch_pid):
                say(f"the replicator daemon (pid {args.watch_pid}) has stopped; traffic stops")
                return 1
            now = time.monotonic()
            if now >= next_check:
                if not checker.wait_agree(args.check_timeout):
                    checks_failed += 1
                next_check = time.monotonic() + args.check_every
                next_action = time.monotonic()
                continue
            if now < next_action:
                time.sleep(min(next_action - now, 0.2))
                continue
            line = traffic.step()
            if line:
                say(line)
            next_action += traffic.rng.expovariate(args.rate)
        reason = "interrupted" if stopping else "time is up"
        say(f"traffic stopped ({reason}) after {traffic.count['crm']} CRM, {traffic.count['erp']} ERP and "
            f"{traffic.count['both']} two-sided actions; final check")
        ok = checker.wait_agree(10.0 if stopping else args.check_timeout)
    finally:
        sides.close()
    if not ok:
        say("the two sides do NOT agree")
        return 1
    if checks_failed:
        say(f"{checks_failed} earlier check(s) timed out, but the sides agree now")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
