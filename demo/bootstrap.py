"""Helper for scripts/demo: password files, databases and schemas, and the demo configuration.

    python demo/bootstrap.py passwords DATA_DIR
        create DATA_DIR/crm.password and DATA_DIR/erp.password (random, 0600) unless present
    python demo/bootstrap.py configure DATA_DIR SERVERS_JSON
        create the crm and erp databases and load demo/schema/*.sql (idempotent), then write
        DATA_DIR/replicator.yaml from demo/replicator.yaml with the servers' real ports and a
        free metrics port; prints the metrics port
    python demo/bootstrap.py seed DATA_DIR SERVERS_JSON
        fill empty databases with what a CRM and an ERP hold before replicator arrives (class Seed:
        about 36k rows in the CRM and 33k in the ERP, some records on both sides (the same id, or
        the same account number / SKU / quote number), some on one side only); databases that hold data are left alone
    python demo/bootstrap.py indented -- COMMAND [ARG ...]
        run COMMAND with its output indented like the demo's other output; on a terminal COMMAND
        gets a pseudo-terminal, so that it still shows its live progress line

Every step may be repeated: the schema files only create what is missing, and seed only fills
empty databases.
"""
from __future__ import annotations

import json
import random
import re
import secrets
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema"
TEMPLATE = HERE / "replicator.yaml"
CENT = Decimal("0.01")


def money(x: object) -> Decimal:
    return Decimal(x).quantize(CENT, ROUND_HALF_UP)


