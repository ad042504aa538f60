"""`verify` compares folded columns (docs/operations.md, "Verifying"; docs/mappings.md, "Child rows folded into
columns"), on real servers: the first copy agrees (NULL and no child row alike), a value drifted behind
replicator's back on either side is named by table, key and column, `--repair` writes it through the stream's fold
code, and `verify` is clean again. One-hop folds both ways (a child row -> the parent's column and the reverse), a
two-hop fold through a link table (`via`), a fold's value map (`fold.map`), and the periodic verifier.

Each test copies with `replicator sync` (no daemon), so the drift stays behind replicator's back."""
from __future__ import annotations

import re
import threading

from replicator.config import load
from replicator.mapping.model import load_mappings
from replicator.stream.pipeline import MappingHolder
from replicator.verify.command import PeriodicVerifier
from tests.integration.test_folds import ADDRESS_PG, CUSTOMERS_MY, ESPO_MAPPINGS, ESPO_MY, PARTY_PG
from tests.integration.test_folds_map import MAPPINGS as MAP_MAPPINGS
from tests.integration.test_folds_map import PRODUCT_PG, PRODUCTS_MY
from tests.integration.test_verify import difference_lines, verify

QUICK = "sync: {on_first_run: false}\nverify: {recheck_seconds: 1, chunk_rows: 2}\n"  # chunks of two parents

# customer_email both ways; customer_phone only from the ERP's column into the CRM's address rows
ADDRESS_MAPPINGS = """
mappings:
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email, lossy: allow}
  customer_phone:
    direction: erp_to_crm
    crm: {table: address, key: [id], slice: {kind: phone}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: phone, lossy: allow}
  customers:
    direction: both
    crm: {table: customer, key: [id], generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
"""


def _repairs(out: str) -> list[str]:
    return sorted(line for line in out.splitlines() if re.match(r"(repaired|inserted|deleted|not repaired) ", line))


