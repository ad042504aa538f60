"""docs/walkthrough-suitecrm-idempiere.md run as written, on real servers, with the sides swapped: the CRM
(SuiteCRM's MySQL schema) on MariaDB, the ERP (iDempiere) on PostgreSQL, the connections named `suitecrm` and
`idempiere`, the MariaDB one first. The page's schemas, seed rows, key defaults and mapping files are its
`file:` blocks; then check, setup, sync, verify, run, edits on both sides, a concurrent edit, a row SuiteCRM's
utf8 columns refuse (dlq, explain, retry), status, a stop and start, verify."""
from __future__ import annotations

import json
from pathlib import Path

from tests.integration.harness import page_cli, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "walkthrough-suitecrm-idempiere.md"
ACME = "4c1b7a52-6e2f-11ee-9c3a-0242ac120002"
GLOBEX = "7f4eac85-6e2f-11ee-9c3a-0242ac120002"


def test_the_suitecrm_idempiere_page_runs_as_written(make_pair):
    page = blocks(PAGE)
    pair = page_pair(make_pair, page, "idempiere.sql", "suitecrm.sql",
                     pg_scripts=("idempiere-keys.sql", "idempiere-seed.sql"), my_seed=("suitecrm-seed.sql",),
                     names=("idempiere", "suitecrm"), maria_first=True)

    # check, setup, the first copy
    code, out = page_cli(pair, "check")
    assert code == 78 and "REPLICA IDENTITY" in out, out
    pair.setup()
    code, out = page_cli(pair, "check")
    assert code == 0 and "3 warnings, 0 failed" in out, out
    assert "accounts.name may be NULL, idempiere:public.c_bpartner.name is NOT NULL" in out, out
    code, out = page_cli(pair, "sync")
    assert code == 0 and "parked after the copy: none" in out, out
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out

    # SuiteCRM's account in iDempiere under a number from AD_Sequence, with the tenant and audit columns
    assert pair.pg_query("SELECT c_bpartner_id, value, ad_client_id, ad_org_id, createdby, updatedby, isactive, "
                         "iscustomer, c_bp_group_id, taxid, length(c_bpartner_uu) FROM c_bpartner "
                         "WHERE name = 'Acme Corp'") == [(1000000, "Acme Corp", 11, 0, 100, 100, "Y", "Y", 103,
                                                          "US-77-0001", 36)]
    assert pair.pg_query("SELECT currentnext FROM ad_sequence WHERE name IN ('C_BPartner', 'AD_User') "
                         "ORDER BY name") == [(1000001,), (1000001,)]
    # iDempiere's customers in SuiteCRM with fresh UUIDs; the vendor and the other client's partner stay
    accounts = dict(pair.my_query("SELECT name, id FROM accounts WHERE deleted = 0 AND account_type = 'Customer'"))
    assert sorted(accounts) == ["Acme Corp", "C&W Construction", "Joe Block"], accounts
    cw = accounts["C&W Construction"]
    assert len(cw) == 36 and pair.my_query("SELECT taxid_c FROM accounts_cstm WHERE id_c = %s", (cw,)) == [
        ("12-3456789",)]
    # contacts and their company, both ways
    assert pair.pg_query("SELECT u.name, u.isactive, b.name FROM ad_user u JOIN c_bpartner b USING (c_bpartner_id) "
                         "WHERE u.ad_user_id >= 1000000") == [("Coyote", "Y", "Acme Corp")]
    assert pair.my_query("SELECT c.last_name FROM contacts c JOIN accounts_contacts l ON l.contact_id = c.id "
                         "AND l.deleted = 0 WHERE l.account_id = %s", (cw,)) == [("Carl Boss",)]
    assert sorted(pair.my_query("SELECT last_name FROM contacts")) == [("Carl Boss",), ("Coyote",)]  # no GardenAdmin
    assert sorted(pair.my_query("SELECT part_number, name, type, deleted FROM aos_products")) == [
        ("PChair", "Patio Chair", "Good", 0), ("Planting", "Planting Service", "Service", 0)]

    # streaming, edits on both sides
    pair.start()
    crm = pair.maria.connect(autocommit=False)
    try:  # as SuiteCRM saves an account: its custom-field row in the same transaction
        with crm.cursor() as cur:
            cur.execute("INSERT INTO accounts (id, name, deleted, date_entered, date_modified) "
                        "VALUES (%s, 'Globex', 0, UTC_TIMESTAMP(), UTC_TIMESTAMP())", (GLOBEX,))
            cur.execute("INSERT INTO accounts_cstm (id_c, taxid_c) VALUES (%s, 'DE-811569869')", (GLOBEX,))
        crm.commit()
    finally:
        crm.close()
    # a row written by hand with `deleted` NULL: active in iDempiere (default: {suitecrm_to_idempiere: Y})
    pair.my_query("INSERT INTO accounts (id, name, deleted) VALUES ('80000000-6e2f-11ee-9c3a-0242ac120002', "
                  "'Initech', NULL)")
    pair.my_query("INSERT INTO accounts_cstm (id_c) VALUES ('80000000-6e2f-11ee-9c3a-0242ac120002')")
    pair.pg_query("INSERT INTO c_bpartner (c_bpartner_id, ad_client_id, ad_org_id, createdby, updatedby, value, name, "
                  "c_bp_group_id, iscustomer) VALUES (replicator_next_id('C_BPartner'), 11, 11, 101, 101, 'Seaside', "
                  "'Seaside Cafe', 103, 'Y')")
    wait_until(lambda: pair.pg_query("SELECT c_bpartner_id > 1000000, isactive, value, taxid FROM c_bpartner "
                                     "WHERE name = 'Globex'") == [(True, "Y", "Globex", "DE-811569869")], 30,
               "Globex and its tax id in iDempiere")
    wait_until(lambda: pair.pg_query("SELECT isactive FROM c_bpartner WHERE name = 'Initech'") == [("Y",)], 30,
               "Initech in iDempiere")
    wait_until(lambda: pair.my_query("SELECT deleted, account_type FROM accounts WHERE name = 'Seaside Cafe'")
               == [(0, "Customer")], 30, "Seaside Cafe in SuiteCRM")
    assert pair.metric("replicator_rows_applied_total", direction="suitecrm_to_idempiere") >= 3

    # a vendor becomes a customer in iDempiere: it enters the slice and SuiteCRM gets the account
    pair.pg_query("UPDATE c_bpartner SET iscustomer = 'Y' WHERE c_bpartner_id = 120")
    wait_until(lambda: pair.my_query("SELECT deleted, account_type FROM accounts WHERE name = 'Seed Farm Inc.'")
               == [(0, "Customer")], 30, "Seed Farm in SuiteCRM")
    # ... but no custom-field row (customer_tax, a shared-key mapping on the same row, `optional: true`): its
    # only field, the tax id, is NULL, and a missing accounts_cstm row already says so -- as the first copy and
    # SuiteCRM itself leave it. Written in the same target transaction as the account, so absent now is absent
    seed = pair.my_query("SELECT id FROM accounts WHERE name = 'Seed Farm Inc.'")[0][0]
    assert pair.my_query("SELECT taxid_c FROM accounts_cstm WHERE id_c = %s", (seed,)) == []

    # SuiteCRM flags, iDempiere deletes: both become flags on the other side; the trigger stamps `updated`
    before = pair.pg_query("SELECT updated FROM c_bpartner WHERE name = 'Globex'")[0][0]
    pair.my_query("UPDATE accounts SET deleted = 1 WHERE name = 'Globex'")
    pair.pg_query("DELETE FROM c_bpartner WHERE name = 'Seaside Cafe'")
    wait_until(lambda: pair.pg_query("SELECT isactive, updated > %s FROM c_bpartner WHERE name = 'Globex'",
                                     (before,)) == [("N", True)], 30, "Globex inactive, updated stamped")
    wait_until(lambda: pair.my_query("SELECT deleted FROM accounts WHERE name = 'Seaside Cafe'") == [(1,)], 30,
               "Seaside Cafe deleted")

    # both sides edit C&W's web site before either edit arrives: the first connection (suitecrm) wins the tie
    race(pair, "UPDATE accounts SET website = 'https://crm.example' WHERE id = %s", (cw,),
         "UPDATE c_bpartner SET url = 'https://erp.example' WHERE c_bpartner_id = 117")
    wait_recorded_once(pair)
    wait_until(lambda: [r[0] for r in pair.pg_query("SELECT url FROM c_bpartner WHERE c_bpartner_id = 117")]
               == [r[0] for r in pair.my_query("SELECT website FROM accounts WHERE id = %s", (cw,))], 30,
               "one web site on both sides")
    code, out = page_cli(pair, "conflicts", "--key", cw)
    lines = out.splitlines()
    assert code == 0 and "KEY (suitecrm)" in lines[0] and "SUITECRM VALUE" in lines[0], out
    # one decision, the same on both sides (a tie within the same second goes to suitecrm, the first connection)
    winner = pair.pg_query("SELECT winner FROM replicator.conflicts WHERE mapping = 'customers'")[0][0]
    assert pair.my_query(f"SELECT winner FROM `{pair.state_schema}`.conflicts WHERE mapping = 'customers'") == [
        (winner,)] and len(lines) == 3 and all(f"{winner} won" in line for line in lines[1:]), out
    assert pair.pg_query("SELECT url FROM c_bpartner WHERE c_bpartner_id = 117") == [
        ({"suitecrm": "https://crm.example", "idempiere": "https://erp.example"}[winner],)]

    # a product name SuiteCRM's utf8 (utf8mb3) columns cannot hold: refused, queued, explained, fixed, retried
    pair.pg_query("INSERT INTO m_product (m_product_id, ad_client_id, ad_org_id, createdby, updatedby, value, name) "
                  "VALUES (replicator_next_id('M_Product'), 11, 0, 100, 100, 'Sunflower', 'Sunflower Seeds \U0001F33B')")
    wait_until(lambda: pair.cli("dlq", "list", "--json").stdout.strip(), 30, "the refused product queued")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert [(q["id"], q["mapping"], q["key_side"]) for q in queued] == [("suitecrm:1", "products", "idempiere")]
    assert ("aos_products, idempiere key (1000000,) (the source row's; the target row's own key comes from the "
            "link), column name: mapping products: (1366) Incorrect string value") in queued[0]["error"], queued
    # the key as listed finds the row: iDempiere's numeric(10) keys are stored as decimals, `--key 1000000`
    # matched nothing before (nor did `conflicts --key 117` for C&W's race)
    code, out = page_cli(pair, "dlq", "list", "--key", "1000000")
    assert code == 0 and "suitecrm:1 " in out and "idempiere:1000000" in out, out
    code, out = page_cli(pair, "conflicts", "--key", "117")
    assert code == 0 and len(out.splitlines()) == 3 and "update_differs" in out, out
    code, out = page_cli(pair, "explain", "--mapping", "products", "--side", "idempiere", "--key", "1000000")
    assert code == 0 and "would insert a new suitecrm" in out and 'name         "Sunflower Seeds \U0001F33B"' in out, out
    pair.pg_query("UPDATE m_product SET name = 'Sunflower Seeds' WHERE value = 'Sunflower'")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) == 2, 30, "the fix queued behind")
    code, out = page_cli(pair, "dlq", "retry", "--all")
    assert "idempiere key [1000000] update (written in place of suitecrm:1" in out, out
    wait_until(lambda: pair.my_query("SELECT name FROM aos_products WHERE part_number = 'Sunflower'")
               == [("Sunflower Seeds",)], 30, "the product in SuiteCRM")
    code, out = page_cli(pair, "dlq", "show", "suitecrm:1")
    assert code == 78 and "as suitecrm:3" in out, out
    code, out = page_cli(pair, "status")
    assert "suitecrm_to_idempiere: running" in out and "idempiere_to_suitecrm: running" in out, out
    assert "dead-letter rows 0" in out and "source suitecrm (MariaDB)" in out, out

    # stop, edits on both sides, start: they arrive, once
    assert pair.stop() == 0
    pair.my_query("UPDATE contacts SET title = 'Head of Purchasing' WHERE last_name = 'Coyote'")
    pair.pg_query("UPDATE ad_user SET phone = '+1 555 0199' WHERE name = 'Carl Boss'")
    pair.start()
    wait_until(lambda: pair.pg_query("SELECT title FROM ad_user WHERE name = 'Coyote'") == [("Head of Purchasing",)],
               30, "SuiteCRM's edit made while stopped")
    wait_until(lambda: pair.my_query("SELECT phone_work FROM contacts WHERE last_name = 'Carl Boss'")
               == [("+1 555 0199",)], 30, "iDempiere's edit made while stopped")
    code, out = page_cli(pair, "verify")
    assert code == 0 and "the sides agree" in out, out
    assert pair.pg_query("SELECT count(*) FROM c_bpartner") == [(7,)]  # 4 seeded, Acme, Globex, Initech
    assert pair.my_query("SELECT count(*) FROM accounts") == [(7,)]  # Acme, Globex, Initech, 4 from iDempiere
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
