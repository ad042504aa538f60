"""docs/walkthrough-odoo-erpnext.md run as written, on real servers: an Odoo-shaped CRM (res_partner with
companies and contacts in one table, a many2many of tags, product_template/product_product, jsonb names)
and an ERPNext-shaped ERP (tables named with spaces, varchar(140) keys the application makes, a polymorphic
`tabDynamic Link`, child tables). The page's schemas, seed rows and mapping files are its `file:` blocks;
then check, setup, sync, verify, run, edits on both sides (a concurrent one, a many2many change refused
into the dead-letter queue), status, explain, a reload, a stop and start."""
from __future__ import annotations

import json
from pathlib import Path

from tests.integration.harness import Pair, page_cli, reload, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-odoo-erpnext.md"


def _partner(pair: Pair, name: str) -> tuple:
    rows = pair.pg_query("SELECT is_company, type, active, customer_rank, parent_id, write_date IS NOT NULL "
                         "FROM res_partner WHERE name = %s", (name,))
    assert len(rows) == 1, (name, rows)
    return rows[0]


def test_the_odoo_erpnext_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "crm.sql", "erp.sql", pg_scripts=("crm-stamps.sql",), pg_seed=("crm-seed.sql",),
                     my_seed=("erp-stamps.sql", "erp-seed.sql"))

    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "0 failed" in out, out
    assert "tabDynamic Link rows of link_doctype = 'Customer'" in out, out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    grant = pair.pg_query("SELECT id FROM res_partner WHERE name = 'Grant Industries'")[0][0]
    assert _partner(pair, "Grant Industries") == (True, "contact", True, 1, None, True)
    assert _partner(pair, "Jane Grant") == (False, "contact", True, None, grant, True)  # visible in Odoo
    azure = pair.my_query("SELECT name, customer_group, creation IS NOT NULL FROM `tabCustomer` "
                          "WHERE customer_name = 'Azure Interior'")
    assert len(azure) == 1 and azure[0][0].startswith("CUST-") and azure[0][1:] == ("Services", 1), azure
    azure_name = azure[0][0]
    assert pair.my_query("SELECT customer_group_name FROM `tabCustomer Group`") == [("Services",)]
    assert pair.my_query("SELECT name, item_code, item_name, standard_rate FROM `tabItem`") == [
        ("FURN_7777", "FURN_7777", "Office Chair", 70.5)]  # linked by item_code, not doubled; one language
    assert pair.my_query("SELECT l.link_name FROM `tabDynamic Link` l JOIN `tabContact` c ON c.name = l.parent "
                         "WHERE c.first_name = 'Brandon Freeman'") == [(azure_name,)]

    # streaming, edits on both sides
    pair.start()
    pair.pg_query("INSERT INTO res_partner (name, is_company, type, vat, active) "
                  "VALUES ('Deco Addict', true, 'contact', 'US12345677', true)")
    pair.my_query("INSERT INTO `tabCustomer` (name, customer_name, tax_id, customer_group) "
                  "VALUES ('CUST-00002', 'Wood Corner', '', 'Commercial')")  # no tax id, like Ready Mat
    wait_until(lambda: pair.my_query("SELECT disabled, creation IS NOT NULL FROM `tabCustomer` "
                                     "WHERE customer_name = 'Deco Addict'") == [(0, 1)], 30, "Deco Addict in ERPNext")
    wait_until(lambda: pair.pg_query("SELECT active, customer_rank FROM res_partner WHERE name = 'Wood Corner'")
               == [(True, 1)], 30, "Wood Corner in Odoo")
    assert _partner(pair, "Ready Mat")[:4] == (True, "contact", True, 1)  # not linked to Wood Corner by ''

    # an order with its lines, one Odoo transaction; ERPNext submits it and the status comes back
    conn = pair.pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO sale_order (name, partner_id, state, date_order, amount_total) "
                        "SELECT 'S00001', id, 'draft', '2024-03-01 10:00', 141 FROM res_partner "
                        "WHERE name = 'Azure Interior' RETURNING id")
            order = cur.fetchone()[0]
            cur.execute("INSERT INTO sale_order_line (order_id, sequence, name, product_id, product_uom_qty, "
                        "price_unit, price_subtotal) VALUES (%s, 10, '[FURN_7777] Office Chair', 7, 2, 70.5, 141), "
                        "(%s, 20, 'Delivery', NULL, 1, 0, 0)", (order, order))
        conn.commit()
    finally:
        conn.close()
    wait_until(lambda: pair.my_query("SELECT o.customer, o.status, count(i.name) FROM `tabSales Order` o "
                                     "JOIN `tabSales Order Item` i ON i.parent = o.name AND i.parenttype = "
                                     "'Sales Order' WHERE o.name = 'S00001' GROUP BY 1, 2")
               == [(azure_name, "Draft", 2)], 30, "the order and its two lines in ERPNext")
    assert pair.my_query("SELECT idx, item_code, qty FROM `tabSales Order Item` WHERE parent = 'S00001' ORDER BY idx") \
        == [(10, "FURN_7777", 2), (20, None, 1)]  # variant 7 is item FURN_7777
    pair.my_query("UPDATE `tabSales Order` SET status = 'To Deliver and Bill', docstatus = 1 WHERE name = 'S00001'")
    wait_until(lambda: pair.pg_query("SELECT state FROM sale_order WHERE name = 'S00001'") == [("sale",)], 30,
               "the submitted order's state in Odoo")

    # archive in Odoo, delete in ERPNext: both become flags on the other side
    pair.pg_query("UPDATE res_partner SET active = false WHERE name = 'Deco Addict'")
    pair.my_query("DELETE FROM `tabCustomer` WHERE name = 'CUST-00002'")
    wait_until(lambda: pair.my_query("SELECT disabled FROM `tabCustomer` WHERE customer_name = 'Deco Addict'")
               == [(1,)], 30, "Deco Addict disabled")
    wait_until(lambda: pair.pg_query("SELECT active FROM res_partner WHERE name = 'Wood Corner'") == [(False,)], 30,
               "Wood Corner archived")

    # a contact moved to another company in Odoo: its tabDynamic Link row follows
    deco_name = pair.my_query("SELECT name FROM `tabCustomer` WHERE customer_name = 'Deco Addict'")[0][0]
    pair.pg_query("UPDATE res_partner SET parent_id = (SELECT id FROM res_partner WHERE name = 'Deco Addict') "
                  "WHERE name = 'Brandon Freeman'")
    wait_until(lambda: pair.my_query("SELECT l.link_name FROM `tabDynamic Link` l JOIN `tabContact` c "
                                     "ON c.name = l.parent WHERE c.first_name = 'Brandon Freeman'")
               == [(deco_name,)], 30, "Brandon's dynamic link")

    # both sides edit Azure's phone before either edit arrives
    race(pair, "UPDATE `tabCustomer` SET mobile_no = 'erp-phone' WHERE customer_name = 'Azure Interior'", None,
         "UPDATE res_partner SET phone = 'crm-phone' WHERE name = 'Azure Interior'")
    wait_recorded_once(pair)
    wait_until(lambda: [r[0] for r in pair.pg_query("SELECT phone FROM res_partner WHERE name = 'Azure Interior'")]
               == [r[0] for r in pair.my_query("SELECT mobile_no FROM `tabCustomer` WHERE name = %s",
                                               (azure_name,))], 30, "one phone on both sides")

    # a second tag on Azure: ERPNext has one customer_group, so the change is refused and queued
    pair.pg_query("INSERT INTO res_partner_category (name, color, active) VALUES ('{\"en_US\": \"VIP\"}', 2, true)")
    pair.pg_query("INSERT INTO res_partner_res_partner_category_rel SELECT c.id, p.id FROM res_partner_category c, "
                  "res_partner p WHERE c.name->>'en_US' = 'VIP' AND p.name = 'Azure Interior'")
    wait_until(lambda: pair.cli("dlq", "list", "--json").stdout.strip(), 30, "the refused tag queued")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert [q["mapping"] for q in queued] == ["customer_tag"], queued
    assert "parent 1 has 2 rows of this table" in queued[0]["error"], queued
    # the DBA keeps one tag in Odoo: the old one's delete is another key, so it is applied at once and the
    # customer's group becomes the one tag left; the queued change then goes through on a retry
    pair.pg_query("DELETE FROM res_partner_res_partner_category_rel r USING res_partner_category c "
                  "WHERE c.id = r.category_id AND c.name->>'en_US' = 'Services'")
    wait_until(lambda: pair.my_query("SELECT customer_group FROM `tabCustomer` WHERE name = %s", (azure_name,))
               == [("VIP",)], 30, "Azure's customer group")
    pair.cli("dlq", "retry", "--all")
    wait_until(lambda: not pair.cli("dlq", "list", "--json").stdout.strip(), 30, "the queue empty")
    assert pair.my_query("SELECT customer_group FROM `tabCustomer` WHERE name = %s", (azure_name,)) == [("VIP",)]

    code, out = page_cli(pair, "status")
    assert "dead-letter rows 0" in out, out
    code, out = page_cli(pair, "explain", "--mapping", "contact_company", "--side", "erp", "--key",
                     pair.my_query("SELECT l.name FROM `tabDynamic Link` l JOIN `tabContact` c ON c.name = l.parent "
                                   "WHERE c.first_name = 'Jane Grant'")[0][0])
    assert code == 0 and f"public.res_partner.parent_id = {grant} on the parent" in out, out

    # a reload: one rule changed
    path = pair.tmp / "mappings/10-customers.yaml"   # page_pair writes the page's first file under its name
    path.write_text(page["mappings/10-customers.yaml"].replace("    link: {natural: [vat], crosswalk: true}\n",
                                                               "    link: {natural: [vat], crosswalk: true}\n"
                                                               "    conflicts: {priority: erp}\n", 1))
    pair.cli("check")
    reload(pair)
    wait_until(lambda: "mappings reloaded" in pair.log(), 30, "the reload")

    # ERPNext renames a customer (its key and every link to it, one transaction): refused with the fix
    erp = pair.maria.connect(autocommit=False)
    try:
        with erp.cursor() as cur:
            cur.execute("UPDATE `tabCustomer` SET name = 'Grant Industries Inc' WHERE name = 'CUST-00001'")
            cur.execute("UPDATE `tabDynamic Link` SET link_name = 'Grant Industries Inc' "
                        "WHERE link_name = 'CUST-00001'")
        erp.commit()
    finally:
        erp.close()
    wait_until(lambda: "the key changed from" in pair.cli("dlq", "list", "--json").stdout, 30, "the rename refused")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert 'SET source_key = \'["Grant Industries Inc"]\' WHERE mapping = \'customers\'' in queued[0]["error"], queued

    assert ("`replicator crosswalk rename --mapping customers --side erp --from CUST-00001 "
            "--to 'Grant Industries Inc'`") in queued[0]["error"], queued
    # stop, move the pair as the message says, edits on both sides while stopped, start: they arrive, once
    assert pair.stop() == 0
    moved = pair.cli("crosswalk", "rename", "--mapping", "customers", "--side", "erp", "--from", "CUST-00001",
                     "--to", "Grant Industries Inc").stdout
    assert "source_key in crm's crosswalk" in moved, moved
    assert pair.pg_query("SELECT source_key FROM replicator.crosswalk WHERE mapping = 'customers' "
                         "AND source_side = 'erp' AND source_key LIKE '%%Grant%%'") == [('["Grant Industries Inc"]',)]
    pair.pg_query("UPDATE res_partner SET email = 'info@azure.example' WHERE name = 'Azure Interior'")
    pair.my_query("UPDATE `tabContact` SET phone = '+32 555 0199' WHERE first_name = 'Brandon Freeman'")
    pair.start()
    pair.cli("dlq", "retry", "--all")
    wait_until(lambda: not pair.cli("dlq", "list", "--json").stdout.strip(), 30, "the rename applied")
    wait_until(lambda: pair.my_query("SELECT email_id FROM `tabCustomer` WHERE name = %s", (azure_name,))
               == [("info@azure.example",)], 30, "Odoo's edit made while stopped")
    pair.my_query("UPDATE `tabCustomer` SET customer_name = 'Grant Industries Inc' WHERE name = 'Grant Industries Inc'")
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM res_partner WHERE name = 'Grant Industries Inc'")
               == [(1,)], 30, "an edit of the renamed customer in Odoo's one partner")
    wait_until(lambda: pair.pg_query("SELECT phone FROM res_partner WHERE name = 'Brandon Freeman'")
               == [("+32 555 0199",)], 30, "ERPNext's edit made while stopped")
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.my_query("SELECT count(*) FROM `tabCustomer` WHERE customer_name LIKE 'Grant%'") == [(1,)]
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