def test_one_hop_folds_drifted_on_either_side_are_named_and_repaired(make_pair):
    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, ADDRESS_MAPPINGS, extra_config=QUICK)
    db = pair.maria.dbname
    pair.pg_query("INSERT INTO customer VALUES ('c-1', 'Acme'), ('c-2', 'Beta')")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 'c-1', 'email', 'info@acme.de'), "
                  "('a-2', 'c-1', 'fax', '+49 30 2')")
    pair.my_query("INSERT INTO customers (name, email, phone) VALUES ('Gamma', NULL, '+1 3')")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    cust = dict(pair.my_query("SELECT name, cust_no FROM customers"))
    crm = dict(pair.pg_query("SELECT name, id FROM customer"))
    assert pair.my_query("SELECT name, email, phone FROM customers ORDER BY name") == [
        ("Acme", "info@acme.de", None), ("Beta", None, None), ("Gamma", None, "+1 3")]
    (phone_id,), = pair.pg_query("SELECT id FROM address WHERE kind = 'phone'")
    # NULL in the column and no child row agree (Beta's e-mail, Acme's and Beta's phone); the fax is no fold's
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out
    assert "customer_email: 6 rows checked, 0 differing" in out, out  # three parents, each way

    # behind replicator's back (no daemon runs): a column changed, a child row deleted, a child row added
    pair.my_query("UPDATE customers SET email = 'drift@acme.de' WHERE name = 'Acme'")
    pair.pg_query("DELETE FROM address WHERE kind = 'phone'")
    pair.pg_query("INSERT INTO address VALUES ('a-7', %s, 'email', 'beta@x.de')", (crm["Beta"],))
    code, out = verify(pair)
    assert code == 1, out
    acme, beta, gamma = cust["Acme"], cust["Beta"], cust["Gamma"]
    assert sorted(difference_lines(out)) == sorted([
        f"customer_email crm_to_erp {db}.customers key=({acme},) (crm key ('c-1',)): differs: "
        f"email: 'info@acme.de' -> 'drift@acme.de'",
        f"customer_email erp_to_crm public.address key=('a-1',) (erp key ({acme},)): differs: "
        f"value: 'drift@acme.de' -> 'info@acme.de'",
        f"customer_email crm_to_erp {db}.customers key=({beta},) (crm key ('c-2',)): differs: "
        f"email: 'beta@x.de' -> NULL",
        f"customer_email erp_to_crm public.address key=('a-7',) (erp key ({beta},)): differs: "
        f"value: NULL -> 'beta@x.de'",
        f"customer_phone erp_to_crm public.address erp key=({gamma},): differs: value: '+1 3' -> NULL",
    ]), out

    # the periodic verifier (verify.every_seconds) runs the same code
    config = load(pair.config_path)
    report = PeriodicVerifier(config, MappingHolder(load_mappings(config)), threading.Event()).run_once()
    assert report is not None and len(report.differences) == 5, report

    # repaired through the stream's fold code: the first connection's side (crm) wins a two-way fold's value
    code, out = verify(pair, "--repair")
    assert code == 0, out
    assert _repairs(out) == sorted([
        f"repaired customer_email crm_to_erp {db}.customers key=({acme},) (crm key ('c-1',)): "
        f"email 'drift@acme.de' -> 'info@acme.de'",
        f"repaired customer_email crm_to_erp {db}.customers key=({beta},) (crm key ('c-2',)): email NULL -> 'beta@x.de'",
        f"repaired customer_phone erp_to_crm public.address erp key=({gamma},): value NULL -> '+1 3'",
    ]), out
    assert pair.my_query("SELECT name, email, phone FROM customers ORDER BY name") == [
        ("Acme", "info@acme.de", None), ("Beta", "beta@x.de", None), ("Gamma", None, "+1 3")]
    rows = pair.pg_query("SELECT id, owner_id, kind, value FROM address WHERE kind = 'phone'")
    assert [r[1:] for r in rows] == [(crm["Gamma"], "phone", "+1 3")] and rows[0][0] != phone_id  # a new uuid
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out

    # the reverse fold's other writes: a changed column updates the child row, a NULL column deletes it
    pair.my_query("UPDATE customers SET phone = '+1 4' WHERE name = 'Gamma'")
    pair.my_query("UPDATE customers SET phone = '+1 5' WHERE name = 'Acme'")
    code, out = verify(pair, "--repair")
    assert code == 0 and len(_repairs(out)) == 2, out
    assert sorted(pair.pg_query("SELECT owner_id, value FROM address WHERE kind = 'phone'")) == sorted([
        (crm["Gamma"], "+1 4"), ("c-1", "+1 5")])
    pair.my_query("UPDATE customers SET phone = NULL WHERE name = 'Gamma'")
    code, out = verify(pair, "--repair")
    assert code == 0 and _repairs(out) == [
        f"repaired customer_phone erp_to_crm public.address key=({rows[0][0]!r},) (erp key ({gamma},)): "
        f"value '+1 4' -> NULL"], out
    assert pair.pg_query("SELECT owner_id FROM address WHERE kind = 'phone'") == [("c-1",)]

    # two rows of the type for one parent: the stream's row error, named, never repaired by a pick
    pair.pg_query("INSERT INTO address VALUES ('a-8', 'c-1', 'email', 'two@acme.de')")
    code, out = verify(pair, "--repair")
    assert code == 1, out
    assert "table public.address, key ('a-8',), column value" in out and "carries one" in out, out
    assert pair.my_query("SELECT email FROM customers WHERE name = 'Acme'") == [("info@acme.de",)]


