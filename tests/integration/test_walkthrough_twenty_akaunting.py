"""docs/walkthrough-twenty-akaunting.md run as written, on real servers: Twenty's CRM schema (a workspace schema,
quoted camelCase columns, uuid keys, enum stages, micros) on PostgreSQL, Akaunting's (prefixed tables, a tenant
column, a `type` discriminator, double(15,4) amounts, Laravel soft deletes) on MariaDB, the connections named
`twenty` and `akaunting`. The page's schemas, seed rows and mapping files are its `file:` blocks; then check,
setup, sync, verify, run, edits on both sides, a won opportunity, edge values, a concurrent edit, refused rows
(dlq, explain, retry), a stop and start, verify."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from tests.integration.harness import page_cli, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-twenty-akaunting.md"
WS = "workspace_1wgvd1injqtife6y4rvfbu3h5"
LINKEDIN = "20202020-3ec3-4fe3-8997-b76aa0bfa408"
FACEBOOK = "20202020-5d81-46d6-bf83-f7fd33ea6102"
RENEWAL = "20202020-be10-422b-a663-16bd3c2228e1"


def test_the_twenty_akaunting_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "twenty.sql", "akaunting.sql", pg_scripts=("twenty-seed.sql",),
                     my_seed=("akaunting-seed.sql",), names=("twenty", "akaunting"))

    def company(where: str, params: tuple = ()) -> list[tuple]:
        return pair.pg_query(f'SELECT name, "domainNamePrimaryLinkUrl", "addressAddressCity", "deletedAt" '
                             f"FROM {WS}.company WHERE {where}", params)

    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "10 warnings, 0 failed" in out, out
    assert out.count("allows zero dates") == 2 and "ak_contacts.deleted_at (TIMESTAMP)" in out, out
    assert "after its transform NUMERIC (shifted) -> akaunting:" in out and "allowed by lossy: allow" in out, out
    assert "person.companyId may be NULL" not in out, out  # the filter keeps a person without a company out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    contacts = {name: (cid, rest) for cid, name, *rest in pair.my_query(
        "SELECT id, name, company_id, type, currency_code, website, created_from, deleted_at FROM ak_contacts "
        "WHERE id > 3")}
    assert contacts == {
        "Linkedin": (4, [1, "customer", "USD", "https://www.linkedin.com", "replicator::twenty", None]),
        "Facebook": (5, [1, "customer", "USD", "https://www.facebook.com", "replicator::twenty", None])}, contacts
    assert sorted(pair.my_query("SELECT contact_id, name, email, phone, type FROM ak_contact_persons WHERE id > 1")) \
        == [(4, "Christoph Callisto", "christoph.calisto@linkedin.com", "+33789012345", "customer"),
            (5, "Sylvie Palmer", "sylvie.palmer@facebook.com", "+33780123456", "customer")]
    (globex,) = pair.pg_query(f'SELECT id, "createdBySource", "createdByName", "addressAddressCity" FROM {WS}.company '
                              f"WHERE name = 'Globex Corporation'")
    assert globex[1:] == ("API", "Akaunting", "Springfield"), globex
    assert pair.pg_query(f'SELECT "nameFirstName", "nameLastName", "emailsPrimaryEmail", "companyId" FROM {WS}.person '
                         f"WHERE \"emailsPrimaryEmail\" = 'hank@globex.example'") == [
        ("", "Hank Scorpio", "hank@globex.example", globex[0])]
    # the vendor and company 2's customer stay in Akaunting; the opportunity at PROPOSAL creates nothing
    assert pair.pg_query(f"SELECT count(*) FROM {WS}.company") == [(3,)]
    assert pair.my_query("SELECT count(*) FROM ak_documents") == [(0,)]
    assert pair.my_query(f"SELECT count(*) FROM `{pair.state_schema}`.parked") == [(0,)]

    # streaming
    pair.start()
    pair.pg_query(f"""UPDATE {WS}.opportunity SET stage = 'CUSTOMER', "amountAmountMicros" = 1234567 WHERE id = %s""",
                  (RENEWAL,))
    pair.pg_query(f"""INSERT INTO {WS}.company (id, name, "domainNamePrimaryLinkUrl")
                      VALUES ('30303030-0000-4000-8000-000000000001', 'Café 🚀 Ünïcode', '')""")
    pair.pg_query(f"""INSERT INTO {WS}.opportunity (name, "amountAmountMicros", "amountCurrencyCode", "closeDate", stage,
                      "companyId") VALUES ('Café deal', 5000000, 'EUR', now(), 'MEETING',
                      '30303030-0000-4000-8000-000000000001')""")
    pair.pg_query(f"""UPDATE {WS}.company SET "deletedAt" = '2026-12-07 10:00:00.987654+05' WHERE id = %s""",
                  (FACEBOOK,))
    pair.my_query("UPDATE ak_contacts SET website = NULL WHERE id = 1")
    pair.my_query("UPDATE ak_contacts SET deleted_at = '2026-12-07 08:30:00' WHERE name = 'Linkedin'")
    wait_until(lambda: pair.my_query("SELECT d.document_number, d.status, d.contact_id, d.amount, d.currency_code, "
                                     "d.due_at, i.name, i.quantity, i.price, i.total FROM ak_documents d JOIN "
                                     "ak_document_items i ON i.document_id = d.id WHERE d.type = 'invoice'")
               == [(RENEWAL, "draft", 4, 1.2346, "USD", datetime(2024, 6, 30), "Linkedin renewal",
                    1.0, 1.2346, 1.2346)], 30, "the won opportunity as an invoice with its line")
    # the accountant adds the tax in Akaunting; a rename in Twenty follows, the amounts stay Akaunting's
    pair.my_query("UPDATE ak_documents SET amount = 1.4691 WHERE document_number = %s", (RENEWAL,))
    pair.my_query("UPDATE ak_document_items SET tax = 0.2345, total = 1.4691")
    pair.pg_query(f"UPDATE {WS}.opportunity SET name = 'Linkedin renewal 2025' WHERE id = %s", (RENEWAL,))
    wait_until(lambda: pair.my_query("SELECT d.order_number, d.amount, i.name, i.price, i.tax, i.total FROM "
                                     "ak_documents d JOIN ak_document_items i ON i.document_id = d.id")
               == [("Linkedin renewal 2025", 1.4691, "Linkedin renewal 2025", 1.2346, 0.2345, 1.4691)], 30,
               "the rename, over the accountant's amounts")
    wait_until(lambda: pair.my_query("SELECT website, company_id, type FROM ak_contacts WHERE name = %s",
                                     ("Café 🚀 Ünïcode",)) == [(None, 1, "customer")], 30, "the 4-byte name")
    wait_until(lambda: pair.my_query("SELECT CAST(deleted_at AS CHAR) FROM ak_contacts WHERE id = 5")
               == [("2026-12-07 05:00:00",)], 30, "Facebook's soft delete, in UTC, whole seconds")
    wait_until(lambda: company("id = %s", (globex[0],))[0][1] == "", 30, "Globex's web site cleared: ''")
    wait_until(lambda: company("id = %s", (LINKEDIN,))[0][3] is not None, 30, "Linkedin's soft delete in Twenty")
    assert company("id = %s", (LINKEDIN,))[0][3] == datetime(2026, 12, 7, 8, 30, tzinfo=timezone.utc)
    # the opportunity that is not won: nothing in Akaunting, nothing parked for its new company
    assert pair.my_query("SELECT count(*) FROM ak_documents") == [(1,)]
    assert pair.my_query(f"SELECT count(*) FROM `{pair.state_schema}`.parked") == [(0,)]

    # a company destroyed for good in Twenty (one without people: see the page): its contact goes
    cafe = pair.my_query("SELECT id FROM ak_contacts WHERE name = %s", ("Café 🚀 Ünïcode",))[0][0]
    pair.pg_query(f"DELETE FROM {WS}.company WHERE id = '30303030-0000-4000-8000-000000000001'")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM ak_contacts WHERE id = %s", (cafe,)) == [(0,)], 30,
               "the café destroyed")

    # rows Akaunting refuses: queued with table, key and column; the stream goes on
    pair.pg_query(f"""INSERT INTO {WS}.company (id, name, "addressAddressStreet1")
                      VALUES ('30303030-0000-4000-8000-000000000002', 'Long Street Inc', repeat('x', 70000))""")
    pair.pg_query(f"""INSERT INTO {WS}.opportunity (id, name, "amountAmountMicros", "amountCurrencyCode", "closeDate",
                      stage, "companyId") VALUES ('30303030-0000-4000-8000-000000000003', 'Too big', 100000000000000000,
                      'USD', now(), 'CUSTOMER', '{LINKEDIN}')""")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) >= 2, 30, "two refused rows queued")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    errors = " | ".join(q["error"] for q in queued)
    assert "column address: mapping customers: (1406) Data too long for column 'address'" in errors, errors
    assert "30303030-0000-4000-8000-000000000002" in errors, errors
    assert "column amount" in errors and "(1264) Out of range value" in errors, errors
    code, out = page_cli(pair, "dlq", "list", "--key", "30303030-0000-4000-8000-000000000002")  # a uuid key
    assert code == 0 and "akaunting:1 " in out and "akaunting:2" not in out, out
    code, out = page_cli(pair, "explain", "--mapping", "customers", "--side", "twenty", "--key",
                         "30303030-0000-4000-8000-000000000002")
    assert code == 0 and "would insert a new akaunting" in out, out
    # both fixed in Twenty: the fixes queue behind the refused changes, and a retry writes the latest images
    pair.pg_query(f"""UPDATE {WS}.company SET "addressAddressStreet1" = '1 Short Street'
                      WHERE id = '30303030-0000-4000-8000-000000000002'""")
    pair.pg_query(f"""UPDATE {WS}.opportunity SET "amountAmountMicros" = 99999999999990000
                      WHERE id = '30303030-0000-4000-8000-000000000003'""")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) >= 4, 30, "the fixes queued behind")
    code, out = page_cli(pair, "dlq", "retry", "--all")
    assert code == 0, out
    wait_until(lambda: pair.my_query("SELECT address FROM ak_contacts WHERE name = 'Long Street Inc'")
               == [("1 Short Street",)], 30, "the fixed company in Akaunting")
    wait_until(lambda: pair.my_query("SELECT d.amount, i.total FROM ak_documents d JOIN ak_document_items i ON "
                                     "i.document_id = d.id WHERE d.order_number = 'Too big'")
               == [(99999999999.99, 99999999999.99)], 30, "the largest amount double(15,4) holds, and its line")
    assert pair.cli("dlq", "list", "--json").stdout.strip() == ""

    # both sides edit Globex's city before either edit arrives: the first connection (twenty) wins the tie
    akaunting_id = pair.my_query("SELECT id FROM ak_contacts WHERE name = 'Globex Corporation'")[0][0]
    race(pair, "UPDATE ak_contacts SET city = 'Springfield (ERP)' WHERE id = %s", (akaunting_id,),
         f"""UPDATE {WS}.company SET "addressAddressCity" = 'Springfield (CRM)' WHERE id = %s""", (globex[0],))
    wait_recorded_once(pair)
    wait_until(lambda: [r[0] for r in pair.my_query("SELECT city FROM ak_contacts WHERE id = %s", (akaunting_id,))]
               == [company("id = %s", (globex[0],))[0][2]], 30, "one city on both sides")
    code, out = page_cli(pair, "conflicts", "--mapping", "customers")
    lines = out.splitlines()
    assert code == 0 and "KEY (twenty)" in lines[0] and "TWENTY VALUE" in lines[0], out
    code, by_key = page_cli(pair, "conflicts", "--key", str(globex[0]))  # Twenty's uuid finds the race
    assert code == 0 and by_key == out, by_key
    code, by_key = page_cli(pair, "conflicts", "--key", str(akaunting_id))  # ... and Akaunting's id too
    assert code == 0 and len(by_key.splitlines()) == 3, by_key
    winner = pair.pg_query("SELECT winner FROM replicator.conflicts WHERE mapping = 'customers'")[0][0]
    assert len(lines) == 3 and all(f"{winner} won" in line for line in lines[1:]), out
    assert company("id = %s", (globex[0],))[0][2] == {"twenty": "Springfield (CRM)",
                                                      "akaunting": "Springfield (ERP)"}[winner]

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.pg_query(f"""UPDATE {WS}.person SET "phonesPrimaryPhoneNumber" = '+33700000000'
                      WHERE "nameFirstName" = 'Christoph'""")
    pair.my_query("UPDATE ak_contacts SET zip_code = '49008' WHERE id = %s", (akaunting_id,))
    pair.start()
    wait_until(lambda: pair.my_query("SELECT phone FROM ak_contact_persons WHERE name = 'Christoph Callisto'")
               == [("+33700000000",)], 30, "Twenty's edit made while stopped")
    wait_until(lambda: company("id = %s", (globex[0],)) and pair.pg_query(
        f'SELECT "addressAddressPostcode" FROM {WS}.company WHERE id = %s', (globex[0],)) == [("49008",)], 30,
        "Akaunting's edit made while stopped")
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
