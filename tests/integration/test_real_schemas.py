"""Schemas shaped like those of real open-source products (issue 11), on real servers: an ERP whose tables
key rows by AUTO_INCREMENT `rowid`, store 0 for "no parent" and carry a tenant column (`entity`), and a
CRM on PostgreSQL with its default REPLICA IDENTITY and flags the ERP lacks."""
from __future__ import annotations

import time

from tests.integration.harness import wait_until

# ---------------------------------------------------------------- defect 1: filters and key-only deletes

FILTER_PG = "CREATE TABLE account (id int PRIMARY KEY, name text NOT NULL, deleted boolean NOT NULL DEFAULT false)"
FILTER_MY = "CREATE TABLE account (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL)"
FILTER_MAPPINGS = """
mappings:
  accounts:
    direction: crm_to_erp
    crm: {table: account, key: [id]}
    erp: {table: account, key: [id]}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields: {id: ~, name: ~}
"""


def test_a_filter_needs_whole_deleted_rows_check_says_so_setup_fixes_it(make_pair):
    pair = make_pair(FILTER_PG, FILTER_MY, FILTER_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    # setup gave the filtered table REPLICA IDENTITY FULL: its deletes carry the filter's column
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'account'") == [("f",)]
    pair.pg_query("ALTER TABLE account REPLICA IDENTITY DEFAULT")
    result = pair.cli("check", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert ("public.account has REPLICA IDENTITY DEFAULT: mapping accounts filters crm_to_erp on deleted, which "
            "a deleted row carries only with FULL") in out, out
    assert 'ALTER TABLE "public"."account" REPLICA IDENTITY FULL' in out, out
    pair.setup()
    assert "public.account has REPLICA IDENTITY" not in pair.cli("check").stdout
    pair.start()
    pair.pg_query("INSERT INTO account VALUES (1, 'kept', false), (2, 'gone', false), (3, 'hidden', true)")
    wait_until(lambda: pair.my_query("SELECT id FROM account ORDER BY id") == [(1,), (2,)], 30, "rows 1 and 2")
    pair.pg_query("DELETE FROM account WHERE id = 2")
    wait_until(lambda: pair.my_query("SELECT id FROM account ORDER BY id") == [(1,)], 30, "the delete applied")
    assert pair.stop() == 0


# ---------------------------------------------------------------- rows leaving a filter or a slice

LEAVE_PG = """
CREATE TABLE account (id int PRIMARY KEY, name text NOT NULL, deleted boolean NOT NULL DEFAULT false);
CREATE TABLE quote (id int PRIMARY KEY, status text NOT NULL, total int NOT NULL);
CREATE TABLE person (id serial PRIMARY KEY, name text NOT NULL, company_id int);
CREATE TABLE lead (id int PRIMARY KEY, name text NOT NULL, deleted boolean NOT NULL DEFAULT false)"""
LEAVE_MY = """
CREATE TABLE account (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY, total INT NOT NULL);
CREATE TABLE person (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE prospect (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, active TINYINT NOT NULL DEFAULT 1)"""
LEAVE_MAPPINGS = """
mappings:
  accounts:                           # SuiteCRM's soft delete: deleted = true deletes the ERP row
    direction: crm_to_erp
    crm: {table: account, key: [id]}
    erp: {table: account, key: [id]}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields: {id: ~, name: ~}
  orders:                             # a confirmed quote makes an order that outlives the quote's status
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: orders, key: [id]}
    filter: {crm_to_erp: {status: {eq: confirmed}}}
    leave: ignore
    fields: {id: ~, total: ~}
  people:                             # Twenty: a person whose company is destroyed (companyId NULL)
    direction: both
    crm: {table: person, key: [id]}
    erp: {table: person, key: [id]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {company_id: {is_null: false}}}
    fields: {name: ~}
  leads:                              # leaving marks the ERP row instead (a soft delete)
    direction: crm_to_erp
    crm: {table: lead, key: [id]}
    erp: {table: prospect, key: [id]}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    leave: {set: {active: 0}}
    fields: {id: ~, name: ~}
"""
FAST_VERIFY = "sync: {on_first_run: false}\nverify: {recheck_seconds: 1, chunk_rows: 100}\n"


def test_rows_leaving_a_filter_postgresql_to_mariadb_and_verify(make_pair):
    from tests.integration.test_verify import verify

    pair = make_pair(LEAVE_PG, LEAVE_MY, LEAVE_MAPPINGS, extra_config=FAST_VERIFY)
    pair.start()
    pair.pg_query("INSERT INTO account VALUES (1, 'kept', false), (2, 'binned', false), (3, 'hidden', true)")
    pair.pg_query("INSERT INTO quote VALUES (10, 'confirmed', 100), (11, 'draft', 50)")
    pair.pg_query("INSERT INTO person (name, company_id) VALUES ('Ann', 7), ('Bob', 7)")
    pair.pg_query("INSERT INTO lead VALUES (20, 'Lea', false)")
    wait_until(lambda: (pair.my_query("SELECT id FROM account ORDER BY id"), pair.my_query("SELECT id FROM orders"),
                        pair.my_query("SELECT name FROM person ORDER BY name"), pair.my_query("SELECT * FROM prospect"))
               == ([(1,), (2,)], [(10,)], [("Ann",), ("Bob",)], [(20, "Lea", 1)]), 30, "the rows inside the filters")
    bob_erp = pair.my_query("SELECT id FROM person WHERE name = 'Bob'")[0][0]
    # leaving: a soft delete deletes the ERP row; `leave: ignore` keeps the order; a two-way crosswalk
    # mapping deletes the paired person; a row outside that stays outside changes nothing
    pair.pg_query("UPDATE account SET deleted = true WHERE id = 2")
    pair.pg_query("UPDATE account SET name = 'still hidden' WHERE id = 3")
    pair.pg_query("UPDATE quote SET status = 'cancelled' WHERE id = 10")
    pair.pg_query("UPDATE person SET company_id = NULL WHERE name = 'Bob'")
    pair.pg_query("UPDATE lead SET deleted = true WHERE id = 20")
    wait_until(lambda: (pair.my_query("SELECT id FROM account ORDER BY id"), pair.my_query("SELECT name FROM person"),
                        pair.my_query("SELECT * FROM prospect"))
               == ([(1,)], [("Ann",)], [(20, "Lea", 0)]), 30, "account 2 and Bob deleted in the ERP, Lea marked")
    pair.pg_query("UPDATE account SET name = 'marker' WHERE id = 1")  # everything before it is applied
    wait_until(lambda: pair.my_query("SELECT name FROM account") == [("marker",)], 30, "the marker")
    assert pair.my_query("SELECT id, total FROM orders") == [(10, 100)]
    left = {(m, a): pair.metric("replicator_rows_left_total", direction="crm_to_erp", mapping=m, action=a)
            for m, a in (("accounts", "propagate"), ("orders", "ignore"), ("people", "propagate"), ("leads", "set"))}
    assert left == {("accounts", "propagate"): 1, ("orders", "ignore"): 1, ("people", "propagate"): 1,
                    ("leads", "set"): 1}
    # the daemon's own delete is tagged: the ERP's delete of Bob does not come back to the CRM
    assert pair.pg_query("SELECT name, company_id FROM person ORDER BY name") == [("Ann", 7), ("Bob", None)]
    # back in the filter: Bob comes back whole, under the key his crosswalk pair names
    pair.pg_query("UPDATE person SET company_id = 8 WHERE name = 'Bob'")
    pair.pg_query("UPDATE account SET deleted = false WHERE id = 2")
    wait_until(lambda: (pair.my_query("SELECT id, name FROM person WHERE name = 'Bob'"),
                        pair.my_query("SELECT id FROM account ORDER BY id"))
               == ([(bob_erp, "Bob")], [(1,), (2,)]), 30, "Bob and account 2 back in the ERP")
    # the ERP edits the re-created person: it flows back (the pair is intact)
    pair.my_query("UPDATE person SET name = 'Robert' WHERE id = %s", (bob_erp,))
    wait_until(lambda: pair.pg_query("SELECT name FROM person WHERE company_id = 8") == [("Robert",)], 30,
               "the ERP's edit of Bob")
    pair.pg_query("UPDATE account SET deleted = true WHERE id = 2")
    wait_until(lambda: pair.my_query("SELECT id FROM account ORDER BY id") == [(1,)], 30, "account 2 left again")
    assert pair.stop() == 0
    code, out = verify(pair)
    assert code == 0, out
    # a stale copy of a row outside the filter is a difference under a deleting leave (repair deletes it),
    # and none under `leave: ignore` (the order of cancelled quote 10, and now one of draft quote 11)
    pair.my_query("INSERT INTO account VALUES (3, 'stale')")
    pair.my_query("INSERT INTO orders VALUES (11, 50)")
    pair.my_query("UPDATE prospect SET active = 1 WHERE id = 20")  # the soft delete undone by hand
    code, out = verify(pair)
    lines = sorted(line for line in out.splitlines() if "left the filter" in line)
    assert code != 0 and len(lines) == 2 and lines[0].startswith("accounts crm_to_erp ") \
        and lines[0].endswith(".account key=(3,): left the filter or slice, still in the target") \
        and lines[1].startswith("leads crm_to_erp ") \
        and lines[1].endswith(".prospect key=(20,): left the filter or slice, not marked: active: 0 -> 1"), out
    assert not any(line.startswith("orders crm_to_erp ") and "key=" in line for line in out.splitlines()), out
    code, out = verify(pair, "--repair")
    assert code == 0 and "deleted accounts crm_to_erp" in out and "marked leads crm_to_erp" in out, out
    assert pair.my_query("SELECT id FROM account ORDER BY id") == [(1,)]
    assert pair.my_query("SELECT * FROM prospect") == [(20, "Lea", 0)]
    assert pair.my_query("SELECT id FROM orders ORDER BY id") == [(10,), (11,)]


SLICE_PG = """
CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE contact (id serial PRIMARY KEY, name text NOT NULL)"""
SLICE_MY = """
CREATE TABLE party (id INT AUTO_INCREMENT PRIMARY KEY, dtype VARCHAR(20) NOT NULL, deleted TINYINT NOT NULL DEFAULT 0,
                    name VARCHAR(100) NOT NULL)"""
SLICE_MAPPINGS = """
mappings:
  customers:                          # two-way; the ERP's soft delete and its slice both leave
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: party, key: [id], slice: {dtype: customer}}
    link: {crosswalk: true}
    filter: {erp_to_crm: {deleted: {eq: 0}}}
    fields: {name: ~}
  contacts:
    direction: erp_to_crm
    crm: {table: contact, key: [id]}
    erp: {table: party, key: [id], slice: {dtype: contact}}
    link: {crosswalk: true}
    leave: ignore                     # a contact that becomes a lead stays in the CRM
    fields: {name: ~}
"""


def test_rows_leaving_a_filter_or_slice_mariadb_to_postgresql_and_verify(make_pair):
    from tests.integration.test_verify import verify

    pair = make_pair(SLICE_PG, SLICE_MY, SLICE_MAPPINGS, extra_config=FAST_VERIFY)
    pair.start()
    pair.my_query("INSERT INTO party (dtype, name) VALUES ('customer', 'Acme'), ('customer', 'Beta'), "
                  "('customer', 'Gone'), ('contact', 'Ann'), ('lead', 'Lee')")
    wait_until(lambda: (pair.pg_query("SELECT name FROM customer ORDER BY name"),
                        pair.pg_query("SELECT name FROM contact ORDER BY name"))
               == ([("Acme",), ("Beta",), ("Gone",)], [("Ann",)]), 30, "customers and contacts in the CRM")
    # a slice move (customer -> contact), a soft delete, and a contact that becomes a lead (leave: ignore)
    pair.my_query("UPDATE party SET dtype = 'contact' WHERE name = 'Beta'")
    pair.my_query("UPDATE party SET deleted = 1 WHERE name = 'Gone'")
    pair.my_query("UPDATE party SET dtype = 'lead' WHERE name = 'Ann'")
    pair.my_query("UPDATE party SET name = 'Lee Ltd' WHERE name = 'Lee'")  # outside, stays outside
    wait_until(lambda: (pair.pg_query("SELECT name FROM customer ORDER BY name"),
                        pair.pg_query("SELECT name FROM contact ORDER BY name"))
               == ([("Acme",)], [("Ann",), ("Beta",)]), 30, "Beta moved, Gone deleted, Ann kept")
    assert pair.metric("replicator_rows_left_total", direction="erp_to_crm", mapping="customers",
                       action="propagate") == 2
    assert pair.metric("replicator_rows_left_total", direction="erp_to_crm", mapping="contacts", action="ignore") == 1
    # the CRM's deletes did not come back to the ERP (tagged), and the two-way mapping still flows both ways
    pair.pg_query("UPDATE customer SET name = 'Acme AG' WHERE name = 'Acme'")
    wait_until(lambda: pair.my_query("SELECT name FROM party WHERE dtype = 'customer' AND deleted = 0")
               == [("Acme AG",)], 30, "the CRM's edit in the ERP")
    assert pair.my_query("SELECT name, dtype, deleted FROM party ORDER BY id") == [
        ("Acme AG", "customer", 0), ("Beta", "contact", 0), ("Gone", "customer", 1), ("Ann", "lead", 0),
        ("Lee Ltd", "lead", 0)]
    assert pair.stop() == 0
    code, out = verify(pair)
    assert code == 0, out


# ---------------------------------------------------------------- constants, insert_only, zero means none

COMPANY_PG = """
CREATE TABLE company (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    parent_id bigint REFERENCES company(id),
    origin text NOT NULL
)"""
SOCIETE_MY = """
CREATE TABLE llx_societe (
    rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    nom VARCHAR(128) NOT NULL,
    entity INT NOT NULL,
    client TINYINT NOT NULL,
    fk_parent INT NOT NULL DEFAULT 0
)"""
COMPANY_MAPPINGS = """
mappings:
  companies:
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: llx_societe, key: [rowid]}
    link: {crosswalk: true}
    fields:
      name: {erp: nom}
      parent_id: {erp: fk_parent, references: companies, null_if: {erp: 0}}
      client: {crm: ~, constant: 1}
      entity: {crm: ~, constant: 1, insert_only: true}
      origin: {erp: ~, constant: erp, insert_only: true}
"""


def test_constants_on_both_sides_and_zero_for_no_parent(make_pair):
    pair = make_pair(COMPANY_PG, SOCIETE_MY, COMPANY_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    check = pair.cli("check")
    assert "does not exist" not in check.stdout, check.stdout
    pair.start()
    pair.pg_query("INSERT INTO company (name, origin) VALUES ('Acme', 'crm')")
    wait_until(lambda: pair.my_query("SELECT nom, entity, client, fk_parent FROM llx_societe")
               == [("Acme", 1, 1, 0)], 30, "Acme in the ERP with entity 1, client 1 and fk_parent 0")
    acme_erp = pair.my_query("SELECT rowid FROM llx_societe WHERE nom = 'Acme'")[0][0]
    acme_crm = pair.pg_query("SELECT id FROM company WHERE name = 'Acme'")[0][0]
    # the ERP creates a top-level company (0 = none) and a subsidiary of Acme
    pair.my_query("INSERT INTO llx_societe (nom, entity, client, fk_parent) VALUES ('Top', 1, 1, 0)")
    pair.my_query("INSERT INTO llx_societe (nom, entity, client, fk_parent) VALUES ('Sub', 1, 1, %s)", (acme_erp,))
    wait_until(lambda: pair.pg_query("SELECT name, parent_id, origin FROM company WHERE name <> 'Acme' ORDER BY name")
               == [("Sub", acme_crm, "erp"), ("Top", None, "erp")], 30, "Top without a parent, Sub under Acme")
    # an update leaves the insert-only constant alone
    pair.my_query("UPDATE llx_societe SET entity = 2 WHERE nom = 'Acme'")
    pair.pg_query("UPDATE company SET name = 'Acme Ltd' WHERE name = 'Acme'")
    wait_until(lambda: pair.my_query("SELECT nom, entity FROM llx_societe WHERE rowid = %s", (acme_erp,))
               == [("Acme Ltd", 2)], 30, "the rename applied, entity kept")
    assert pair.metric("replicator_parked_rows") == 0
    # the apply sessions are up while rows are applied (look-up sessions closing do not say otherwise)
    assert pair.metric("replicator_connection_up", side="erp", role="apply") == 1
    assert pair.metric("replicator_connection_up", side="crm", role="apply") == 1
    assert pair.stop() == 0


# ---------------------------------------------------------------- keys the application makes

CONTACT_PG = """
CREATE TABLE contact (
    id varchar(80) PRIMARY KEY,
    entity int NOT NULL,
    name text NOT NULL
);
CREATE TABLE note (
    id text PRIMARY KEY DEFAULT ('note-' || md5(random()::text || clock_timestamp()::text)),
    body text NOT NULL
)"""
CONTACT_MY = """
CREATE TABLE llx_socpeople (
    rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entity INT NOT NULL,
    lastname VARCHAR(100) NOT NULL
);
CREATE TABLE llx_note (
    rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    body VARCHAR(200) NOT NULL
)"""
CONTACT_MAPPINGS = """
mappings:
  contacts:
    direction: both
    crm: {table: contact, key: [id], generate: {id: {template: "contact/{entity}/{uuid}"}}}
    erp: {table: llx_socpeople, key: [rowid]}
    link: {crosswalk: true}
    fields:
      entity: ~
      name: {erp: lastname}
  notes:
    direction: erp_to_crm
    crm: {table: note, key: [id], generate: {id: default}}
    erp: {table: llx_note, key: [rowid]}
    link: {crosswalk: true}
    fields:
      body: ~
"""


def test_keys_made_like_the_application_and_recorded_in_the_crosswalk(make_pair):
    pair = make_pair(CONTACT_PG, CONTACT_MY, CONTACT_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    check = pair.cli("check")
    assert "crosswalk: key column" not in check.stdout, check.stdout
    pair.start()
    pair.my_query("INSERT INTO llx_socpeople (entity, lastname) VALUES (1, 'Ann'), (2, 'Bob')")
    pair.my_query("INSERT INTO llx_note (body) VALUES ('first call')")
    wait_until(lambda: len(pair.pg_query("SELECT 1 FROM contact")) == 2, 30, "two contacts in the CRM")
    keys = dict(pair.pg_query("SELECT name, id FROM contact"))
    assert keys["Ann"].startswith("contact/1/") and keys["Bob"].startswith("contact/2/"), keys
    assert len(keys["Ann"]) == len("contact/1/") + 36
    wait_until(lambda: len(pair.pg_query("SELECT 1 FROM note")) == 1, 30, "the note in the CRM")
    assert pair.pg_query("SELECT id LIKE 'note-%%' FROM note") == [(True,)]
    # the pairs were recorded with the rows: later changes find their counterpart, nothing is duplicated
    pairs = pair.pg_query("SELECT mapping, target_key FROM replicator.crosswalk WHERE mapping = 'contacts'")
    assert sorted(t for _, t in pairs) == sorted(f'["{k}"]' for k in keys.values()), pairs
    pair.my_query("UPDATE llx_socpeople SET lastname = 'Anna' WHERE lastname = 'Ann'")
    wait_until(lambda: pair.pg_query("SELECT name FROM contact WHERE id = %s", (keys["Ann"],)) == [("Anna",)],
               30, "the rename on the same CRM row")
    # the CRM's own application makes a key: the ERP row is created and linked the other way
    pair.pg_query("INSERT INTO contact VALUES ('contact/1/made-by-the-crm', 1, 'Cid')")
    wait_until(lambda: pair.my_query("SELECT entity, lastname FROM llx_socpeople WHERE lastname = 'Cid'")
               == [(1, "Cid")], 30, "Cid in the ERP")
    pair.my_query("DELETE FROM llx_socpeople WHERE lastname = 'Bob'")
    wait_until(lambda: pair.pg_query("SELECT name FROM contact ORDER BY name") == [("Anna",), ("Cid",)], 30,
               "Bob deleted in the CRM")
    assert pair.stop() == 0


# ---------------------------------------------------------------- one table, several entities (a discriminator)

PARTY_PG = """
CREATE TABLE party (
    id varchar(40) PRIMARY KEY,
    dtype varchar(20) NOT NULL CHECK (dtype IN ('customer', 'contact', 'lead')),
    tenant varchar(10) NOT NULL,
    name text NOT NULL
)"""
PARTY_MY = """
CREATE TABLE customers (
    cust_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL
);
CREATE TABLE contacts (
    contact_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL
)"""
PARTY_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: customer, tenant: acme}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: party, key: [id], slice: {dtype: contact, tenant: acme}, generate: {id: uuid}}
    erp: {table: contacts, key: [contact_no]}
    link: {crosswalk: true}
    leave: {crm_to_erp: ignore}       # a contact that becomes a lead keeps its ERP contact
    fields: {name: ~}
"""


def test_a_discriminator_table_holds_several_mappings_each_touching_only_its_slice(make_pair):
    pair = make_pair(PARTY_PG, PARTY_MY, PARTY_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    # the slice's columns are read from deleted rows too: setup gave party REPLICA IDENTITY FULL
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'party'") == [("f",)]
    pair.cli("check")
    pair.start()
    pair.my_query("INSERT INTO customers (name) VALUES ('Acme')")
    pair.my_query("INSERT INTO contacts (name) VALUES ('Ann')")
    wait_until(lambda: pair.pg_query("SELECT dtype, tenant, name FROM party ORDER BY dtype")
               == [("contact", "acme", "Ann"), ("customer", "acme", "Acme")], 30, "both entities in party")
    # rows of another entity (or another tenant) are no mapping's: they go nowhere
    pair.pg_query("INSERT INTO party VALUES ('l1', 'lead', 'acme', 'Lead'), ('c9', 'customer', 'other', 'Other')")
    # each CRM row flows to its own ERP table
    pair.pg_query("INSERT INTO party VALUES ('c2', 'customer', 'acme', 'Beta'), ('p2', 'contact', 'acme', 'Bob')")
    wait_until(lambda: (pair.my_query("SELECT name FROM customers ORDER BY name"),
                        pair.my_query("SELECT name FROM contacts ORDER BY name"))
               == ([("Acme",), ("Beta",)], [("Ann",), ("Bob",)]), 30, "Beta a customer, Bob a contact")
    # a CRM row whose discriminator changes leaves the slice. contacts' `leave: ignore` keeps its ERP contact,
    # and the ERP's later edits of that contact do not touch the CRM row (a target slice: left alone)
    ann = pair.pg_query("SELECT id FROM party WHERE name = 'Ann'")[0][0]
    pair.pg_query("UPDATE party SET dtype = 'lead' WHERE id = %s", (ann,))
    # a customer that becomes a contact moves: customers' leave (its delete, propagate) deletes the ERP
    # customer, contacts creates the ERP contact
    pair.pg_query("UPDATE party SET dtype = 'contact' WHERE name = 'Beta'")
    wait_until(lambda: (pair.my_query("SELECT name FROM customers ORDER BY name"),
                        pair.my_query("SELECT name FROM contacts ORDER BY name"))
               == ([("Acme",)], [("Ann",), ("Beta",), ("Bob",)]), 30, "Beta moved from customers to contacts")
    assert pair.metric("replicator_rows_left_total", direction="crm_to_erp", mapping="customers",
                       action="propagate") == 1
    assert pair.metric("replicator_rows_left_total", direction="crm_to_erp", mapping="contacts", action="ignore") == 1
    pair.my_query("UPDATE contacts SET name = 'Anna' WHERE name = 'Ann'")
    pair.my_query("UPDATE customers SET name = 'Acme Ltd' WHERE name = 'Acme'")
    wait_until(lambda: pair.pg_query("SELECT name FROM party WHERE dtype = 'customer' AND tenant = 'acme' "
                                     "ORDER BY name") == [("Acme Ltd",)], 30, "the customer renamed")
    assert pair.pg_query("SELECT dtype, name FROM party WHERE id = %s", (ann,)) == [("lead", "Ann")]
    assert pair.pg_query("SELECT count(*) FROM party") == [(6,)]
    # deletes: a CRM delete of a slice row reaches the ERP; a lead's delete does not
    pair.pg_query("DELETE FROM party WHERE name IN ('Beta', 'Lead')")
    wait_until(lambda: pair.my_query("SELECT name FROM contacts ORDER BY name") == [("Anna",), ("Bob",)], 30,
               "Beta deleted in the ERP")
    assert pair.my_query("SELECT name FROM customers ORDER BY name") == [("Acme Ltd",)]
    assert pair.stop() == 0


# ---------------------------------------------------------------- a tenant column in the natural key

PRODUCT_PG = """
CREATE TABLE product (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    ref varchar(30) NOT NULL UNIQUE,
    label text
)"""
PRODUCT_MY = """
CREATE TABLE llx_product (
    rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entity INT NOT NULL DEFAULT 1,
    ref VARCHAR(30) NOT NULL,
    label VARCHAR(100),
    UNIQUE KEY uk_product_ref (entity, ref)
);
INSERT INTO llx_product (entity, ref, label) VALUES (1, 'P1', 'ours'), (2, 'P1', 'the other company''s')
"""
PRODUCT_MAPPINGS = """
mappings:
  products:
    direction: both
    crm: {table: product, key: [id]}
    erp: {table: llx_product, key: [rowid], slice: {entity: 1}}
    link: {natural: [ref], crosswalk: true}
    fields: {ref: ~, label: ~}
"""


def test_a_tenant_column_is_part_of_the_natural_key_and_constant_on_the_other_side(make_pair):
    pair = make_pair(PRODUCT_PG, PRODUCT_MY, PRODUCT_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    pair.cli("check")
    pair.start()
    # the CRM's P1 is company 1's P1: linked, not duplicated, and company 2's P1 is untouched
    pair.pg_query("INSERT INTO product (ref, label) VALUES ('P1', 'from the crm')")
    wait_until(lambda: pair.my_query("SELECT entity, label FROM llx_product WHERE ref = 'P1' ORDER BY entity")
               == [(1, "from the crm"), (2, "the other company's")], 30, "company 1's P1 updated")
    pair.pg_query("INSERT INTO product (ref, label) VALUES ('P3', 'new')")
    wait_until(lambda: pair.my_query("SELECT entity, label FROM llx_product WHERE ref = 'P3'") == [(1, "new")],
               30, "P3 created in company 1")
    # the other company's products never reach the CRM; company 1's do
    pair.my_query("INSERT INTO llx_product (entity, ref, label) VALUES (2, 'P2', 'theirs'), (1, 'P4', 'ours')")
    pair.my_query("UPDATE llx_product SET label = 'still theirs' WHERE entity = 2 AND ref = 'P1'")
    wait_until(lambda: pair.pg_query("SELECT ref, label FROM product ORDER BY ref")
               == [("P1", "from the crm"), ("P3", "new"), ("P4", "ours")], 30, "P4 in the CRM")
    assert pair.stop() == 0


# ---------------------------------------------------------------- parked rows that never leave

QUOTE_PG = """
CREATE TABLE quote (id int PRIMARY KEY, status text NOT NULL);
CREATE TABLE quote_line (id int PRIMARY KEY, quote_id int NOT NULL, item text NOT NULL)
"""
QUOTE_MY = """
CREATE TABLE orders (order_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY, status VARCHAR(20));
CREATE TABLE order_lines (line_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY, order_no INT NOT NULL, item VARCHAR(40))
"""
QUOTE_MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: orders, key: [order_no]}
    link: {crosswalk: true}
    gate: {crm_to_erp: {column: status, becomes: accepted}}
    fields: {status: ~}
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: order_lines, key: [line_no]}
    link: {crosswalk: true}
    parent: {mapping: quotes, field: quote_id}
    parked: {drop_after_days: 0.0001}     # 8.64 s
    fields: {quote_id: {erp: order_no}, item: ~}
"""


def test_parked_rows_show_their_age_and_are_dropped_after_the_retention(make_pair):
    pair = make_pair(QUOTE_PG, QUOTE_MY, QUOTE_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    pair.pg_query("INSERT INTO quote VALUES (1, 'draft'), (2, 'draft')")
    pair.pg_query("INSERT INTO quote_line VALUES (10, 1, 'bolt'), (20, 2, 'nut')")
    wait_until(lambda: pair.metric("replicator_parked_rows", direction="crm_to_erp") == 2, 30, "two parked lines")
    time.sleep(2)
    age = pair.metric("replicator_parked_oldest_age_seconds", direction="crm_to_erp")
    assert 1.5 <= age < 30, age  # it grows while nothing happens
    status = pair.cli("status", check=False).stdout  # degraded: rows are parked
    assert "parked rows      2 (the oldest waits for" in status, status
    # quote 2 is accepted in time: its line follows; quote 1 never is
    pair.pg_query("UPDATE quote SET status = 'accepted' WHERE id = 2")
    wait_until(lambda: pair.my_query("SELECT item FROM order_lines") == [("nut",)], 30, "the accepted quote's line")
    assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 1
    assert pair.stop() == 0
    time.sleep(9)  # past drop_after_days
    pair.start()   # a session start sweeps (a running stream every 10 minutes)
    wait_until(lambda: pair.metric("replicator_parked_dropped_total", direction="crm_to_erp",
                                   mapping="quote_lines") == 1, 30, "the expired line dropped")
    assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 0
    assert pair.metric("replicator_parked_oldest_age_seconds", direction="crm_to_erp") == 0
    assert "dropped a parked insert change of quote_lines row (10,)" in pair.log()
    assert pair.my_query("SELECT count(*) FROM `%s`.parked" % pair.state_schema) == [(0,)]
    assert pair.stop() == 0


# ---------------------------------------------------------------- a first draft for a wide table

WIDE_PG = """
CREATE TABLE customer (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name varchar(200) NOT NULL,
    vat_id varchar(20),
    email text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    credit_limit numeric(14,2),
    created_at timestamptz NOT NULL DEFAULT now(),
    twitter text
)"""
WIDE_MY = """
CREATE TABLE llx_client (
    c_rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    c_name VARCHAR(200) NOT NULL,
    c_vatid VARCHAR(20),
    c_email VARCHAR(255),
    c_status ENUM('active','blocked') NOT NULL DEFAULT 'active',
    c_credit_limit DECIMAL(14,2),
    c_created_at DATETIME(6),
    c_fax VARCHAR(20)
)"""


def test_scaffold_drafts_a_mapping_that_check_passes(make_pair):
    placeholder = "mappings: {}\n"  # scaffold needs no mapping; the draft replaces this file
    pair = make_pair(WIDE_PG, WIDE_MY, placeholder, setup=False)
    result = pair.cli("scaffold", "--table", "crm=customer", "--table", "erp=llx_client", "--name", "clients")
    text = result.stdout
    for line in ("    link: {crosswalk: true}", "      name: {erp: c_name}", "      vat_id: {erp: c_vatid}",
                 "      status: {erp: c_status}", "      credit_limit: {erp: c_credit_limit}",
                 "    #   twitter TEXT", "    #   c_fax VARCHAR(20)"):
        assert line in text, text
    assert "      email: {erp: c_email, lossy: allow}" in text, text  # unbounded text into 255 characters
    (pair.tmp / "mappings" / "test.yaml").write_text(text)
    pair.setup()
    check = pair.cli("check")
    assert "FAIL" not in check.stdout, check.stdout