def test_a_two_hop_fold_through_a_link_table_is_verified_and_repaired(make_pair):
    pair = make_pair(PARTY_PG, ESPO_MY, ESPO_MAPPINGS, names=("tryton", "espocrm"), maria_first=True,
                     extra_config=QUICK)
    pair.my_query("INSERT INTO contact VALUES ('c1', 'Ann'), ('c2', 'Bob'), ('c3', 'Cid')")
    pair.my_query("INSERT INTO email_address (id, name) VALUES ('e1', 'office@x.de'), ('e2', 'ann@x.de')")
    pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) VALUES "
                  "('c1', 'e2', 'Contact', 1), ('c1', 'e1', 'Contact', 0), ('c2', 'e1', 'Contact', 1)")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    party = dict(pair.pg_query("SELECT name, id FROM party"))
    assert pair.pg_query("SELECT name, email FROM party ORDER BY name") == [
        ("Ann", "ann@x.de"), ("Bob", "office@x.de"), ("Cid", None)]
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out
    assert "contact_email: 3 rows checked, 0 differing" in out, out  # the parents, compared once

    # the far row renamed behind replicator's back (both parents that share it), a column changed on the other side
    pair.my_query("UPDATE email_address SET name = 'desk@x.de' WHERE id = 'e1'")
    pair.pg_query("UPDATE party SET email = 'ann@y.de' WHERE name = 'Ann'")
    # a one-way fold and a parent without a link row: the column is Tryton's own, not compared (operations.md)
    pair.pg_query("UPDATE party SET email = 'cid@x.de' WHERE name = 'Cid'")
    code, out = verify(pair)
    assert code == 1, out
    assert sorted(difference_lines(out)) == sorted([
        f"contact_email espocrm_to_tryton public.party key=({party['Ann']},) (espocrm key ('c1',)): differs: "
        f"email: 'ann@x.de' -> 'ann@y.de'",
        f"contact_email espocrm_to_tryton public.party key=({party['Bob']},) (espocrm key ('c2',)): differs: "
        f"email: 'desk@x.de' -> 'office@x.de'",
    ]), out
    code, out = verify(pair, "--repair")
    assert code == 0 and len(_repairs(out)) == 2, out
    assert pair.pg_query("SELECT name, email FROM party ORDER BY name") == [
        ("Ann", "ann@x.de"), ("Bob", "desk@x.de"), ("Cid", "cid@x.de")]
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out
    # two primary addresses: the stream's row error, named, not repaired
    pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) VALUES "
                  "('c2', 'e2', 'Contact', 1)")
    code, out = verify(pair, "--repair")
    assert code == 1 and "column email_address_id" in out and "carries one" in out, out
    assert pair.pg_query("SELECT email FROM party WHERE name = 'Bob'") == [("desk@x.de",)]


def test_a_fold_with_a_value_map_is_compared_in_target_terms(make_pair):
    pair = make_pair(PRODUCT_PG, PRODUCTS_MY, MAP_MAPPINGS, extra_config=QUICK)
    pair.pg_query("INSERT INTO product VALUES ('WG-1', 'Widget', 'Y'), ('WG-2', 'Gadget', 'N'), "
                  "('WG-3', 'Gizmo', NULL)")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = dict(pair.my_query("SELECT sku, id FROM products"))
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out  # 'Y' is 1, 'N' is 0, NULL no attribute row

    db = pair.maria.dbname
    pair.my_query("UPDATE attribute_values SET boolean_value = 0 WHERE entity_id = %s", (ids["WG-1"],))
    code, out = verify(pair)
    assert code == 1, out
    (row_id,), = pair.my_query("SELECT id FROM attribute_values WHERE entity_id = %s", (ids["WG-1"],))
    assert sorted(difference_lines(out)) == sorted([
        f"product_taxable crm_to_erp {db}.attribute_values key=({row_id},) (crm key ('WG-1',)): differs: "
        f"boolean_value: 1 -> 0",
        f"product_taxable erp_to_crm public.product key=('WG-1',) (erp key ({ids['WG-1']},)): differs: "
        f"taxable: 'N' -> 'Y'",
    ]), out
    # a value the map does not list: the stream's row error, named; neither direction overwrites it
    pair.pg_query("UPDATE product SET taxable = 'X' WHERE product_id = 'WG-2'")
    code, out = verify(pair, "--repair")
    assert code == 1, out
    refused = [line for line in out.splitlines() if line.startswith("not repaired product_taxable")]
    assert len(refused) == 2 and all("table public.product, key ('WG-2',), column taxable" in line
                                     and "'X' (str) is not in the map" in line for line in refused), out
    assert _repairs(out) == sorted(refused + [
        f"repaired product_taxable crm_to_erp {db}.attribute_values key=({row_id},) (crm key ('WG-1',)): "
        f"boolean_value 0 -> 1"]), out
    assert pair.pg_query("SELECT taxable FROM product WHERE product_id = 'WG-2'") == [("X",)]
    assert pair.my_query("SELECT boolean_value FROM attribute_values WHERE entity_id = %s", (ids["WG-1"],)) == [(1,)]
    pair.pg_query("UPDATE product SET taxable = 'N' WHERE product_id = 'WG-2'")
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out


# vfold15: a fold into a table whose rows its application creates lazily (`optional: true`)
EXTRA_PG = """
CREATE TABLE customer (id int PRIMARY KEY, name varchar(100) NULL);
CREATE TABLE address (id varchar(40) PRIMARY KEY, owner_id int NOT NULL, kind varchar(10) NOT NULL,
                      value varchar(200) NOT NULL)"""
