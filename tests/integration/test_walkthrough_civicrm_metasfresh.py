"""docs/walkthrough-civicrm-metasfresh.md run as written, on real servers: CiviCRM's schema (one civicrm_contact
table for organisations and individuals told apart by contact_type, e-mails and phones as child rows with
is_primary, a civicrm_value_* custom-field table keyed by a unique entity_id, the self-referencing employer_id,
the phone_numeric trigger) on MariaDB, metasfresh's (NUMERIC(10) ids from native sequences, the ad_client_id /
ad_org_id tenancy columns, 'Y'/'N' CHAR(1) flags, NOT NULL createdby / updatedby) on PostgreSQL, the connections
named `civicrm` (first) and `metasfresh`. The page's schemas, key defaults, seed rows and mapping files are its
`file:` blocks; then scaffold, check, setup, sync, verify, run, edits on both sides as each application saves
them, a race, a refused row, a stop and start, verify."""
from __future__ import annotations

import json
from pathlib import Path

from tests.integration.harness import page_cli, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-civicrm-metasfresh.md"


def test_the_civicrm_metasfresh_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "metasfresh.sql", "civicrm.sql", pg_scripts=("metasfresh-keys.sql",),
                     pg_seed=("metasfresh-seed.sql",), my_seed=("civicrm-seed.sql",),
                     names=("metasfresh", "civicrm"), maria_first=True)

    code, out = page_cli(pair, "scaffold", "--table", "civicrm=civicrm_contact", "--table", "metasfresh=c_bpartner")
    assert code == 0 and "link: {crosswalk: true}      # both sides number their own rows" in out, out
    assert "#   isactive CHAR(1) CHECK IN ('Y','N')" in out, out  # NOT NULL without a default: needs a field
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "4 warnings, 0 failed" in out, out
    assert "civicrm_contact.display_name may be NULL, metasfresh:public.ad_user.name is NOT NULL" in out, out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    # CiviCRM's organisations in metasfresh: numbers from c_bpartner_seq, search keys from the page's sequence,
    # tenancy and audit columns, the trashed one inactive, the VAT id from the custom group's row
    assert pair.pg_query("SELECT c_bpartner_id, value, ad_client_id, ad_org_id, iscompany, iscustomer, isactive, "
                         "name, companyname, vataxid, createdby FROM c_bpartner WHERE value LIKE 'CIVI-%' "
                         "ORDER BY c_bpartner_id") == [
        (1000003, "CIVI-1000000", 1000000, 1000000, "Y", "Y", "Y", "Default Organization", "Default Organization",
         None, 100),
        (1000004, "CIVI-1000001", 1000000, 1000000, "Y", "Y", "Y", "Ōtsuka Shōji 株式会社", "Ōtsuka Shōji 株式会社",
         "JP-T1234567890123", 100),
        (1000005, "CIVI-1000002", 1000000, 1000000, "Y", "Y", "N", "Trashed Org Ltd", "Trashed Org Ltd", None, 100)]
    # metasfresh's company in CiviCRM with its search key as external identifier and its VAT id; the person
    # partner and the other client's partner stay in metasfresh
    assert pair.my_query("SELECT id, contact_type, organization_name, display_name, sort_name, external_identifier "
                         "FROM civicrm_contact WHERE id > 5") == [
        (6, "Organization", "Bäckerei Müller & Söhne GmbH", "Bäckerei Müller & Söhne GmbH",
         "Bäckerei Müller & Söhne GmbH", "10001"),
        (7, "Individual", None, "Jürgen O'Brien-Weiß", "O'Brien-Weiß, Jürgen", None)]
    assert pair.my_query("SELECT entity_id, vat_number_2 FROM civicrm_value_org_details_1 ORDER BY id") == [
        (2, "JP-T1234567890123"), (6, "DE811569869")]
    # contacts both ways with their employer, primary e-mail and phone; the home address and mobile stay in CiviCRM
    assert pair.pg_query("SELECT name, firstname, lastname, email, phone, title, c_bpartner_id FROM ad_user "
                         "ORDER BY ad_user_id") == [
        ("Jürgen O'Brien-Weiß", "Jürgen", "O'Brien-Weiß", "j.obrien@baeckerei-mueller.example", "+49 221 1234-56",
         None, 1000000),
        ("Zoë D'Arcy", "Zoë", "D'Arcy", "zoe.darcy@otsuka.example", "+81 3-1234-5678", "Buyer", 1000004)]
    assert pair.my_query("SELECT c.employer_id, e.email, e.is_primary, e.location_type_id, p.phone, p.phone_numeric "
                         "FROM civicrm_contact c JOIN civicrm_email e ON e.contact_id = c.id JOIN civicrm_phone p ON "
                         "p.contact_id = c.id WHERE c.id = 7") == [
        (6, "j.obrien@baeckerei-mueller.example", 1, None, "+49 221 1234-56", "49221123456")]
    assert pair.my_query("SELECT sku, name, description, is_active FROM civicrm_product ORDER BY id") == [
        ("TOTE-01", "Tote bag „Spring“", "Cotton, 38 × 42 cm", 1), ("MUG-OLD", "Mug (discontinued)", None, 0)]

    # streaming
    pair.start()
    # CiviCRM saves an organisation with its custom field, one transaction
    civi = pair.maria.connect(autocommit=False)
    try:
        with civi.cursor() as cur:
            cur.execute("INSERT INTO civicrm_contact (contact_type, organization_name, display_name, sort_name) "
                        "VALUES ('Organization', 'Globex Ges.m.b.H.', 'Globex Ges.m.b.H.', 'Globex Ges.m.b.H.')")
            globex = cur.lastrowid
            cur.execute("INSERT INTO civicrm_value_org_details_1 (entity_id, vat_number_2) VALUES (%s, "
                        "'ATU12345678')", (globex,))
            # and an individual employed there, with a primary e-mail and phone, as CiviCRM's Contact.create does
            cur.execute("INSERT INTO civicrm_contact (contact_type, first_name, last_name, display_name, sort_name, "
                        "employer_id, organization_name) VALUES ('Individual', 'Hank', 'Scorpio', 'Hank Scorpio', "
                        "'Scorpio, Hank', %s, 'Globex Ges.m.b.H.')", (globex,))
            hank = cur.lastrowid
            cur.execute("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) VALUES "
                        "(%s, 2, 'hank@globex.example', 1)", (hank,))
            cur.execute("INSERT INTO civicrm_phone (contact_id, location_type_id, is_primary, phone, phone_type_id) "
                        "VALUES (%s, 2, 1, '+43 1 5555', 1)", (hank,))
        civi.commit()
    finally:
        civi.close()
    wait_until(lambda: pair.pg_query("SELECT u.email, u.phone, b.name, b.vataxid, b.value LIKE 'CIVI-%' FROM ad_user u "
                                     "JOIN c_bpartner b USING (c_bpartner_id) WHERE u.lastname = 'Scorpio'") == [
        ("hank@globex.example", "+43 1 5555", "Globex Ges.m.b.H.", "ATU12345678", True)], 30,
               "Globex with its VAT id and Hank with his e-mail and phone in metasfresh")
    # Zoë's primary e-mail changes as CiviCRM saves it: the old row loses is_primary, then the new row is added
    civi = pair.maria.connect(autocommit=False)
    try:
        with civi.cursor() as cur:
            cur.execute("UPDATE civicrm_email SET is_primary = 0 WHERE contact_id = 5")
            cur.execute("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) VALUES "
                        "(5, 2, 'z.darcy@otsuka-shoji.example', 1)")
        civi.commit()
    finally:
        civi.close()
    # metasfresh: Jürgen's phone, and the bakery deactivated
    pair.pg_query("UPDATE ad_user SET phone = '+49 221 9876-0', updated = now(), updatedby = 1000001 "
                  "WHERE ad_user_id = 1000000")
    pair.pg_query("UPDATE c_bpartner SET isactive = 'N', updated = now() WHERE c_bpartner_id = 1000000")
    wait_until(lambda: pair.pg_query("SELECT email FROM ad_user WHERE ad_user_id = 1000001") == [
        ("z.darcy@otsuka-shoji.example",)], 30, "Zoë's new primary e-mail in metasfresh")
    wait_until(lambda: pair.my_query("SELECT phone, phone_numeric FROM civicrm_phone WHERE contact_id = 7") == [
        ("+49 221 9876-0", "4922198760")], 30, "Jürgen's phone in CiviCRM, its digits by CiviCRM's trigger")
    wait_until(lambda: pair.my_query("SELECT is_deleted FROM civicrm_contact WHERE id = 6") == [(1,)], 30,
               "the deactivated partner in CiviCRM's trash")

    # both sides rename Ōtsuka before either edit arrives: one decision, the same on both sides, recorded on each
    race(pair, "UPDATE civicrm_contact SET organization_name = %s, display_name = %s, sort_name = %s WHERE id = 2",
         ("Ōtsuka (CiviCRM)",) * 3, "UPDATE c_bpartner SET name = 'Ōtsuka (metasfresh)', updated = now() "
         "WHERE c_bpartner_id = 1000004")
    wait_recorded_once(pair, "organisations")
    wait_until(lambda: pair.pg_query("SELECT name FROM c_bpartner WHERE c_bpartner_id = 1000004")
               == pair.my_query("SELECT organization_name FROM civicrm_contact WHERE id = 2"), 30,
               "one name on both sides")

    # a CiviCRM e-mail longer than metasfresh's VARCHAR(60): queued, naming the column; the stream goes on
    long_email = "procurement.department.central.purchasing@otsuka-shoji-holdings.example"
    pair.my_query("UPDATE civicrm_email SET email = %s WHERE contact_id = 5 AND is_primary = 1", (long_email,))

    def queued() -> list[dict]:
        return [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    wait_until(lambda: queued(), 30, "the long e-mail queued")
    (row,) = queued()
    assert row["mapping"] == "contact_email" and "email" in row["error"], row
    assert pair.pg_query("SELECT email FROM ad_user WHERE ad_user_id = 1000001") == [("z.darcy@otsuka-shoji.example",)]

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.my_query("UPDATE civicrm_value_org_details_1 SET vat_number_2 = 'ATU12345679' WHERE entity_id = %s",
                  (globex,))
    pair.pg_query("UPDATE ad_user SET title = 'Head of Bakery', updated = now() WHERE ad_user_id = 1000000")
    pair.start()
    wait_until(lambda: pair.pg_query("SELECT vataxid FROM c_bpartner WHERE name = 'Globex Ges.m.b.H.'") == [
        ("ATU12345679",)], 30, "CiviCRM's edit while stopped")
    wait_until(lambda: pair.my_query("SELECT job_title FROM civicrm_contact WHERE id = 7") == [("Head of Bakery",)],
               30, "metasfresh's edit while stopped")
    # the long address: shortened in CiviCRM instead, the queued change skipped
    (row,) = queued()
    code, out = page_cli(pair, "dlq", "skip", row["id"])
    assert code == 0 and "skipped" in out, out
    pair.my_query("UPDATE civicrm_email SET email = 'purchasing@otsuka-shoji.example' WHERE contact_id = 5 AND "
                  "is_primary = 1")
    wait_until(lambda: pair.pg_query("SELECT email FROM ad_user WHERE ad_user_id = 1000001") == [
        ("purchasing@otsuka-shoji.example",)], 30, "the shortened address")
    # what the stream does not carry (section 6): the search key metasfresh's DEFAULT gave Globex, and the one-way
    # copies of the name that lost the race; verify names them, --repair writes them
    wait_until(lambda: "2 row(s) differ" in page_cli(pair, "verify")[1], 30, "verify names the two rows")
    code, out = page_cli(pair, "verify")
    assert "differs: display_name: 'Ōtsuka (CiviCRM)' -> 'Ōtsuka (metasfresh)'" in out, out
    assert "differs: external_identifier: 'CIVI-1000003' -> NULL" in out, out
    code, out = page_cli(pair, "verify", "--mapping", "organisations", "--repair")
    assert code == 0 and "repaired 2 row(s); the sides agree" in out, out
    assert pair.my_query("SELECT organization_name, display_name, sort_name FROM civicrm_contact WHERE id = 2") == [
        ("Ōtsuka (CiviCRM)",) * 3]
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