def passwords(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for side in ("crm", "erp"):
        path = data / f"{side}.password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18) + "\n")


def mariadb_statements(text: str) -> list[str]:
    """Statements of a MariaDB script: every statement ends with ';' at the end of a line."""
    out, current = [], []
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if any(line.strip() for line in current):
        out.append("\n".join(current))
    return out


def load_crm(info: dict, password: str) -> None:
    import psycopg2

    params = dict(host=info["host"], port=info["port"], user=info["user"], password=password)
    admin = psycopg2.connect(dbname="postgres", **params)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'crm'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE crm")
    finally:
        admin.close()
    db = psycopg2.connect(dbname="crm", **params)
    try:
        with db.cursor() as cur:
            cur.execute((SCHEMA / "crm.sql").read_text())  # one transaction: all or nothing
        db.commit()
    finally:
        db.close()


def load_erp(info: dict, password: str) -> None:
    import pymysql

    db = pymysql.connect(host=info["host"], port=info["port"], user=info["user"], password=password,
                         autocommit=True, charset="utf8mb4")
    try:
        with db.cursor() as cur:
            for stmt in mariadb_statements((SCHEMA / "erp.sql").read_text()):
                cur.execute(stmt)
    finally:
        db.close()


def write_config(data: Path, pg_port: int, maria_port: int, metrics_port: int) -> Path:
    ports = {"PostgreSQL devserver": pg_port, "MariaDB devserver": maria_port, "metrics endpoint": metrics_port}
    lines = []
    for line in TEMPLATE.read_text().splitlines(keepends=True):
        for marker, port in ports.items():
            if f"# demo: port of the {marker}" in line:
                line, n = re.subn(r"^(\s*port:\s*)\d+", rf"\g<1>{port}", line)
                if n != 1:
                    raise SystemExit(f"{TEMPLATE}: cannot substitute the port on line {line!r}")
        lines.append(line)
    header = "# Written by scripts/demo from demo/replicator.yaml with the ports of this run; do not edit.\n"
    target = data / "replicator.yaml"
    target.write_text(header + "".join(lines))
    # fail here, not in the daemon, if the result is not a valid configuration
    from replicator.config import load
    from replicator.mapping.model import load_mappings

    load_mappings(load(target))
    return target


def configure(data: Path, servers_json: Path) -> None:
    from replicator.testing.devservers import free_port

    info = json.loads(servers_json.read_text())
    crm_pw = (data / "crm.password").read_text().rstrip("\r\n")
    erp_pw = (data / "erp.password").read_text().rstrip("\r\n")
    load_crm(info["postgres"], crm_pw)
    load_erp(info["mariadb"], erp_pw)
    metrics_port = free_port()
    write_config(data, info["postgres"]["port"], info["mariadb"]["port"], metrics_port)
    print(metrics_port)


# ---------------------------------------------------------------------------------- existing data

# How much the two systems hold before replicator is introduced. Ids shared by both sides follow the
# demo's rule (the CRM's ids from 1, the ERP's own records from 1 000 000 000).
SEED_CUSTOMERS = 6000          # CRM accounts; every 4th is a prospect the ERP does not know yet
SEED_PRODUCTS = 2500           # CRM products; the newest SEED_NEW_PRODUCTS are not yet items in the ERP
SEED_NEW_PRODUCTS = 500
SEED_CRM_ORDERS = 2500         # orders from confirmed CRM quotes, all transferred to the ERP earlier
SEED_OPEN_QUOTES = 600
SEED_CRM_COMPLAINTS = 500      # CRM complaints; 70 % were passed on to quality management earlier
SEED_ERP_RETURNS = 300         # returns logged in the ERP only
ERP_IDS = 1_000_000_000
DEBTOR_BASE = 100_000          # the ERP's own debtor numbers, in the order it learned of the accounts
ITEM_BASE = 100_000            # the ERP's own item numbers (item 100 042 is the CRM's product 42, by SKU)
ORDER_BASE = 4_500_000         # the ERP's own sales order numbers
ITEM_TYPE = {"manufactured": "FERT", "purchased": "HAWA", "service": "DIEN"}
ORDER_STATUS = {"entered": "EN", "released": "RL", "in_production": "IP", "shipped": "SH", "delivered": "DL",
                "invoiced": "IV", "cancelled": "CX"}
COMPLAINT_STATUS = {"open": "NEW", "in_progress": "WIP", "resolved": "RES", "closed": "CLO", "rejected": "REJ"}
SERVICE_TYPE = {"call": "CALL", "visit": "VISIT", "repair": "REPAIR", "replacement": "REPLACE", "credit": "CREDIT",
                "inspection": "INSPECT"}
SEED_RANDOM = 20261126         # the same data on every first run


class Seed:
    """A CRM and an ERP that have been used side by side for two years, linked by hand so far.

    Rows are generated, not read back: `crm` and `erp` map a table to (columns, rows). Contacts,
    complaints and service records have the same id on both sides; accounts (the ERP's debtors),
    items, BOM lines, sales orders and their lines carry the ERP's own numbers and are linked by
    account number, SKU and quote number. Each
    side holds what it owns: the CRM the accounts' contact data (up to date), the ERP the credit
    lines, order status, costs (the CRM has its defaults there); some ERP copies of CRM data are out
    of date (an old phone number or street).
    """

    def __init__(self, today: date | None = None):
        sys.path.insert(0, str(HERE))  # the traffic generator's vocabulary
        from traffic import (CITIES, COMPANY_A, COMPANY_B, COMPLAINTS, FIRST, LAST, LEGAL, PRODUCTS, STREETS,
                             TECHNICIANS, TITLES)

        self.r = random.Random(SEED_RANDOM)
        self.today = today or datetime.now(timezone.utc).date()
        self.now = datetime.now(timezone.utc).replace(microsecond=0)
        self.words = dict(CITIES=CITIES, COMPANY_A=COMPANY_A, COMPANY_B=COMPANY_B, COMPLAINTS=COMPLAINTS,
                          FIRST=FIRST, LAST=LAST, LEGAL=LEGAL, PRODUCTS=PRODUCTS, STREETS=STREETS,
                          TECHNICIANS=TECHNICIANS, TITLES=TITLES)
        self.crm: dict[str, tuple[tuple[str, ...], list[tuple]]] = {}
        self.erp: dict[str, tuple[tuple[str, ...], list[tuple]]] = {}
        self.counts: dict[str, int] = {}
        self._customers()
        self._products()
        self._orders()
        self._complaints()

    # helpers
    def _table(self, side: dict, name: str, columns: str) -> list[tuple]:
        rows: list[tuple] = []
        side[name] = (tuple(c.strip() for c in columns.split(",")), rows)
        return rows

    def _at(self, days_ago: float) -> datetime:
        """A UTC moment `days_ago` days back, to the second (both servers store it exactly)."""
        return self.now - timedelta(seconds=int(days_ago * 86400))

    @staticmethod
    def _erp_time(value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(timezone.utc).replace(tzinfo=None)

    def _phone(self) -> str:
        return f"+49 {self.r.randint(30, 999)} {self.r.randint(100000, 9999999)}"

    # accounts and contacts (flow 2)
    def _customers(self) -> None:
        r, w = self.r, self.words
        crm_c = self._table(self.crm, "customer", "id, customer_no, account_name, legal_form, vat_id, industry, "
                            "segment, street, postal_code, city, country_code, email, phone, website, account_owner, "
                            "created_at, updated_at")
        erp_c = self._table(self.erp, "customers", "id, customer_no, name, vat_id, street, postal_code, city, "
                            "country_code, email, phone, credit_limit, credit_currency, payment_terms, "
                            "credit_blocked, dunning_level, created_at")
        crm_k = self._table(self.crm, "contact", "id, customer_id, salutation, first_name, last_name, job_title, "
                            "email, phone, mobile, is_primary, gdpr_consent_at, created_at, updated_at")
        erp_k = self._table(self.erp, "contacts", "id, customer_id, first_name, last_name, role, email, phone, "
                            "is_primary, is_invoice_recipient")
        self.shared_customers: list[int] = []
        self.debtor_of: dict[int, int] = {}  # CRM account id -> the ERP's debtor number (same customer_no)
        self.contacts_of: dict[int, list[int]] = {}
        contact_id = 0
        for cid in range(1, SEED_CUSTOMERS + 1):
            known_to_erp = cid % 4 != 0  # the others are prospects: nothing ordered yet
            name = f"{r.choice(w['COMPANY_A'])} {r.choice(w['COMPANY_B'])}"
            legal = r.choice(w["LEGAL"])
            postal, city = r.choice(w["CITIES"])
            street = f"{r.choice(w['STREETS'])} {r.randint(1, 120)}"
            domain = re.sub(r"[^a-z]", "", name.lower().replace("ü", "ue").replace("ö", "oe")
                            .replace("ä", "ae"))[:18] + str(cid)
            phone = self._phone()
            created = self._at(r.uniform(30, 1500))
            vat = f"DE{r.randrange(10**8, 10**9)}"
            crm_c.append((cid, f"K{cid:06d}", f"{name} {legal}", legal, vat, "Maschinenbau", r.choice("ABC"), street,
                          postal, city, "DE", f"info@{domain}.de", phone, f"https://www.{domain}.de",
                          r.choice(["jschulz", "mkaya", "lberger"]), created, created))
            if known_to_erp:
                self.shared_customers.append(cid)
                self.debtor_of[cid] = DEBTOR_BASE + len(erp_c)
                stale = r.random() < 0.1  # the ERP's copy of the address data is out of date
                erp_c.append((self.debtor_of[cid], f"K{cid:06d}", f"{name} {legal}", vat,
                               f"{r.choice(w['STREETS'])} {r.randint(1, 120)}" if stale else street, postal, city,
                               "DE", f"info@{domain}.de", self._phone() if stale else phone,
                               Decimal(r.choice([5000, 10000, 25000, 50000, 75000, 100000, 250000])),
                               "EUR", r.choice(["NET14", "NET30", "NET30", "NET30", "NET60", "PREPAID"]),
                               int(r.random() < 0.03), r.choice([0, 0, 0, 0, 1, 2]), self._erp_time(created)))
            ids = []
            invoice_to = r.random() < 0.6
            for i in range(r.choice([1, 1, 2, 2, 2, 3])):
                contact_id += 1
                ids.append(contact_id)
                first, last = r.choice(w["FIRST"]), r.choice(w["LAST"])
                title = r.choice(w["TITLES"])
                email = f"{first.lower()}.{last.lower()}@{domain}.de".replace("ü", "ue").replace("ö", "oe")
                kphone = self._phone()
                kcreated = created + timedelta(days=r.randint(0, 25))
                crm_k.append((contact_id, cid, r.choice(["Frau", "Herr"]), first, last, title, email, kphone,
                              None, i == 0, kcreated, kcreated, kcreated))
                if known_to_erp and (i == 0 or r.random() < 0.9):  # a few new contacts are CRM-only
                    erp_k.append((contact_id, self.debtor_of[cid], first, last, r.choice(w["TITLES"]) if r.random() < 0.05 else title,
                                  email, kphone, int(i == 0), int(i == 0 and invoice_to)))
            self.contacts_of[cid] = ids

    # products and bills of materials (flow 3), standard costs (flow 5)
    def _products(self) -> None:
        r, w = self.r, self.words
        crm_p = self._table(self.crm, "product", "id, sku, name, description, product_type, unit, list_price, "
                            "currency, configuration, lifecycle_status, created_at, updated_at")
        erp_i = self._table(self.erp, "items", "id, item_no, description, long_text, item_type, unit, list_price, "
                            "currency, configuration, status, procurement, lead_time_days, warehouse")
        crm_b = self._table(self.crm, "bom_line", "id, product_id, position, component_product_id, quantity, unit, "
                            "scrap_pct, note")
        erp_b = self._table(self.erp, "boms", "id, parent_item_id, line_no, component_item_id, quantity, unit, "
                            "scrap_pct, remark, operation_no")
        erp_c = self._table(self.erp, "item_costs", "item_id, cost_version, standard_cost, material_cost, "
                            "labour_cost, overhead_cost, margin_pct, costed_at")
        self.items: list[tuple[int, Decimal, str | None]] = []  # products the ERP knows: (id, price, configuration)
        bom_id = 0
        shared = SEED_PRODUCTS - SEED_NEW_PRODUCTS
        for pid in range(1, SEED_PRODUCTS + 1):
            base, code = r.choice(w["PRODUCTS"])
            size = r.choice([400, 600, 800, 1000, 1200, 1600])
            config = json.dumps({"width_mm": size, "voltage": r.choice([230, 400]),
                                 "ip_class": r.choice(["IP54", "IP65"]),
                                 "options": r.sample(["stainless", "atex", "heating", "washdown", "remote"],
                                                     k=r.randint(0, 2))})
            price = money(r.uniform(800, 25000))
            kind = r.choice(["manufactured", "manufactured", "purchased"])
            status = "released" if pid <= shared else r.choice(["draft", "released", "released"])
            if pid <= shared and r.random() < 0.04:
                status = "phase_out"
            created = self._at(1500 * (1 - pid / (SEED_PRODUCTS + 1)) + 1)
            crm_p.append((pid, f"{code}-{pid:05d}", f"{base} {size}", f"{base}, Baubreite {size} mm, kundenspezifisch",
                          kind, "pcs", price, "EUR", config, status, created, created))
            if pid <= shared:
                self.items.append((pid, price, config))
                erp_i.append((ITEM_BASE + pid, f"{code}-{pid:05d}", f"{base} {size}",
                              f"{base}, Baubreite {size} mm, kundenspezifisch",
                              ITEM_TYPE[kind], "pcs", price if r.random() > 0.05 else money(price * Decimal("0.95")),
                              "EUR",
                              config, status, "buy" if kind == "purchased" else "make", r.choice([5, 10, 15, 20]),
                              r.choice(["WH01", "WH01", "WH02"])))
            if kind == "manufactured" and pid > 50:
                for pos, comp in enumerate(r.sample(range(1, min(pid, 400)), k=r.randint(1, 3)), start=1):
                    bom_id += 1
                    line = (bom_id, pid, pos * 10, comp, Decimal(r.randint(1, 8)), "pcs",
                            Decimal(r.choice(["0", "1.5", "3"])), r.choice([None, None, "Kundenvorgabe"]))
                    crm_b.append(line)
                    if pid <= shared and comp <= shared:
                        erp_b.append((bom_id, ITEM_BASE + pid, pos * 10, ITEM_BASE + comp) + line[4:]
                                     + (r.choice([None, 10, 20, 30]),))
            if pid <= shared and r.random() < 0.8:
                material = (price * Decimal(r.uniform(0.30, 0.45))).quantize(Decimal("0.0001"))
                labour = (price * Decimal(r.uniform(0.10, 0.20))).quantize(Decimal("0.0001"))
                overhead = (price * Decimal(r.uniform(0.05, 0.12))).quantize(Decimal("0.0001"))
                std = material + labour + overhead
                erp_c.append((ITEM_BASE + pid, f"STD{self.today.year}-{r.randint(1, 4)}", std, material, labour,
                              overhead, ((price - std) / price * 100).quantize(CENT),
                              self._erp_time(self._at(r.uniform(1, 90)))))

    # quotes, orders, post-calculation (flows 4 and 1), profitability (flow 5)
    def _orders(self) -> None:
        r = self.r
        crm_q = self._table(self.crm, "quote", "id, quote_no, customer_id, contact_id, status, valid_until, "
                            "total_net, requested_delivery, sales_rep, customer_po, confirmed_at, created_at, "
                            "updated_at")
        crm_ql = self._table(self.crm, "quote_line", "id, quote_id, line_no, product_id, quantity, unit_price, "
                             "discount_pct, line_net, configuration")
        erp_o = self._table(self.erp, "sales_orders", "id, customer_id, crm_quote_no, customer_po, "
                            "order_date, requested_delivery, currency, total_net, status, promised_date, shipped_at, "
                            "delivered_at, tracking_no")
        erp_l = self._table(self.erp, "sales_order_lines", "id, sales_order_id, line_no, item_id, quantity, "
                            "unit_price, discount_pct, line_net, configuration, unit_cost, line_cost")
        erp_oc = self._table(self.erp, "order_costs", "sales_order_id, revenue, material_cost, labour_cost, "
                             "overhead_cost, freight_cost, total_cost, contribution, margin_pct, costing_run, "
                             "costed_at")
        erp_p = self._table(self.erp, "customer_profitability", "customer_id, fiscal_year, order_count, revenue, "
                            "cost_of_sales, gross_profit, gross_margin_pct, open_receivables, computed_at")
        self.delivered: list[tuple[int, int, int, int]] = []  # (ERP order, customer, product, CRM quote)
        profit: dict[tuple[int, int], list[Decimal]] = {}
        quote_id = quote_line_id = line_id = 0
        # the CRM's quotes: confirmed ones became orders, some are still open, some were lost
        plan = ["confirmed"] * SEED_CRM_ORDERS + ["sent"] * SEED_OPEN_QUOTES + ["lost", "expired"] * 150
        r.shuffle(plan)
        for status in plan:
            quote_id += 1
            cust = r.choice(self.shared_customers) if status == "confirmed" else r.randint(1, SEED_CUSTOMERS)
            contact = self.contacts_of[cust][0]
            days = r.uniform(0, 700) if status == "confirmed" else (r.uniform(0, 25) if status == "sent"
                                                                    else r.uniform(40, 700))
            created = self._at(days + r.uniform(2, 20))
            lines, total = [], Decimal(0)
            for no, (pid, price, config) in enumerate(r.sample(self.items, k=r.randint(1, 4)), start=1):
                qty = Decimal(r.randint(1, 10))
                disc = Decimal(r.choice(["0", "0", "2.5", "5", "10"]))
                net = money(qty * price * (100 - disc) / 100)
                total += net
                lines.append((no, pid, qty, price, disc, net, config))
            for no, pid, qty, price, disc, net, config in lines:
                quote_line_id += 1
                crm_ql.append((quote_line_id, quote_id, no, pid, qty, price, disc, net, config))
            order_date = (self._at(days)).date()
            requested = order_date + timedelta(days=r.randint(14, 60))
            confirmed = self._at(days) if status == "confirmed" else None
            po = f"PO-{r.randint(10000, 99999)}" if status == "confirmed" else None
            crm_q.append((quote_id, f"Q{quote_id:06d}", cust, contact, status, created.date() + timedelta(days=30),
                          total, requested, r.choice(["jschulz", "mkaya", "lberger"]), po, confirmed, created,
                          confirmed or created))
            if status != "confirmed":
                continue
            # transferred to the ERP by hand before replicator: the ERP's own order number, the quote
            # number on the order (replicator's first run links them by it)
            oid = ORDER_BASE + len(erp_o) + 1
            order_lines = []
            for no, pid, qty, price, disc, net, config in lines:
                line_id += 1
                order_lines.append((ORDER_BASE + line_id, no, pid, qty, price, disc, net, config))
            self._erp_order(erp_o, erp_l, erp_oc, profit, oid, cust, quote_id, po, order_date,
                            requested, total, order_lines, days)
        computed = self._erp_time(self._at(0.5))
        for (cust, year), (count, revenue, cost, invoiced) in sorted(profit.items()):
            gross = revenue - cost
            pct = (100 * gross / revenue).quantize(CENT) if revenue else None
            erp_p.append((self.debtor_of[cust], year, int(count), revenue, cost, gross, pct, invoiced, computed))

    def _erp_order(self, erp_o, erp_l, erp_oc, profit, oid, cust, quote_id, po, order_date, requested,
                   total, lines, days) -> None:
        r = self.r
        # how far an order got depends on its age
        if days > 75:
            status = "cancelled" if r.random() < 0.03 else "invoiced"
        elif days > 45:
            status = r.choice(["delivered", "invoiced"])
        elif days > 30:
            status = r.choice(["shipped", "delivered"])
        elif days > 12:
            status = r.choice(["released", "in_production", "shipped"])
        else:
            status = r.choice(["entered", "entered", "released"])
        steps = ["entered", "released", "in_production", "shipped", "delivered", "invoiced"]
        reached = steps.index(status) if status != "cancelled" else 0
        promised = order_date + timedelta(days=r.randint(10, 45)) if reached >= 1 else None
        shipped = self._erp_time(self._at(max(days - r.uniform(10, 25), 0.2))) if reached >= 3 else None
        delivered = shipped + timedelta(days=r.randint(1, 4)) if reached >= 4 else None
        if delivered is not None and delivered > self._erp_time(self.now):
            delivered = self._erp_time(self.now) - timedelta(hours=1)
        tracking = f"00340{r.randint(10**12, 10**13 - 1)}" if reached >= 3 else None
        erp_o.append((oid, self.debtor_of[cust], f"Q{quote_id:06d}", po, order_date, requested, "EUR", total, ORDER_STATUS[status],
                      promised, shipped, delivered, tracking))
        line_cost_sum = Decimal(0)
        for lid, no, pid, qty, price, disc, net, config in lines:
            unit_cost = line_cost = None
            if reached >= 1:
                unit_cost = (price * Decimal(r.uniform(0.55, 0.85))).quantize(Decimal("0.0001"))
                line_cost = money(unit_cost * qty)
                line_cost_sum += line_cost
            erp_l.append((lid, oid, no, ITEM_BASE + pid, qty, price, disc, net, config, unit_cost, line_cost))
        if status in ("delivered", "invoiced", "shipped"):
            self.delivered.append((oid, cust, lines[0][2], quote_id))
        if status == "cancelled":
            return
        year_stats = profit.setdefault((cust, order_date.year), [Decimal(0)] * 4)
        year_stats[0] += 1
        if status == "invoiced":
            material = money(line_cost_sum * Decimal("0.62"))
            labour = money(line_cost_sum * Decimal("0.23"))
            overhead = money(line_cost_sum - material - labour)
            freight = money(r.uniform(40, 600))
            total_cost = material + labour + overhead + freight
            contribution = total - total_cost
            pct = (contribution / total * 100).quantize(CENT) if total else None
            costed = min(delivered + timedelta(days=r.randint(3, 20)), self._erp_time(self.now))
            erp_oc.append((oid, total, material, labour, overhead, freight, total_cost, contribution, pct, 1, costed))
            year_stats[1] += total
            year_stats[2] += total_cost
            year_stats[3] += total

    # complaints and service (flow 6)
    def _complaints(self) -> None:
        r, w = self.r, self.words
        crm_k = self._table(self.crm, "complaint", "id, customer_id, contact_id, quote_id, erp_order_no, product_id, "
                            "reported_at, channel, category, severity, status, subject, description, resolution, "
                            "closed_at, created_at")
        erp_k = self._table(self.erp, "complaints", "id, customer_id, contact_id, sales_order_id, item_id, opened_at, "
                            "channel, category, severity, status, subject, description, resolution, "
                            "credit_note_amount, closed_at, qm_notification_no")
        crm_s = self._table(self.crm, "service_record", "id, complaint_id, customer_id, performed_at, record_type, "
                            "performed_by, labour_hours, notes, details")
        erp_s = self._table(self.erp, "service_records", "id, complaint_id, customer_id, performed_at, record_type, "
                            "technician, labour_hours, cost, notes, details")
        crm_orders = self.delivered
        service_id, erp_service_id = 0, ERP_IDS
        for kid in range(1, SEED_CRM_COMPLAINTS + 1):
            oid, cust, pid, qid = r.choice(crm_orders)
            category = r.choice(list(w["COMPLAINTS"]))
            subject = r.choice(w["COMPLAINTS"][category])
            reported = self._at(r.uniform(1, 60))
            status = r.choice(["open", "in_progress", "resolved", "closed", "closed", "rejected"])
            resolution = "Ursache behoben, Kunde informiert" if status in ("resolved", "closed") else None
            closed = reported + timedelta(days=r.randint(1, 20)) if status == "closed" else None
            if closed is not None and closed > self.now:
                closed = self.now - timedelta(minutes=5)
            contact = self.contacts_of[cust][0]
            crm_k.append((kid, cust, contact, qid, oid, pid, reported,
                          r.choice(["phone", "email", "portal", "visit"]), category, r.randint(1, 4), status, subject,
                          f"Kunde meldet zu Auftrag {oid}: {subject}.", resolution, closed, reported))
            passed_on = r.random() < 0.7
            if passed_on:
                row = crm_k[-1]
                erp_k.append((kid, self.debtor_of[cust], contact, oid, ITEM_BASE + pid, self._erp_time(reported), row[7], category,
                              row[9], COMPLAINT_STATUS[status], subject, row[12], resolution, None,
                              self._erp_time(closed),
                              f"QM{r.randint(100000, 999999)}"))
            if status != "open":
                service_id += 1
                kind = r.choice(["call", "visit", "inspection"])
                crm_s.append((service_id, kid, cust, reported + timedelta(hours=r.randint(2, 48)), kind,
                              r.choice(w["TECHNICIANS"]), Decimal(r.choice(["0.25", "0.5", "1", "2", "4"])),
                              f"{kind}: {subject}", json.dumps({"follow_up": r.random() < 0.3,
                                                               "satisfaction": r.randint(1, 5)})))
            if passed_on and status != "open" and r.random() < 0.4:
                erp_service_id += 1
                kind = r.choice(["repair", "replacement"])
                erp_s.append((erp_service_id, kid, self.debtor_of[cust], self._erp_time(reported + timedelta(days=r.randint(1, 5))),
                              SERVICE_TYPE[kind], r.choice(w["TECHNICIANS"]), Decimal(r.choice(["1", "2.5", "6"])),
                              money(r.uniform(80, 2500)), f"{kind} ausgeführt",
                              json.dumps({"parts": r.randint(0, 4), "warranty": r.random() < 0.6})))
        for n in range(1, SEED_ERP_RETURNS + 1):
            kid = ERP_IDS + n
            oid, cust, pid, _qid = r.choice(self.delivered)
            subject = r.choice(w["COMPLAINTS"]["quality"] + w["COMPLAINTS"]["delivery"])
            category = "quality" if subject in w["COMPLAINTS"]["quality"] else "delivery"
            opened = self._at(r.uniform(1, 60))
            status = r.choice(["open", "in_progress", "closed"])
            credit = money(r.uniform(80, 2500)) if status == "closed" else None
            closed = opened + timedelta(days=r.randint(1, 15)) if status == "closed" else None
            if closed is not None and closed > self.now:
                closed = self.now - timedelta(minutes=5)
            erp_k.append((kid, self.debtor_of[cust], None, oid, ITEM_BASE + pid, self._erp_time(opened), "return", category,
                          r.randint(2, 4), COMPLAINT_STATUS[status], subject, f"Retoure zu Auftrag {oid}: {subject}",
                          "Gutschrift erteilt" if status == "closed" else None, credit, self._erp_time(closed),
                          f"QM{r.randint(100000, 999999)}"))
            if status != "open":
                erp_service_id += 1
                kind = "credit" if status == "closed" else r.choice(["repair", "replacement"])
                erp_s.append((erp_service_id, kid, self.debtor_of[cust], self._erp_time(opened + timedelta(days=1)), SERVICE_TYPE[kind],
                              r.choice(w["TECHNICIANS"]), Decimal(0) if kind == "credit" else Decimal("2.5"),
                              credit if kind == "credit" else money(r.uniform(80, 2500)), f"{kind} ausgeführt",
                              json.dumps({"parts": r.randint(0, 4), "warranty": r.random() < 0.6})))


CRM_ORDER = ["customer", "contact", "product", "bom_line", "quote", "quote_line",
             "complaint", "service_record"]
ERP_ORDER = ["customers", "contacts", "items", "boms", "item_costs", "sales_orders", "sales_order_lines",
             "order_costs", "customer_profitability", "complaints", "service_records"]


def _holds_data(info: dict, password: str, kind: str) -> bool:
    if kind == "crm":
        import psycopg2

        db = psycopg2.connect(host=info["host"], port=info["port"], user=info["user"], password=password, dbname="crm")
        try:
            with db.cursor() as cur:
                cur.execute("SELECT EXISTS (SELECT 1 FROM crm.customer) OR EXISTS (SELECT 1 FROM crm.product)")
                return bool(cur.fetchone()[0])
        finally:
            db.close()
    import pymysql

    db = pymysql.connect(host=info["host"], port=info["port"], user=info["user"], password=password, database="erp")
    try:
        with db.cursor() as cur:
            cur.execute("SELECT EXISTS (SELECT 1 FROM customers) OR EXISTS (SELECT 1 FROM items)")
            return bool(cur.fetchone()[0])
    finally:
        db.close()


def _seed_crm(info: dict, password: str, data: Seed) -> None:
    import psycopg2
    import psycopg2.extras

    db = psycopg2.connect(host=info["host"], port=info["port"], user=info["user"], password=password, dbname="crm",
                          options="-c timezone=UTC")
    try:
        with db.cursor() as cur:
            for table in CRM_ORDER:
                cols, rows = data.crm[table]
                psycopg2.extras.execute_values(
                    cur, f"INSERT INTO crm.{table} ({', '.join(cols)}) VALUES %s", rows, page_size=2000)
                if "id" in cols:  # the CRM's own inserts continue after the seeded ids
                    cur.execute(f"SELECT setval(pg_get_serial_sequence('crm.{table}', 'id'), "
                                f"(SELECT max(id) FROM crm.{table}))")
        db.commit()  # one transaction: all or nothing
    finally:
        db.close()


def _seed_erp(info: dict, password: str, data: Seed) -> None:
    import pymysql

    db = pymysql.connect(host=info["host"], port=info["port"], user=info["user"], password=password, database="erp",
                         charset="utf8mb4", autocommit=False, init_command="SET time_zone = '+00:00'")
    try:
        with db.cursor() as cur:
            for table in ERP_ORDER:
                cols, rows = data.erp[table]
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
                for i in range(0, len(rows), 2000):
                    cur.executemany(sql, rows[i:i + 2000])
        db.commit()
    finally:
        db.close()


def _overlap(data: Seed, crm: str, erp: str, by: tuple[str, str] = ("id", "id")) -> tuple[int, int, int]:
    """(both, CRM only, ERP only) of a table pair, by id or by the natural key columns `by`."""
    ci, ei = data.crm[crm][0].index(by[0]), data.erp[erp][0].index(by[1])
    a = {row[ci] for row in data.crm[crm][1]}
    b = {row[ei] for row in data.erp[erp][1]}
    return len(a & b), len(a - b), len(b - a)


def seed(data_dir: Path, servers_json: Path) -> None:
    info = json.loads(servers_json.read_text())
    crm_pw = (data_dir / "crm.password").read_text().rstrip("\r\n")
    erp_pw = (data_dir / "erp.password").read_text().rstrip("\r\n")
    crm_full = _holds_data(info["postgres"], crm_pw, "crm")
    erp_full = _holds_data(info["mariadb"], erp_pw, "erp")
    if crm_full and erp_full:
        print("the databases hold data already (an earlier run): not seeding")
        return
    if crm_full or erp_full:
        full, empty = ("crm", "erp") if crm_full else ("erp", "crm")
        raise SystemExit(f"demo/bootstrap.py seed: {full} holds data but {empty} is empty (an interrupted first "
                         f"run?); start again from empty databases with scripts/demo --reset")
    started = time.monotonic()
    data = Seed()
    _seed_crm(info["postgres"], crm_pw, data)
    _seed_erp(info["mariadb"], erp_pw, data)
    n_crm = sum(len(rows) for _cols, rows in data.crm.values())
    n_erp = sum(len(rows) for _cols, rows in data.erp.values())
    print(f"{n_crm:,} rows in the CRM, {n_erp:,} in the ERP ({time.monotonic() - started:.1f} s); "
          f"on both sides (same id, or same account number / SKU / quote number), or on one side only:")
    for what, crm, erp, by in (("accounts", "customer", "customers", ("customer_no", "customer_no")),
                               ("contacts", "contact", "contacts", ("id", "id")),
                               ("products", "product", "items", ("sku", "item_no")),
                               ("quotes/orders", "quote", "sales_orders", ("quote_no", "crm_quote_no")),
                               ("complaints", "complaint", "complaints", ("id", "id")),
                               ("service records", "service_record", "service_records", ("id", "id"))):
        both, crm_only, erp_only = _overlap(data, crm, erp, by)
        print(f"  {what + ':':17}{both:>7,} both  {crm_only:>6,} CRM only  {erp_only:>6,} ERP only")
    print(f"  ERP only: {len(data.erp['order_costs'][1]):,} order post-calculations, "
          f"{len(data.erp['item_costs'][1]):,} item standard costs, "
          f"{len(data.erp['customer_profitability'][1]):,} customer profitability rows")
    print("  the CRM holds the accounts' contact data, the ERP their credit lines, order status and costs; "
          "some ERP addresses are out of date")


# ---------------------------------------------------------------------------------- indented output

INDENT = "      "


class _Indenter:
    """Writes a command's output with INDENT at the start of every line, also of a line redrawn after
    a carriage return (a live progress line), cut at the terminal's width so that redrawing works."""

    def __init__(self, out, width: int | None):
        self.out = out
        self.width = width
        self.col = 0  # 0: at the start of a line, nothing written yet
        self.esc = ""  # an escape sequence being passed through

    def write(self, text: str) -> None:
        parts = []
        for ch in text:
            if self.esc:
                self.esc += ch
                if self.esc == "\x1b[" or (len(self.esc) > 2 and not ch.isalpha()) or len(self.esc) == 1:
                    continue
                parts.append(self.esc)
                self.esc = ""
                continue
            if ch == "\x1b":
                self.esc = ch
                continue
            if ch in "\r\n":
                parts.append(ch)
                self.col = 0
                continue
            if self.col == 0:
                parts.append(INDENT)
                self.col = len(INDENT)
            if self.width is None or self.col < self.width - 1:
                parts.append(ch)
                self.col += 1
        self.out.write("".join(parts))
        self.out.flush()


def run_indented(argv: list[str]) -> int:
    """Run a command with its output (stdout and stderr) indented; on a terminal the command runs on a
    pseudo-terminal of its own, so that it still shows what it shows on terminals (live progress)."""
    import os
    import signal
    import subprocess

    # Ctrl-C reaches the command (same process group); we keep relaying its output until it ends
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    if not out.isatty():
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        ind = _Indenter(out, None)
        for raw in iter(lambda: proc.stdout.read1(4096), b""):
            ind.write(raw.decode("utf-8", "replace"))
        return proc.wait()
    import codecs
    import fcntl
    import pty
    import struct
    import termios
    import tty

    size = os.get_terminal_size(out.fileno())
    master, slave = pty.openpty()
    tty.setraw(slave)  # no "\n" -> "\r\n" translation: our own terminal does that
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.lines, size.columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    ind = _Indenter(out, size.columns)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        try:
            raw = os.read(master, 4096)
        except OSError:  # EIO: the command has closed the terminal (it ended)
            break
        if not raw:
            break
        ind.write(decoder.decode(raw))
    os.close(master)
    return proc.wait()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "passwords":
        passwords(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "configure":
        configure(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 3 and argv[0] == "seed":
        seed(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) >= 3 and argv[0] == "indented" and argv[1] == "--":
        return run_indented(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
