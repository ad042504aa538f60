"""docs/walkthrough-vtiger-ledgersmb.md run as written, on real servers: vtiger CRM's schema (the vtiger_crmentity
supertable with its setype discriminator and deleted flag, keys from the vtiger_crmentity_seq table, module tables
of the same key with ON DELETE CASCADE, a custom-field table, an address table) on MariaDB, LedgerSMB's (entity,
company keyed by its name, entity_credit_account, person, contact rows typed by contact_class, locations through
entity_to_location) on PostgreSQL, the connections named `vtiger` and `ledgersmb`, the MariaDB one first."""
from __future__ import annotations

import json
from pathlib import Path

from tests.integration.harness import page_cli, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-vtiger-ledgersmb.md"


def mysql_client_statements(sql: str) -> list[str]:
    """A block as the `mysql` client reads it: statements end at the current DELIMITER (`;` until a `DELIMITER`
    line changes it), so a trigger's body keeps its semicolons."""
    statements, delimiter, current = [], ";", []
    for line in sql.splitlines():
        if line.strip().upper().startswith("DELIMITER "):
            delimiter = line.split()[1]
            continue
        current.append(line)
        if line.rstrip().endswith(delimiter):
            text = "\n".join(current).rstrip()[: -len(delimiter)]
            if text.strip():
                statements.append(text)
            current = []
    assert not "".join(current).strip(), current
    return statements