EXTRA_MY = "CREATE TABLE cust_extra (id INT NOT NULL PRIMARY KEY, note VARCHAR(100) NULL, email VARCHAR(200) NULL)"
EXTRA_MAPPINGS = """
mappings:
  extras:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: cust_extra, key: [id], optional: true}
    fields: {id: ~, name: {erp: note}}
  customer_email:
    direction: crm_to_erp
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: cust_extra, key: [id]}
    fold: {parent: extras, child: crm, by: owner_id, value: value, into: email}
"""


def test_a_missing_parent_row_of_an_optional_table_is_created_whole_by_repair(make_pair):
    """The ERP's extension row of customer 1 does not exist (its fields are all NULL, `optional: true`), yet its
    e-mail must be carried: verify names it, and `--repair` creates the row whole, as the parent mapping's
    stream creates one (its fields, NULL here, and the folded column), instead of updating nothing."""
    pair = make_pair(EXTRA_PG, EXTRA_MY, EXTRA_MAPPINGS, extra_config=QUICK)
    db = pair.maria.dbname
    pair.pg_query("INSERT INTO customer VALUES (1, NULL), (2, 'Beta')")
    pair.pg_query("INSERT INTO address VALUES ('a-2', 2, 'email', 'two@x.de')")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pair.my_query("SELECT id, note, email FROM cust_extra ORDER BY id") == [(2, "Beta", "two@x.de")]
    pair.pg_query("INSERT INTO address VALUES ('a-1', 1, 'email', 'one@x.de')")  # behind replicator's back
    code, out = verify(pair)
    assert code == 1 and difference_lines(out) == [
        f"customer_email crm_to_erp {db}.cust_extra key=(1,) (crm key (1,)): differs: email: 'one@x.de' -> NULL"
    ], out
    code, out = verify(pair, "--repair")
    assert code == 0 and _repairs(out) == [
        f"repaired customer_email crm_to_erp {db}.cust_extra key=(1,) (crm key (1,)): email NULL -> 'one@x.de'"], out
    assert pair.my_query("SELECT id, note, email FROM cust_extra ORDER BY id") == [
        (1, None, "one@x.de"), (2, "Beta", "two@x.de")]
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out


def test_a_child_row_inserted_while_repair_runs_is_not_overwritten_by_its_stale_value(make_pair, monkeypatch):
    """A shared lock holds only the child rows that exist. Beta had no e-mail row (a two-way fold: its ERP
    column, drifted to 'drift@x.de', is to be NULL); while the repair runs, the application inserts Beta's
    e-mail row in the CRM and the stream carries it into the ERP before the repair writes. The repair reads the
    source again before it commits, finds the value moved, and leaves Beta to the stream (named), instead of
    writing its stale NULL over the new e-mail."""
    from replicator.mapping.links import Linker

    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, ADDRESS_MAPPINGS, extra_config=QUICK)
    db = pair.maria.dbname
    pair.pg_query("INSERT INTO customer VALUES ('c-1', 'Acme'), ('c-2', 'Beta')")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 'c-1', 'email', 'info@acme.de')")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    pair.my_query("UPDATE customers SET email = 'drift@x.de'")  # both parents drifted in the ERP
    cust = dict(pair.my_query("SELECT name, cust_no FROM customers"))
    original = Linker.apply
    fired: list[str] = []

    def apply(self: Linker, lc, *args, **kwargs):  # type: ignore[no-untyped-def]
        if lc.flow.mapping == "customer_email" and lc.flow.stream == "crm_to_erp" and not fired:
            fired.append("once")  # the application's insert, and the stream's write of it, before the repair's
            pair.pg_query("INSERT INTO address VALUES ('a-9', 'c-2', 'email', 'new@beta.de')")
            pair.my_query("UPDATE customers SET email = 'new@beta.de' WHERE name = 'Beta'")
        return original(self, lc, *args, **kwargs)
    monkeypatch.setattr(Linker, "apply", apply)
    code, out = verify(pair, "--repair")
    assert fired, out
    assert (f"not repaired customer_email crm_to_erp {db}.customers key=({cust['Beta']},) (crm key ('c-2',)): "
            f"changed on the source during the repair; the stream carries the change") in out, out
    assert f"repaired customer_email crm_to_erp {db}.customers key=({cust['Acme']},)" in out, out
    assert pair.my_query("SELECT name, email FROM customers ORDER BY name") == [
        ("Acme", "info@acme.de"), ("Beta", "new@beta.de")]  # the concurrent write stands
    code, out = verify(pair)
    assert (code, difference_lines(out)) == (0, []), out
