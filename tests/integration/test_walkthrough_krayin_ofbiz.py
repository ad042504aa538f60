"""docs/walkthrough-krayin-ofbiz.md run as written, on real servers: Krayin CRM's schema (Laravel: AUTO_INCREMENT
ids, nullable created_at/updated_at, JSON arrays of e-mails and phones, an EAV attribute_values table) on MariaDB,
Apache OFBiz's (VARCHAR(20) ids, a party in two tables, party_contact_mech's timestamp key, CHAR(1) indicators,
order_item's composite key, four stamps on every table) on PostgreSQL, the connections named `krayin` and
`ofbiz`, the MariaDB one first. The page's schemas, seed rows, key defaults and mapping files are its `file:`
blocks; then scaffold, check, setup, sync, verify, run, edits on both sides, a refused row (dlq, retry), a stop
and start, verify."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.integration.harness import page_cli, page_statements, wait_until
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-krayin-ofbiz.md"


def test_the_krayin_ofbiz_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = make_pair(page["ofbiz.sql"], page["krayin.sql"], page["mappings/10-parties.yaml"],
                     extra_config="on_error: quarantine\n", setup=False, names=("ofbiz", "krayin"), maria_first=True)
    for name, text in page.items():
        if name.startswith("mappings/") and name != "mappings/10-parties.yaml":
            (pair.tmp / name).write_text(text)
    pair.pg_query(page["ofbiz-keys.sql"])
    pair.pg_query(page["ofbiz-seed.sql"])
    for stmt in page_statements(page["krayin-seed.sql"]):
        pair.my_query(stmt)
    pair.pg_query(page["ofbiz-names.sql"])  # one statement list: the trigger's body holds semicolons

    def orgs() -> list[tuple]:
        return pair.my_query("SELECT name FROM organizations ORDER BY id")

    def groups() -> list[tuple]:
        return pair.pg_query("SELECT p.party_id, p.party_type_id, p.status_id, g.group_name FROM party p "
                             "JOIN party_group g USING (party_id) ORDER BY p.created_stamp, p.party_id")

    # the draft scaffold makes of the organization's pair: a crosswalk, the party's id by its DEFAULT
    code, out = page_cli(pair, "scaffold", "--table", "krayin=organizations", "--table", "ofbiz=party")
    assert code == 0 and "link: {crosswalk: true}      # both sides number their own rows" in out, out
    assert "#   name VARCHAR(255)" in out, out  # NOT NULL, not paired: the name is in party_group

    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "1 warnings, 0 failed" in out, out
    # the page's trigger keeps person.krayin_name, which the person_name fold writes (section 1 says why it is safe)
    (warning,) = [line for line in out.splitlines() if line.startswith("[warn]")]
    assert "trigger person_krayin_name (BEFORE INSERT OR UPDATE ON public.person)" in warning \
        and "it assigns NEW.krayin_name, which replicator carries" in warning, out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    # Krayin's rows in OFBiz: parties with the DEFAULT's ids, the person row, the birthday, the product, the order
    assert [g[:4] for g in groups()] == [("10000", "PARTY_GROUP", "PARTY_ENABLED", "Dunder Mifflin"),
                                         ("KR1", "PARTY_GROUP", "PARTY_ENABLED", "Acme Corporation")]
    assert pair.pg_query("SELECT p.party_id, p.party_type_id, s.first_name, s.last_name, s.occupation, s.birth_date "
                         "FROM party p JOIN person s USING (party_id) WHERE p.party_id LIKE 'KR%%'") == [
        ("KR2", "PERSON", "Wile", "E. Coyote", "Genius", date(1949, 9, 17))]
    assert pair.pg_query("SELECT product_id, product_name, description, product_type_id, is_virtual FROM product "
                         "ORDER BY product_id") == [("ACME-RS-01", "Rocket Skates", "Fast", "FINISHED_GOOD", "N"),
                                                    ("WG-1111", "Micro Chrome Widget", "A small widget", "FINISHED_GOOD", "N")]
    assert pair.pg_query("SELECT h.order_id, h.order_name, h.grand_total, h.order_type_id, i.order_item_seq_id, "
                         "i.product_id, i.quantity, i.unit_price FROM order_header h JOIN order_item i USING "
                         "(order_id)") == [("KQ1", "Skates for Wile", Decimal("299.98"), "SALES_ORDER", "1",
                                            "ACME-RS-01", Decimal("2"), Decimal("149.990"))]
    # OFBiz's in Krayin: the organization with its name (a party_group row), the product with name and description
    assert orgs() == [("Acme Corporation",), ("Dunder Mifflin",)]
    assert pair.my_query("SELECT sku, name, description FROM products ORDER BY id") == [
        ("ACME-RS-01", "Rocket Skates", "Fast"), ("WG-1111", "Micro Chrome Widget", "A small widget")]
    # OFBiz's person with her name (person.krayin_name, kept by the page's trigger) and no e-mails yet
    assert pair.my_query("SELECT name, emails FROM persons ORDER BY id") == [("Wile E. Coyote", "[{\"value\": "
                                                                             "\"wile@acme.example\", \"label\": "
                                                                             "\"work\"}]"), ("Pam Beesly", "[]")]
    # the taxable flag: OFBiz's 'Y' as Krayin's attribute row (1); Krayin's skates have none, so NULL
    assert pair.my_query("SELECT p.sku, a.boolean_value FROM attribute_values a JOIN products p ON p.id = a.entity_id "
                         "WHERE a.entity_type = 'products' AND a.attribute_id = 21") == [("WG-1111", 1)]
    assert pair.pg_query("SELECT product_id, taxable FROM product ORDER BY 1") == [("ACME-RS-01", None),
                                                                                   ("WG-1111", "Y")]

    # streaming
    pair.start()
    ofbiz = pair.pg.connect()
    try:
        with ofbiz.cursor() as cur:  # what OFBiz's createPartyGroup service writes: the party, then its group
            cur.execute("BEGIN")
            cur.execute("INSERT INTO party (party_id, party_type_id, status_id, created_stamp) VALUES "
                        "('10030', 'PARTY_GROUP', 'PARTY_ENABLED', now())")
            cur.execute("INSERT INTO party_group (party_id, group_name) VALUES ('10030', 'Vance Refrigeration')")
            cur.execute("COMMIT")
    finally:
        ofbiz.close()
    pair.my_query("INSERT INTO organizations (name, created_at) VALUES ('Globex 🚀 Ünïcode', UTC_TIMESTAMP())")
    pair.my_query("INSERT INTO persons (id, name, emails, organization_id, created_at) VALUES "
                  "(3, 'Road Runner', '[]', 1, UTC_TIMESTAMP())")
    pair.my_query("INSERT INTO attribute_values (entity_type, date_value, entity_id, attribute_id) VALUES "
                  "('persons', '1952-04-16', 3, 9)")
    pair.pg_query("UPDATE person SET birth_date = '1949-09-18' WHERE party_id = 'KR2'")
    pair.my_query("INSERT INTO quotes (id, subject, grand_total, person_id, user_id, created_at) VALUES "
                  "(2, 'Magnets', 20.5, 3, 1, UTC_TIMESTAMP())")
    pair.my_query("INSERT INTO quote_items (id, sku, name, quantity, price, total, product_id, quote_id) VALUES "
                  "(2, 'ACME-RS-01', 'Skates', 1, 10.5, 10.5, 1, 2), (3, 'WG-1111', 'Widget', 1, 10, 10, 2, 2)")
    pair.pg_query("UPDATE product SET description = 'Now in chrome' WHERE product_id = 'WG-1111'")
    pair.my_query("UPDATE products SET name = 'Rocket Skates II' WHERE sku = 'ACME-RS-01'")
    wait_until(lambda: orgs()[-1:] == [("Vance Refrigeration",)] or ("Vance Refrigeration",) in orgs(), 30,
               "OFBiz's party and party_group as one Krayin organization")
    wait_until(lambda: [g[1:] for g in groups()][-1:] == [("PARTY_GROUP", "PARTY_ENABLED", "Globex 🚀 Ünïcode")], 30,
               "Krayin's organization as a party and its party_group row")
    wait_until(lambda: pair.pg_query("SELECT s.first_name, s.last_name, s.birth_date FROM person s JOIN party p "
                                     "USING (party_id) WHERE p.party_id LIKE 'KR%%' ORDER BY p.created_stamp, "
                                     "p.party_id") == [("Wile", "E. Coyote", date(1949, 9, 18)),
                                                       ("Road", "Runner", date(1952, 4, 16))], 30,
               "the new person with the birthday attribute folded in")
    wait_until(lambda: pair.my_query("SELECT date_value FROM attribute_values WHERE entity_id = 1 AND "
                                     "attribute_id = 9") == [(date(1949, 9, 18),)], 30, "OFBiz's birth date as EAV")
    wait_until(lambda: pair.pg_query("SELECT i.order_id, i.order_item_seq_id, i.product_id, i.unit_price, h.party "
                                     "FROM order_item i JOIN (SELECT order_id, order_name AS party FROM order_header) "
                                     "h USING (order_id) WHERE h.party = 'Magnets' ORDER BY 2") == [
        ("KQ2", "2", "ACME-RS-01", Decimal("10.500"), "Magnets"), ("KQ2", "3", "WG-1111", Decimal("10.000"),
                                                                    "Magnets")], 30, "the second quote with both items")
    wait_until(lambda: pair.my_query("SELECT description FROM products WHERE sku = 'WG-1111'") == [("Now in chrome",)],
               30, "OFBiz's description in Krayin")
    wait_until(lambda: pair.pg_query("SELECT product_name FROM product WHERE product_id = 'ACME-RS-01'")
               == [("Rocket Skates II",)], 30, "Krayin's name in OFBiz")

    # names: a person OFBiz creates (createPerson: the party, then its person row) arrives with her name; an edit of
    # OFBiz's last name, and Krayin's rename, each arrive whole
    ofbiz = pair.pg.connect()
    try:
        with ofbiz.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO party (party_id, party_type_id, status_id, created_stamp) VALUES "
                        "('10040', 'PERSON', 'PARTY_ENABLED', now())")
            cur.execute("INSERT INTO person (party_id, first_name, last_name) VALUES ('10040', 'Mary Ann', 'Smith')")
            cur.execute("COMMIT")
    finally:
        ofbiz.close()
    pair.pg_query("UPDATE person SET last_name = 'Halpert' WHERE party_id = '10010'")
    pair.my_query("UPDATE persons SET name = 'Road Runner Jr.' WHERE id = 3")
    wait_until(lambda: pair.my_query("SELECT name, emails FROM persons WHERE id <> 3 ORDER BY id") == [
        ("Wile E. Coyote", '[{"value": "wile@acme.example", "label": "work"}]'), ("Pam Halpert", "[]"),
        ("Mary Ann Smith", "[]")], 30, "OFBiz's new person and Pam's new last name in Krayin")
    wait_until(lambda: pair.pg_query("SELECT first_name, last_name, krayin_name FROM person s JOIN party p USING "
                                     "(party_id) WHERE p.party_id LIKE 'KR%%' AND first_name = 'Road'")
               == [("Road", "Runner Jr.", "Road Runner Jr.")], 30, "Krayin's rename split into OFBiz's two names")
    assert pair.pg_query("SELECT first_name, last_name FROM person WHERE party_id IN ('10010', '10040') ORDER BY 1") \
        == [("Mary Ann", "Smith"), ("Pam", "Halpert")]  # OFBiz's own names as OFBiz wrote them

    # the taxable flag both ways through the fold's value map
    pair.my_query("INSERT INTO attribute_values (entity_type, boolean_value, entity_id, attribute_id) VALUES "
                  "('products', 0, 1, 21)")
    pair.pg_query("UPDATE product SET taxable = 'N' WHERE product_id = 'WG-1111'")
    wait_until(lambda: pair.pg_query("SELECT product_id, taxable FROM product ORDER BY 1")
               == [("ACME-RS-01", "N"), ("WG-1111", "N")], 30, "Krayin's 0 as OFBiz's 'N'")
    wait_until(lambda: pair.my_query("SELECT p.sku, a.boolean_value FROM attribute_values a JOIN products p ON "
                                     "p.id = a.entity_id WHERE a.entity_type = 'products' AND a.attribute_id = 21 "
                                     "ORDER BY 1") == [("ACME-RS-01", 0), ("WG-1111", 0)], 30, "OFBiz's 'N' as 0")

    # a PARTY_GROUP party without its party_group row: no name for Krayin's NOT NULL column, queued
    pair.pg_query("INSERT INTO party (party_id, party_type_id, status_id) VALUES ('10031', 'PARTY_GROUP', "
                  "'PARTY_ENABLED')")
    def queued() -> int:
        return pair.my_query(f"SELECT COUNT(*) FROM `{pair.state_schema}`.dead_letter")[0][0]
    wait_until(lambda: queued() == 1, 30, "the nameless party queued")
    (queued_row,) = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert queued_row["mapping"] == "organizations" and \
        "Field 'name' doesn't have a default value" in queued_row["error"], queued_row
    pair.pg_query("INSERT INTO party_group (party_id, group_name) VALUES ('10031', 'Prince Family Paper')")
    code, out = page_cli(pair, "dlq", "retry", "--all")
    assert code == 0, out
    wait_until(lambda: ("Prince Family Paper",) in orgs(), 30, "the party with its name, retried")
    wait_until(lambda: queued() == 0, 30, "the queue empty")
    assert pair.cli("dlq", "list", "--json").stdout.strip() == ""

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.my_query("UPDATE organizations SET name = 'Acme Corp' WHERE id = 1")
    pair.pg_query("UPDATE person SET birth_date = '1952-04-17' WHERE first_name = 'Road'")
    pair.start()
    wait_until(lambda: pair.pg_query("SELECT group_name FROM party_group WHERE party_id = 'KR1'") == [("Acme Corp",)],
               30, "Krayin's rename made while stopped")
    wait_until(lambda: pair.my_query("SELECT date_value FROM attribute_values WHERE entity_id = 3 AND "
                                     "attribute_id = 9") == [(date(1952, 4, 17),)], 30, "OFBiz's edit made while stopped")
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert sorted(orgs()) == [("Acme Corp",), ("Dunder Mifflin",), ("Globex 🚀 Ünïcode",), ("Prince Family Paper",),
                              ("Vance Refrigeration",)]
    assert pair.pg_query("SELECT count(*) FROM party_group") == [(5,)]
    assert pair.my_query("SELECT count(*) FROM persons") == [(4,)]
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
