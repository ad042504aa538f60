"""docs/walkthrough-espocrm-tryton.md run as written, on real servers: EspoCRM's schema (17-character hex ids,
`deleted` flags, DOUBLE money, custom `c_` fields) on MariaDB, Tryton's (sequence ids, contact mechanisms and
addresses as child rows, template/variant/list price, sale and lines) on PostgreSQL, the connections named
`espocrm` and `tryton`, the MariaDB one first. The page's schemas, seed rows, key default and mapping files are
its `file:` blocks; then check, setup, sync, verify, run, edits on both sides, a won opportunity, edge values,
refused rows (dlq, retry), deletes and soft deletes, a concurrent edit, a stop and start, verify."""
from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.integration.harness import page_cli, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-espocrm-tryton.md"
ACME = "6571b2e4c1a9f03d2"
DEAL = "6571b2e4c1ad77c04"
GLOBEX = "6571c0ffee0000001"


def test_the_espocrm_tryton_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "tryton.sql", "espocrm.sql",
                     pg_scripts=("tryton-keys.sql", "tryton-seed.sql"), my_seed=("espocrm-seed.sql",),
                     names=("tryton", "espocrm"), maria_first=True)

    def account(where: str, params: tuple = ()) -> list[tuple]:
        return pair.my_query("SELECT name, deleted, website, billing_address_street, billing_address_city FROM account "
                             f"WHERE {where}", params)

    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "3 warnings, 0 failed" in out, out
    assert "product_template.name is NOT NULL" in out and "sale_line.sale is NOT NULL" in out, out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "sale_lines espocrm_to_tryton  1 waiting for sales" in out, out  # not won yet
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out  # write_uid (a two-way constant) is not compared

    # EspoCRM's accounts in Tryton: the next ids, codes from Tryton's sequence, the web site and address as rows
    assert pair.pg_query("SELECT p.name, p.code, p.active, p.create_uid, m.value, a.street, a.city FROM party_party p "
                         "LEFT JOIN party_contact_mechanism m ON m.party = p.id AND m.type = 'website' "
                         "LEFT JOIN party_address a ON a.party = p.id WHERE p.id > 10 ORDER BY p.id") == [
        ("Acme Corporation", "100", True, 0, "https://acme.example", "1 Road Runner Way", "Phoenix"),
        ("Old Lead Ltd", "101", False, 0, None, None, None)]
    # Tryton's parties in EspoCRM under ids of EspoCRM's shape, with the web site and address folded in
    made = pair.my_query("SELECT id, type FROM account WHERE name IN ('Dunder Mifflin', 'Michael Scott Paper Company')")
    assert len(made) == 2 and all(re.fullmatch("[0-9a-f]{17}", i) and t == "Customer" for i, t in made), made
    assert account("name = 'Dunder Mifflin'") == [
        ("Dunder Mifflin", 0, "https://dundermifflin.example", "1725 Slough Avenue", "Scranton")]
    # products: a template, its variant and its list price (the double's shortest decimal)
    assert pair.pg_query("SELECT t.name, t.code, t.type, t.active, p.code, l.list_price FROM product_template t "
                         "JOIN product_product p ON p.template = t.id JOIN product_list_price l ON l.template = t.id "
                         "ORDER BY t.id") == [("Rocket Skates", "ACME-RS-01", "goods", True, "ACME-RS-01",
                                               Decimal("149.99")),
                                              ("Giant Magnet", "ACME-GM-02", "goods", True, "ACME-GM-02", Decimal("0.1"))]
    assert pair.pg_query("SELECT count(*) FROM sale_sale") == [(0,)]

    # streaming
    pair.start()
    pair.my_query("INSERT INTO account (id, name, deleted, website, billing_address_street, billing_address_city, "
                  "created_at, modified_at) VALUES (%s, 'Globex 🚀 Ünïcode', 0, 'https://globex.example', "
                  "'Elm Street 5', 'Springfield', UTC_TIMESTAMP(), UTC_TIMESTAMP())", (GLOBEX,))
    pair.pg_query("INSERT INTO party_party (name, active, create_uid, create_date) VALUES ('Initech', true, 1, now())")
    pair.pg_query("INSERT INTO party_contact_mechanism (type, value, party, active) SELECT 'website', "
                  "'https://initech.example', id, true FROM party_party WHERE name = 'Initech'")
    pair.pg_query("INSERT INTO party_address (party, street, city, active) SELECT id, 'Main St 1', 'Austin', true "
                  "FROM party_party WHERE name = 'Initech'")
    pair.my_query("UPDATE opportunity SET stage = 'Closed Won' WHERE id = %s", (DEAL,))
    pair.my_query("INSERT INTO opportunity_item (id, name, deleted, opportunity_id, product_id, quantity, unit_price, "
                  "`order`) VALUES ('6571b2e4c1ae1b2d6', 'Magnet', 0, %s, '6571b2e4c1ac0f5a3', 2.5, 0.1, 2)", (DEAL,))
    pair.my_query("INSERT INTO product (id, name, deleted, part_number, list_price) VALUES "
                  "('6571e00000000001', 'Big', 0, 'B1', 123456789012.34567), ('6571e00000000002', 'Tiny', 0, 'T1', 1e-7)")
    wait_until(lambda: pair.pg_query("SELECT p.name, p.active, m.value, a.street, a.city FROM party_party p "
                                     "JOIN party_contact_mechanism m ON m.party = p.id JOIN party_address a ON "
                                     "a.party = p.id WHERE p.name LIKE 'Globex%%'")
               == [("Globex 🚀 Ünïcode", True, "https://globex.example", "Elm Street 5", "Springfield")], 30,
               "Globex in Tryton: one address row carries both folded columns")
    wait_until(lambda: account("name = 'Initech'") == [("Initech", 0, "https://initech.example", "Main St 1",
                                                         "Austin")], 30, "Initech in EspoCRM")
    wait_until(lambda: pair.pg_query("SELECT s.state, s.reference, s.description, s.sale_date, p.name, l.sequence, "
                                     "l.description, l.quantity, l.unit_price FROM sale_sale s JOIN party_party p ON "
                                     "p.id = s.party JOIN sale_line l ON l.sale = s.id ORDER BY l.sequence")
               == [("draft", DEAL, "Acme Q4 skates", date(2026, 12, 31), "Acme Corporation", 1, "Rocket Skates",
                    10.0, Decimal("149.99")),
                   ("draft", DEAL, "Acme Q4 skates", date(2026, 12, 31), "Acme Corporation", 2, "Magnet", 2.5,
                    Decimal("0.1"))], 30, "the won opportunity as a draft sale with both lines")
    wait_until(lambda: pair.pg_query("SELECT t.name, l.list_price FROM product_template t JOIN product_list_price l "
                                     "ON l.template = t.id WHERE t.code IN ('B1', 'T1') ORDER BY t.code")
               == [("Big", Decimal("123456789012.34567")), ("Tiny", Decimal("1E-7"))], 30, "doubles at the edges")
    # the sale confirmed in Tryton: its state on the opportunity
    pair.pg_query("UPDATE sale_sale SET state = 'confirmed'")
    wait_until(lambda: pair.my_query("SELECT c_order_state FROM opportunity WHERE id = %s", (DEAL,))
               == [("confirmed",)], 30, "the order state in EspoCRM")

    # rows the other side refuses: queued with table, key and column; the stream goes on
    pair.pg_query("INSERT INTO party_address (party, street, city, active) VALUES (2, 'Warehouse Rd', 'Scranton', true)")
    pair.pg_query("INSERT INTO party_party (name, active) VALUES (repeat('n', 300), true)")
    pair.my_query("INSERT INTO product (id, name, deleted, part_number) VALUES ('6571e00000000003', NULL, 0, 'N1')")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) >= 4, 30, "four refused rows")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    errors = {(q["mapping"], q["key"][0] if isinstance(q["key"], list) else q["key"]): q["error"] for q in queued}
    assert sorted(errors) == [("customer_city", 5), ("customer_street", 5), ("customers", 15),
                              ("products", "6571e00000000003")], errors
    assert "parent 2 has 2 rows of {'active': True} (keys [(1,), (5,)])" in errors[("customer_street", 5)]
    assert "an earlier change of this row is queued" in errors[("customer_city", 5)]
    assert "column name: mapping customers: (1406) Data too long for column 'name'" in errors[("customers", 15)]
    assert 'column name: mapping products: null value in column "name"' in errors[("products", "6571e00000000003")]

    # deletes: EspoCRM's soft delete archives the party; Tryton's delete of a party (its web site and address
    # go with it, ON DELETE CASCADE) is EspoCRM's soft delete, the folded columns cleared -- the web site too,
    # although contact mechanism 5 shares its key with the queued address 5
    pair.my_query("UPDATE account SET deleted = 1 WHERE id = %s", (GLOBEX,))
    pair.pg_query("DELETE FROM party_party WHERE name = 'Initech'")
    wait_until(lambda: pair.pg_query("SELECT active FROM party_party WHERE name LIKE 'Globex%%'") == [(False,)], 30,
               "Globex archived in Tryton")
    wait_until(lambda: account("name = 'Initech'") == [("Initech", 1, None, None, None)], 30,
               "Initech deleted in EspoCRM, its web site and address cleared")

    # the fixes: the second address goes, the long name is shortened, the product named; retried
    pair.pg_query("DELETE FROM party_address WHERE street = 'Warehouse Rd'")
    pair.pg_query("UPDATE party_party SET name = 'Vance Refrigeration' WHERE length(name) = 300")
    pair.my_query("UPDATE product SET name = 'Nameless no more' WHERE id = '6571e00000000003'")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) >= 7, 30, "the fixes queued behind")
    code, out = page_cli(pair, "dlq", "retry", "--all")
    assert code == 0, out
    wait_until(lambda: account("name = 'Vance Refrigeration'") == [("Vance Refrigeration", 0, None, None, None)], 30,
               "the renamed party in EspoCRM")
    wait_until(lambda: pair.pg_query("SELECT name FROM product_template WHERE code = 'N1'") == [("Nameless no more",)],
               30, "the named product in Tryton")
    assert account("name = 'Dunder Mifflin'")[0][3:] == ("1725 Slough Avenue", "Scranton")
    assert pair.cli("dlq", "list", "--json").stdout.strip() == ""

    # both sides rename Acme before either edit arrives: one name on both sides, the race recorded once each
    race(pair, "UPDATE account SET name = 'Acme Corp (CRM)' WHERE id = %s", (ACME,),
         "UPDATE party_party SET name = 'Acme Corp (ERP)' WHERE code = '100'")
    wait_recorded_once(pair)
    wait_until(lambda: [r[0] for r in account("id = %s", (ACME,))]
               == [r[0] for r in pair.pg_query("SELECT name FROM party_party WHERE code = '100'")], 30, "one name")
    winner = pair.pg_query("SELECT winner FROM replicator.conflicts WHERE mapping = 'customers'")[0][0]
    assert account("id = %s", (ACME,))[0][0] == {"espocrm": "Acme Corp (CRM)", "tryton": "Acme Corp (ERP)"}[winner]
    code, out = page_cli(pair, "conflicts", "--key", ACME)
    assert code == 0 and len(out.splitlines()) == 3 and f"{winner} won" in out, out

    # an opportunity saved with a zero close date (a session without NO_ZERO_DATE) and won: its sale has no date
    # (the field's zero_date: null), counted; Tryton's user deletes that draft sale, and the opportunity's next
    # edit says it is not written
    crm = pair.maria.connect()
    try:
        with crm.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("INSERT INTO opportunity (id, name, deleted, stage, close_date, account_id) VALUES "
                        "('6571d00000000001', 'Zero date deal', 0, 'Closed Won', '0000-00-00', %s)", (ACME,))
    finally:
        crm.close()
    wait_until(lambda: pair.pg_query("SELECT sale_date FROM sale_sale WHERE reference = '6571d00000000001'")
               == [(None,)], 30, "the zero date as NULL (zero_date: null)")
    assert pair.metric("replicator_zero_dates_total", direction="espocrm_to_tryton") >= 1
    pair.pg_query("DELETE FROM sale_sale WHERE reference = '6571d00000000001'")
    pair.my_query("UPDATE opportunity SET name = 'Zero date deal, renamed' WHERE id = '6571d00000000001'")
    wait_until(lambda: "changed, but its counterpart public.sale_sale key" in pair.log(), 30, "the missing sale logged")
    assert "mapping sales: espocrm key ('6571d00000000001',) changed" in pair.log(), pair.log()[-3000:]
    pair.my_query("DELETE FROM opportunity WHERE id = '6571d00000000001'")  # (the sale stays deleted: ignore)

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.my_query("UPDATE account SET website = 'https://acme.example/new' WHERE id = %s", (ACME,))
    pair.pg_query("UPDATE party_address SET city = 'Stamford' WHERE city = 'Scranton'")
    pair.start()
    wait_until(lambda: pair.pg_query("SELECT m.value FROM party_contact_mechanism m JOIN party_party p ON p.id = m.party "
                                     "WHERE p.code = '100'") == [("https://acme.example/new",)], 30,
               "EspoCRM's edit made while stopped")
    wait_until(lambda: account("name = 'Dunder Mifflin'")[0][4] == "Stamford", 30, "Tryton's edit made while stopped")
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.pg_query("SELECT count(*) FROM party_contact_mechanism WHERE type = 'website'") == [(3,)]
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
