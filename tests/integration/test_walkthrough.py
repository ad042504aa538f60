"""docs/walkthrough.md run as written, on real servers: the page's schemas, seed rows and mapping files
(its `file:` blocks), then what the page says a DBA does on the first day -- check, setup, sync,
verify --repair, run, edits on both sides (a concurrent one too), a refused row through the dead-letter
queue, a reload, a stop and start -- and what each side shows afterwards."""
from __future__ import annotations

import json
import time

from tests.integration.harness import Pair, reload, wait_until
from tests.integration.walkthrough import page_pair, race, wait_recorded_once
from tests.unit.test_walkthrough_doc import blocks

SOYLENT = "5b7e1c4a-0000-4000-8000-000000000003"
LONG = "5b7e1c4a-0000-4000-8000-000000000004"


def _verify(pair: Pair, *args: str) -> tuple[int, str]:
    result = pair.cli("verify", *args, check=False, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_the_walkthrough_page_runs_as_written(make_pair):
    page = blocks()
    pair = page_pair(make_pair, page, "crm.sql", "erp.sql", pg_seed=("crm-seed.sql",), my_seed=("erp-seed.sql",))

    # 4. check, setup, the first copy
    before = pair.cli("check", check=False)
    assert before.returncode == 78 and "REPLICA IDENTITY" in before.stdout, before.stdout
    pair.setup()
    check = pair.cli("check")
    assert "0 failed" in check.stdout and "text of up to 150 characters into at most 128" in check.stdout, check.stdout
    sync = pair.cli("sync", timeout=300)
    assert "Traceback" not in sync.stdout + sync.stderr, sync.stderr
    code, out = _verify(pair, "--repair")
    assert code == 0 and "the sides agree" in out, out
    code, out = _verify(pair)
    assert code == 0, out
    crm_accounts = dict(pair.pg_query("SELECT name, id FROM accounts"))
    assert set(crm_accounts) == {"Acme Corp", "Globex", "Initech"}, crm_accounts  # not the other tenant's
    assert len(crm_accounts["Initech"]) == 36
    assert pair.my_query("SELECT nom, entity, client, status FROM llx_societe WHERE entity = 1 ORDER BY nom") == [
        ("Acme Corp", 1, 1, 1), ("Globex", 1, 1, 1), ("Initech", 1, 1, 1)]
    assert pair.my_query("SELECT ref, label FROM llx_product ORDER BY ref") == [
        ("ANV-1", "Anvil"), ("SVC-INST", "Installation")]  # linked by ref and entity, not doubled
    lines = pair.pg_query("SELECT l.name, p.part_number FROM aos_order_lines l LEFT JOIN aos_products p "
                          "ON p.id = l.product_id ORDER BY l.name")
    assert lines == [("Anvil", "ANV-1"), ("Shipping", None)], lines
    assert pair.pg_query("SELECT credit_limit_c FROM accounts_cstm WHERE id_c = %s",
                         (crm_accounts["Initech"],))[0][0] == 5000

    # 5. streaming, edits on both sides
    pair.start()
    pair.pg_query(f"INSERT INTO accounts (id, name, billing_address_city) VALUES ('{SOYLENT}', 'Soylent', 'NYC')")
    wait_until(lambda: pair.my_query("SELECT entity, client, status FROM llx_societe WHERE nom = 'Soylent'")
               == [(1, 1, 1)], 30, "Soylent in the ERP")
    pair.my_query("UPDATE llx_societe SET outstanding_limit = 1000 WHERE nom = 'Soylent'")
    wait_until(lambda: pair.pg_query("SELECT credit_limit_c FROM accounts_cstm WHERE id_c = %s", (SOYLENT,))
               == [(1000,)], 30, "the ERP's credit limit in a new accounts_cstm row (optional: true)")
    # a row the CRM creates lazily is no race with a delete: nothing recorded
    assert pair.pg_query("SELECT kind FROM replicator.conflicts WHERE mapping = 'customer_custom'") == []

    pair.my_query("INSERT INTO llx_product (ref, entity, label, price) VALUES ('ERP-ONLY', 1, 'Stapler', 5)")
    conn = pair.maria.connect(autocommit=False)
    try:
        with conn.cursor() as cur:  # one ERP transaction: the order and its lines
            cur.execute("INSERT INTO llx_commande (ref, entity, fk_soc, fk_statut, total_ht) "
                        "SELECT 'CO2401-0002', 1, rowid, 1, 664 FROM llx_societe WHERE nom = 'Soylent'")
            cur.execute("INSERT INTO llx_commandedet (fk_commande, fk_product, description, qty, subprice) "
                        "SELECT c.rowid, p.rowid, p.label, 2, p.price FROM llx_commande c, llx_product p "
                        "WHERE c.ref = 'CO2401-0002' AND p.ref IN ('ANV-1', 'SVC-INST', 'ERP-ONLY')")
        conn.commit()
    finally:
        conn.close()
    wait_until(lambda: pair.pg_query("SELECT o.status, a.name, count(l.id) FROM aos_orders o "
                                     "JOIN accounts a ON a.id = o.billing_account_id "
                                     "LEFT JOIN aos_order_lines l ON l.order_id = o.id "
                                     "WHERE o.name = 'CO2401-0002' GROUP BY 1, 2")
               == [("Confirmed", "Soylent", 2)], 30, "the order and two of its lines in the CRM")
    wait_until(lambda: pair.pg_query("SELECT waiting_mapping FROM replicator.parked") == [("products",)], 30,
               "the Stapler line parked, waiting for products")

    pair.pg_query(f"UPDATE accounts SET deleted = true WHERE id = '{SOYLENT}'")
    wait_until(lambda: pair.my_query("SELECT status FROM llx_societe WHERE nom = 'Soylent'") == [(0,)], 30,
               "the CRM's soft delete as status 0")

    # a contact's link row moved to another account: the ERP's fk_soc follows
    pair.pg_query("UPDATE accounts_contacts SET account_id = %s WHERE id = '7d000000-0000-4000-8000-000000000001'",
                  (crm_accounts["Globex"],))
    wait_until(lambda: pair.my_query("SELECT s.nom FROM llx_socpeople p JOIN llx_societe s ON s.rowid = p.fk_soc "
                                     "WHERE p.lastname = 'Coyote'") == [("Globex",)], 30, "Coyote's fk_soc")

    # both sides edit Globex's phone before either edit arrives: the ERP's edit holds its row lock until
    # the CRM's edit has committed, so the CRM's change meets it
    race(pair, "UPDATE llx_societe SET phone = 'erp-phone' WHERE nom = 'Globex'", None,
         "UPDATE accounts SET phone_office = 'crm-phone' WHERE name = 'Globex'")
    wait_recorded_once(pair)
    wait_until(lambda: [r[0] for r in pair.pg_query("SELECT phone_office FROM accounts WHERE name = 'Globex'")]
               == [r[0] for r in pair.my_query("SELECT phone FROM llx_societe WHERE nom = 'Globex'")], 30,
               "one phone on both sides")

    # a row the ERP refuses: queued; fixed in the CRM; retried
    pair.pg_query(f"INSERT INTO accounts (id, name) VALUES ('{LONG}', repeat('x', 140))")
    wait_until(lambda: pair.cli("dlq", "list", "--json").stdout.strip(), 30, "the refused row queued")
    queued = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert [(q["mapping"], q["op"]) for q in queued] == [("customers", "insert")], queued
    assert "column nom" in queued[0]["error"], queued
    pair.pg_query(f"UPDATE accounts SET name = 'Long Name Inc' WHERE id = '{LONG}'")
    wait_until(lambda: len(pair.cli("dlq", "list", "--json").stdout.splitlines()) == 2, 30,
               "the update queued behind the insert")
    # the fix in the CRM is queued behind the refused insert: retry writes the latest image in its place
    def applied_to_crm() -> list[str]:
        return sorted(line for line in (pair.metrics_text() or "").splitlines()
                      if line.startswith('replicator_rows_applied_total{direction="erp_to_crm"'))
    before_retry = applied_to_crm()
    retried = [json.loads(line) for line in pair.cli("dlq", "retry", "--key", LONG, "--json").stdout.splitlines()]
    assert [(r["result"], r["op"]) for r in retried] == [("applied", "insert"), ("applied", "update")], retried
    assert "replaced by the row's latest queued change" in retried[0]["note"], retried
    assert pair.cli("dlq", "list", "--json").stdout.strip() == ""
    # what retry wrote is tagged like the stream's own writes: the CRM gets nothing back (it had echoed:
    # the column types were read after the tag, which ended the transaction and the tag with it)
    pair.pg_query("UPDATE accounts SET website = 'marker' WHERE id = %s", (LONG,))
    wait_until(lambda: pair.my_query("SELECT url FROM llx_societe WHERE nom = 'Long Name Inc'") == [("marker",)],
               30, "an edit after the retry")
    assert applied_to_crm() == before_retry, (before_retry, applied_to_crm())
    code, out = _verify(pair, "--mapping", "customers")
    assert code == 0 and "the sides agree" in out, out
    assert pair.my_query("SELECT entity FROM llx_societe WHERE nom = 'Long Name Inc'") == [(1,)]

    # the CRM starts selling the ERP-only product: linked by ref in the ERP (crm_to_erp), which wakes nothing
    # in erp_to_crm; the running stream looks at its parked rows again every parking.RETRY_SECONDS (60 s)
    # while it applies linked changes -- here, edits of the order
    pair.pg_query("INSERT INTO aos_products (id, name, part_number, type, price) "
                  "VALUES ('8e000000-0000-4000-8000-000000000009', 'Stapler', 'ERP-ONLY', 'Good', 5)")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM llx_product WHERE ref = 'ERP-ONLY'") == [(1,)], 30,
               "the CRM's product linked to the ERP's by ref")
    started = time.monotonic()

    def line_there() -> bool:
        time.sleep(2)
        pair.my_query("UPDATE llx_commande SET total_ht = total_ht + 1 WHERE ref = 'CO2401-0002'")
        return bool(pair.pg_query("SELECT 1 FROM aos_order_lines WHERE name = 'Stapler'"))
    wait_until(line_there, 120, "the parked Stapler line replayed while the daemon runs")
    assert time.monotonic() - started < 100
    assert pair.pg_query("SELECT count(*) FROM replicator.parked") == [(0,)]

    # a reload: the same files, one rule changed; the daemon swaps them between transactions
    path = pair.tmp / "mappings/10-customers.yaml"   # page_pair writes the page's first file under its name
    path.write_text(page["mappings/10-customers.yaml"].replace("conflicts: latest", "conflicts: {priority: erp}"))
    pair.cli("check")
    reload(pair)
    wait_until(lambda: "mappings reloaded" in pair.log(), 30, "the reload")

    # stop, edits on both sides while stopped, start: they arrive, once
    assert pair.stop() == 0
    pair.pg_query("UPDATE accounts SET website = 'initech.example' WHERE name = 'Initech'")
    pair.my_query("UPDATE llx_societe SET town = 'Austin TX' WHERE nom = 'Initech'")
    pair.start()
    wait_until(lambda: pair.my_query("SELECT url FROM llx_societe WHERE nom = 'Initech'") == [("initech.example",)],
               30, "the CRM's edit made while stopped")
    wait_until(lambda: pair.pg_query("SELECT billing_address_city FROM accounts WHERE name = 'Initech'")
               == [("Austin TX",)], 30, "the ERP's edit made while stopped")

    # a purged accounts_cstm row is not the company's delete (`delete: {crm_to_erp: ignore}`, which `check`
    # asks for): the ERP company stays, with the credit limit it owns; an edit after it marks the point
    pair.pg_query("DELETE FROM accounts_cstm WHERE id_c = %s", (crm_accounts["Initech"],))
    pair.pg_query("UPDATE accounts SET website = 'initech.example/purged' WHERE name = 'Initech'")
    wait_until(lambda: pair.my_query("SELECT url FROM llx_societe WHERE nom = 'Initech'")
               == [("initech.example/purged",)], 30, "the edit after the purge")
    assert pair.my_query("SELECT outstanding_limit FROM llx_societe WHERE nom = 'Initech'") == [(5000,)]
    assert pair.pg_query("SELECT deleted FROM accounts WHERE name = 'Initech'") == [(False,)]

    # accounts made in the CRM without custom fields (Long Name Inc, Soylent) and the purged Initech have no
    # accounts_cstm row: with `optional: true` a missing row is one whose fields are all NULL, so only a
    # company whose ERP custom fields hold a value is missing its row -- Initech, whose credit limit stayed
    code, out = _verify(pair)
    missing = [line for line in out.splitlines() if "missing in target" in line]
    assert code == 1 and len(missing) == 1 and missing[0].startswith("customer_custom erp_to_crm"), out
    code, out = _verify(pair, "--repair")
    assert code == 0 and "the sides agree" in out, out
    assert pair.pg_query("SELECT credit_limit_c FROM accounts_cstm WHERE id_c = %s",
                         (crm_accounts["Initech"],)) == [(5000,)]
    assert pair.pg_query("SELECT count(*) FROM accounts_cstm a JOIN accounts c ON c.id = a.id_c "
                         "WHERE c.name = 'Long Name Inc'") == [(0,)]
    code, out = _verify(pair)
    assert code == 0 and "the sides agree" in out, out
    assert pair.pg_query("SELECT count(*) FROM aos_order_lines WHERE name = 'Stapler'") == [(1,)]
    assert pair.stop() == 0
    assert "Traceback" not in pair.log(), pair.log()