def test_the_vtiger_ledgersmb_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "ledgersmb.sql", "vtiger.sql",
                     pg_scripts=("ledgersmb-keys.sql",), pg_seed=("ledgersmb-seed.sql",),
                     names=("ledgersmb", "vtiger"), maria_first=True)
    for stmt in mysql_client_statements(page["vtiger-keys.sql"]):
        pair.my_query(stmt)
    for stmt in mysql_client_statements(page["vtiger-seed.sql"]):
        pair.my_query(stmt)

    # the draft of the supertables' pair: entity by its serial id (not its (control_code, entity_class) primary key),
    # vtiger's crmid by the DEFAULT of vtiger-keys.sql, a crosswalk; `now: true` named for vtiger's NOT NULL stamps
    code, out = page_cli(pair, "scaffold", "--table", "vtiger=vtiger_crmentity", "--table", "ledgersmb=entity")
    assert code == 0 and "link: {crosswalk: true}      # both sides number their own rows" not in out, out
    assert "key: [crmid], generate: {crmid: default}}" in out and "public.entity, key: [id]}" in out, out
    assert "link: {crosswalk: true}" in out and "`{ledgersmb: ~, now: true}` for a date and time" in out, out
    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    assert "key ['entity_id'] of public.company is a unique key" in out, out  # the DBA's unique index
    pair.setup()
    code, out = page_cli(pair, "check")
    # vtiger's crmid trigger assigns the key replicator leaves to the database (`generate: {crmid: default}`, read
    # back): not a carried column, so not a warning
    assert code == 0 and "1 warnings, 0 failed" in out and "vtiger_crmentity_crmid" not in out, out
    assert "vtiger_contactdetails.firstname may be NULL, ledgersmb:public.person.first_name is NOT NULL" in out, out
    code, out = page_cli(pair, "sync")
    # the second tables of records outside `customers` (Seed Supply, a vendor; Old Mill, in the recycle bin) and
    # Grant's e-mail row under `contact_email` (no person) are not theirs to carry: none waits for good
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    # vtiger's account in LedgerSMB: an entity with the DEFAULT's control code, its company, credit account and
    # contact rows; the contact as an entity of class 4 with its person row
    assert pair.pg_query("SELECT e.name, e.entity_class, e.control_code, c.legal_name, c.tax_id, a.meta_number, "
                         "a.ar_ap_account_id FROM entity e JOIN company c ON c.entity_id = e.id JOIN "
                         "entity_credit_account a ON a.entity_id = e.id WHERE e.name = 'Acme Corp'") == [
        ("Acme Corp", 2, "V-1002", "Acme Corp", "US-77-0001", "ACC1", 3)]
    assert sorted(pair.pg_query("SELECT c.contact_class_id, c.contact FROM entity_to_contact c JOIN entity e ON "
                                "e.id = c.entity_id WHERE e.name = 'Acme Corp'")) == [
        (1, "+1-555-0199"), (12, "billing@acme.example")]
    assert pair.pg_query("SELECT e.entity_class, p.first_name, p.last_name, t.contact FROM entity e JOIN person p ON "
                         "p.entity_id = e.id JOIN entity_to_contact t ON t.entity_id = e.id") == [
        (4, "Wile", "Coyote", "wile@acme.example")]
    # LedgerSMB's customer in vtiger under the next crmid of vtiger_crmentity_seq, with the account number, the
    # contact rows, the tax id and the billing address; neither the vendor nor Old Mill crosses
    assert pair.my_query("SELECT crmid, setype, deleted, label, smownerid FROM vtiger_crmentity WHERE crmid > 7") == [
        (8, "Accounts", 0, "Grant Industries", 1)]
    assert pair.my_query("SELECT id FROM vtiger_crmentity_seq") == [(8,)]
    assert pair.my_query("SELECT a.account_no, a.accountname, a.phone, a.email1, s.cf_853, b.bill_street, b.bill_city "
                         "FROM vtiger_account a JOIN vtiger_accountscf s USING (accountid) JOIN vtiger_accountbillads b "
                         "ON b.accountaddressid = a.accountid WHERE a.accountid = 8") == [
        ("C-0100", "Grant Industries Inc.", "+1-555-0100", "ap@grant.example", "12-3456789", "1 Industry Way",
         "Springfield")]
    assert pair.pg_query("SELECT count(*) FROM entity WHERE name = 'Old Mill'") == [(0,)]

    # streaming
    pair.start()
    crm = pair.maria.connect(autocommit=False)
    try:  # as vtiger saves an account: the next crmid, then every table of the record, one transaction
        with crm.cursor() as cur:
            cur.execute("UPDATE vtiger_crmentity_seq SET id = LAST_INSERT_ID(id + 1)")
            cur.execute("INSERT INTO vtiger_crmentity (crmid, smcreatorid, smownerid, modifiedby, setype, createdtime, "
                        "modifiedtime, label) VALUES (LAST_INSERT_ID(), 1, 1, 1, 'Accounts', UTC_TIMESTAMP(), "
                        "UTC_TIMESTAMP(), 'Globex')")
            cur.execute("INSERT INTO vtiger_account (accountid, account_no, accountname, email1) VALUES "
                        "(LAST_INSERT_ID(), 'ACC3', 'Globex', 'ap@globex.example')")
            cur.execute("INSERT INTO vtiger_accountscf (accountid, cf_853) VALUES (LAST_INSERT_ID(), 'DE-811569869')")
            cur.execute("INSERT INTO vtiger_accountbillads (accountaddressid, bill_city) VALUES (LAST_INSERT_ID(), "
                        "'Cypress Creek')")
        crm.commit()
    finally:
        crm.close()
    erp = pair.pg.connect()
    try:  # as LedgerSMB saves a customer: entity, company, credit account, contact and billing address
        with erp.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO entity (name, entity_class, country_id) VALUES ('Vance Refrigeration', 2, 232) "
                        "RETURNING id")
            (vance,) = cur.fetchone()
            cur.execute("INSERT INTO company (entity_id, legal_name) VALUES (%s, 'Vance Refrigeration LLC')", (vance,))
            cur.execute("INSERT INTO entity_credit_account (entity_id, entity_class, meta_number, curr, "
                        "ar_ap_account_id) VALUES (%s, 2, 'C-0101', 'USD', 3)", (vance,))
            cur.execute("INSERT INTO entity_to_contact (entity_id, contact_class_id, contact) VALUES "
                        "(%s, 12, 'bob@vance.example')", (vance,))
            cur.execute("INSERT INTO location (line_one, city, country_id) VALUES ('3 Cold St', 'Scranton', 232) "
                        "RETURNING id")
            (loc,) = cur.fetchone()
            cur.execute("INSERT INTO entity_to_location (location_id, location_class, entity_id) VALUES (%s, 1, %s)",
                        (loc, vance))
            cur.execute("COMMIT")
    finally:
        erp.close()
    erp = pair.pg.connect()
    try:  # LedgerSMB saves a vendor: its company row is outside `customers`, counted and not parked
        with erp.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO entity (name, entity_class, country_id) VALUES ('Acme Paper', 1, 232) "
                        "RETURNING id")
            (paper,) = cur.fetchone()
            cur.execute("INSERT INTO company (entity_id, legal_name) VALUES (%s, 'Acme Paper Co')", (paper,))
            cur.execute("COMMIT")
    finally:
        erp.close()
    pair.my_query("UPDATE vtiger_crmentity SET label = 'Acme Corporation' WHERE crmid = 4")
    pair.my_query("UPDATE vtiger_account SET accountname = 'Acme Corporation' WHERE accountid = 4")
    pair.pg_query("UPDATE location SET city = 'Shelbyville' WHERE id = 1")
    wait_until(lambda: pair.pg_query("SELECT c.legal_name, c.tax_id, a.meta_number, t.contact FROM entity e JOIN "
                                     "company c ON c.entity_id = e.id JOIN entity_credit_account a ON a.entity_id = "
                                     "e.id JOIN entity_to_contact t ON t.entity_id = e.id WHERE e.name = 'Globex'")
               == [("Globex", "DE-811569869", "ACC3", "ap@globex.example")], 30, "Globex, all its rows, in LedgerSMB")
    wait_until(lambda: pair.my_query("SELECT e.crmid, a.account_no, a.accountname, a.email1, b.bill_city FROM "
                                     "vtiger_crmentity e JOIN vtiger_account a ON a.accountid = e.crmid JOIN "
                                     "vtiger_accountbillads b ON b.accountaddressid = e.crmid WHERE e.label = "
                                     "'Vance Refrigeration'") == [(10, "C-0101", "Vance Refrigeration LLC",
                                                                   "bob@vance.example", "Scranton")], 30,
               "Vance Refrigeration in vtiger under crmid 10 (Globex took 9)")
    wait_until(lambda: pair.pg_query("SELECT e.name, c.legal_name FROM entity e JOIN company c ON c.entity_id = e.id "
                                     "WHERE e.id = 103") == [("Acme Corporation", "Acme Corporation")], 30,
               "the rename, its company key column too")
    wait_until(lambda: pair.my_query("SELECT bill_city FROM vtiger_accountbillads WHERE accountaddressid = 8")
               == [("Shelbyville",)], 30, "LedgerSMB's billing city in vtiger")
    assert pair.my_query("SELECT id FROM vtiger_crmentity_seq") == [(10,)]
    wait_until(lambda: pair.metric("replicator_rows_outside_total", direction="ledgersmb_to_vtiger",
                                   mapping="customer_company", outside_of="customers") >= 1, 30,
               "the vendor's company row counted outside customers")
    assert pair.my_query("SELECT count(*) FROM vtiger_account WHERE accountname = 'Acme Paper Co'") == [(0,)]
    assert pair.metric("replicator_parked_rows") == 0

    # both sides rename Acme before either edit arrives: one decision, the same on both sides, recorded on each
    race(pair, "UPDATE vtiger_crmentity SET label = 'Acme (vtiger)' WHERE crmid = %s", (4,),
         "UPDATE entity SET name = 'Acme (LedgerSMB)' WHERE id = 103")
    wait_recorded_once(pair, "customers")
    wait_until(lambda: pair.pg_query("SELECT name FROM entity WHERE id = 103")
               == pair.my_query("SELECT label FROM vtiger_crmentity WHERE crmid = 4"), 30, "one name on both sides")
    winner = pair.pg_query("SELECT winner FROM replicator.conflicts WHERE mapping = 'customers'")[0][0]
    assert pair.my_query(f"SELECT winner FROM `{pair.state_schema}`.conflicts WHERE mapping = 'customers'") == [
        (winner,)], winner
    assert pair.pg_query("SELECT name FROM entity WHERE id = 103") == [
        ({"vtiger": "Acme (vtiger)", "ledgersmb": "Acme (LedgerSMB)"}[winner],)]

    # a vtiger contact without a first name: LedgerSMB's person.first_name is NOT NULL (check warned), queued
    crm = pair.maria.connect(autocommit=False)
    try:
        with crm.cursor() as cur:
            cur.execute("UPDATE vtiger_crmentity_seq SET id = LAST_INSERT_ID(id + 1)")
            cur.execute("INSERT INTO vtiger_crmentity (crmid, setype, createdtime, modifiedtime, label) VALUES "
                        "(LAST_INSERT_ID(), 'Contacts', UTC_TIMESTAMP(), UTC_TIMESTAMP(), 'Runner')")
            cur.execute("INSERT INTO vtiger_contactdetails (contactid, contact_no, lastname) VALUES "
                        "(LAST_INSERT_ID(), 'CON2', 'Runner')")
        crm.commit()
    finally:
        crm.close()

    def queued() -> list[dict]:
        return [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    wait_until(lambda: queued(), 30, "the contact without a first name queued")
    (row,) = queued()
    assert row["mapping"] == "contact_person" and "first_name" in row["error"], row

    # vtiger's recycle bin: the account leaves `customers`' filter, LedgerSMB keeps the customer (leave: ignore)
    pair.my_query("UPDATE vtiger_crmentity SET deleted = 1 WHERE label = 'Globex'")
    wait_until(lambda: pair.metric("replicator_rows_left_total", direction="vtiger_to_ledgersmb",
                                   mapping="customer_company", action="ignore") >= 1, 30,
               "Globex's vtiger_account leaves with its record, by customer_company's delete: ignore")
    # and back out of it: Old Mill, never copied, is a customer now, with the rows skipped while it was binned
    pair.my_query("UPDATE vtiger_crmentity SET deleted = 0 WHERE crmid = 7")
    wait_until(lambda: pair.pg_query("SELECT e.entity_class, c.legal_name, a.meta_number FROM entity e JOIN company c "
                                     "ON c.entity_id = e.id JOIN entity_credit_account a ON a.entity_id = e.id WHERE "
                                     "e.name = 'Old Mill'") == [(2, "Old Mill", "ACC2")], 30,
               "Old Mill restored: entity, company and credit account in LedgerSMB")

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.my_query("UPDATE vtiger_account SET phone = '+1-555-0200' WHERE accountid = 4")
    pair.pg_query("UPDATE company SET tax_id = '12-3456780' WHERE entity_id = 100")
    pair.start()
    wait_until(lambda: pair.pg_query("SELECT contact FROM entity_to_contact WHERE entity_id = 103 AND "
                                     "contact_class_id = 1") == [("+1-555-0200",)], 30, "vtiger's edit while stopped")
    wait_until(lambda: pair.my_query("SELECT cf_853 FROM vtiger_accountscf WHERE accountid = 8") == [("12-3456780",)],
               30, "LedgerSMB's edit while stopped")
    assert pair.pg_query("SELECT count(*) FROM entity WHERE name = 'Globex'") == [(1,)]
    assert pair.pg_query("SELECT legal_name FROM company c JOIN entity e ON e.id = c.entity_id WHERE e.name = 'Globex'"
                         ) == [("Globex",)]  # (kept: the record's leave and its company's delete say ignore)
    assert pair.metric("replicator_parked_rows") == 0
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
