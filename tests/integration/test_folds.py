"""`fold:` mappings on real servers (issue 11, gaps 6 and 7): a CRM address table keyed by application
UUIDs and typed by `kind` <-> the ERP customer's email and phone columns; a CRM association table
contact_company <-> the ERP contact's company_no. Both directions, deletes and NULLs, parking until the
parent is linked, no echo, and a kill -9 in the middle."""
from __future__ import annotations

import time

from tests.integration.harness import wait_until

ADDRESS_PG = """
CREATE TABLE customer (id varchar(40) PRIMARY KEY, name text NOT NULL);
CREATE TABLE address (
    id varchar(40) PRIMARY KEY,
    owner_id varchar(40) NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('email', 'phone', 'fax')),
    value text NOT NULL
)"""
CUSTOMERS_MY = """
CREATE TABLE customers (
    cust_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(200) NULL,
    phone VARCHAR(50) NULL
)"""
# the folds come first: an ERP customer's insert is routed to them before the customers mapping has made its
# CRM counterpart, so they park and are replayed in the same transaction once it has
ADDRESS_MAPPINGS = """
mappings:
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email, lossy: allow}
  customer_phone:
    direction: both
    crm: {table: address, key: [id], slice: {kind: phone}, generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    fold: {parent: customers, child: crm, by: owner_id, value: value, into: phone, lossy: allow}
  customers:
    direction: both
    crm: {table: customer, key: [id], generate: {id: uuid}}
    erp: {table: customers, key: [cust_no]}
    link: {crosswalk: true}
    filter: {erp_to_crm: {name: {ne: hidden}}}
    fields: {name: ~}
"""


def _addresses(pair, owner):
    return pair.pg_query("SELECT kind, value FROM address WHERE owner_id = %s ORDER BY kind", (owner,))


def test_address_rows_fold_into_customer_columns_both_ways(make_pair):
    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, ADDRESS_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    check = pair.cli("check")
    assert "fold into" in check.stdout and "NOT NULL and the fold" not in check.stdout, check.stdout
    # the address table's deletes must say whose row and which kind they were
    assert pair.pg_query("SELECT relreplident FROM pg_class WHERE relname = 'address'") == [("f",)]
    pair.start()

    # CRM -> ERP: rows of the address table set, change and clear the customer's columns
    pair.pg_query("INSERT INTO customer VALUES ('c-1', 'Acme')")
    wait_until(lambda: pair.my_query("SELECT name FROM customers") == [("Acme",)], 30, "Acme in the ERP")
    (cust_no,), = pair.my_query("SELECT cust_no FROM customers")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 'c-1', 'email', 'info@acme.de'), "
                  "('a-2', 'c-1', 'phone', '+49 30 1'), ('a-3', 'c-1', 'fax', '+49 30 2')")
    wait_until(lambda: pair.my_query("SELECT email, phone FROM customers") == [("info@acme.de", "+49 30 1")],
               30, "email and phone folded into the ERP customer")
    pair.pg_query("UPDATE address SET value = 'sales@acme.de' WHERE id = 'a-1'")
    wait_until(lambda: pair.my_query("SELECT email FROM customers") == [("sales@acme.de",)], 30, "email changed")
    pair.pg_query("DELETE FROM address WHERE id = 'a-2'")
    wait_until(lambda: pair.my_query("SELECT email, phone FROM customers") == [("sales@acme.de", None)], 30,
               "the phone's delete makes the column NULL")

    # ERP -> CRM: the columns create, change and delete the address rows; nothing comes back (no echo)
    to_erp = pair.metric("replicator_rows_applied_total", direction="crm_to_erp")
    pair.my_query("UPDATE customers SET phone = '+49 40 9' WHERE cust_no = %s", (cust_no,))
    wait_until(lambda: _addresses(pair, "c-1") == [("email", "sales@acme.de"), ("fax", "+49 30 2"),
                                                  ("phone", "+49 40 9")], 30, "a phone row created in the CRM")
    (phone_id,), = pair.pg_query("SELECT id FROM address WHERE kind = 'phone'")
    assert len(phone_id) == 36 and phone_id.count("-") == 4  # a UUID, as the application makes them
    pair.my_query("UPDATE customers SET phone = '+49 40 8', email = NULL WHERE cust_no = %s", (cust_no,))
    wait_until(lambda: _addresses(pair, "c-1") == [("fax", "+49 30 2"), ("phone", "+49 40 8")], 30,
               "the phone row updated in place, the email row deleted")
    assert pair.pg_query("SELECT id FROM address WHERE kind = 'phone'") == [(phone_id,)]
    time.sleep(2)  # what the ERP direction wrote must not come back as a change of the ERP
    assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp") == to_erp
    assert pair.my_query("SELECT email, phone FROM customers") == [(None, "+49 40 8")]

    # an ERP customer outside customers' filter: its columns are not carried (nor parked) while it is
    pair.my_query("INSERT INTO customers (name, email, phone) VALUES ('hidden', 'x@hidden.de', NULL)")
    wait_until(lambda: pair.metric("replicator_rows_outside_total", mapping="customer_email",
                                   outside_of="customers") == 1, 30, "the email counted outside")
    assert pair.metric("replicator_parked_rows") == 0
    assert pair.pg_query("SELECT count(*) FROM customer") == [(1,)]
    pair.my_query("UPDATE customers SET name = 'Shown' WHERE name = 'hidden'")
    wait_until(lambda: pair.pg_query("SELECT c.name, a.kind, a.value FROM customer c JOIN address a ON "
                                     "a.owner_id = c.id WHERE c.name = 'Shown'")
               == [("Shown", "email", "x@hidden.de")], 30, "the email written once the customer enters the filter")
    assert pair.metric("replicator_parked_rows") == 0
    # a new ERP customer with both columns: created with its two rows in one transaction (parked, replayed)
    pair.my_query("INSERT INTO customers (name, email, phone) VALUES ('Beta', 'b@beta.de', '+1 2')")
    wait_until(lambda: pair.pg_query("SELECT a.kind, a.value FROM customer c JOIN address a ON a.owner_id = c.id "
                                     "WHERE c.name = 'Beta' ORDER BY a.kind") == [("email", "b@beta.de"),
                                                                                  ("phone", "+1 2")],
               30, "Beta's email and phone rows")

    # a second email for one customer cannot be one column: the stream stops naming table, key and column
    pair.kill()
    pair.pg_query("INSERT INTO address VALUES ('a-8', 'c-1', 'email', 'one@acme.de')")
    pair.start()  # after a kill -9 the stream resumes from its checkpoint
    wait_until(lambda: pair.my_query("SELECT email FROM customers WHERE cust_no = %s", (cust_no,))
               == [("one@acme.de",)], 30, "the email after the restart")
    pair.pg_query("INSERT INTO address VALUES ('a-9', 'c-1', 'email', 'two@acme.de')")
    assert pair.wait_exit(60) != 0
    log = pair.log()
    assert "table public.address, key ('a-9',), column value" in log and "carries one" in log, log[-3000:]
    assert pair.my_query("SELECT email FROM customers WHERE cust_no = %s", (cust_no,)) == [("one@acme.de",)]
    # the operator removes the extra row: the stream goes on
    pair.pg_query("DELETE FROM address WHERE id = 'a-9'")
    pair.start()
    pair.pg_query("UPDATE address SET value = 'three@acme.de' WHERE id = 'a-8'")
    wait_until(lambda: pair.my_query("SELECT email FROM customers WHERE cust_no = %s", (cust_no,))
               == [("three@acme.de",)], 30, "the email after the fix")
    assert pair.stop() == 0


ASSOC_PG = """
CREATE TABLE company (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE contact (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE contact_company (
    contact_id bigint NOT NULL REFERENCES contact(id) ON DELETE CASCADE,
    company_id bigint NOT NULL REFERENCES company(id),
    PRIMARY KEY (contact_id, company_id)
)"""
ASSOC_MY = """
CREATE TABLE companies (company_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);
CREATE TABLE contact (
    contact_no INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    company_no INT NULL
)"""
ASSOC_MAPPINGS = """
mappings:
  companies:
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: companies, key: [company_no]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {name: {ne: draft}}}
    fields: {name: ~}
  contacts:
    direction: both
    crm: {table: contact, key: [id]}
    erp: {table: contact, key: [contact_no]}
    link: {crosswalk: true}
    fields: {name: ~}
  contact_company:
    direction: both
    crm: {table: contact_company, key: [contact_id, company_id]}
    erp: {table: contact, key: [contact_no]}
    fold: {parent: contacts, child: crm, by: contact_id, value: company_id, into: company_no, references: companies}
"""


def test_an_association_table_folds_into_a_reference_column_both_ways(make_pair):
    pair = make_pair(ASSOC_PG, ASSOC_MY, ASSOC_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    check = pair.cli("check")
    assert "fold into" in check.stdout, check.stdout
    pair.start()
    pair.pg_query("INSERT INTO company (id, name) VALUES (1, 'Acme'), (2, 'Beta'), (3, 'draft')")
    pair.pg_query("INSERT INTO contact (id, name) VALUES (10, 'Bob')")
    wait_until(lambda: pair.my_query("SELECT name FROM contact") == [("Bob",)]
               and len(pair.my_query("SELECT * FROM companies")) == 2, 30, "Bob, Acme and Beta in the ERP")
    acme, beta = (pair.my_query("SELECT company_no FROM companies WHERE name = %s", (n,))[0][0] for n in ("Acme", "Beta"))
    (bob,), = pair.my_query("SELECT contact_no FROM contact")

    # CRM -> ERP: the association row becomes the ERP's foreign key, translated through the companies link
    pair.pg_query("INSERT INTO contact_company VALUES (10, 1)")
    wait_until(lambda: pair.my_query("SELECT company_no FROM contact") == [(acme,)], 30, "Bob works for Acme")
    pair.pg_query("UPDATE contact_company SET company_id = 2 WHERE contact_id = 10")
    wait_until(lambda: pair.my_query("SELECT company_no FROM contact") == [(beta,)], 30, "Bob moved to Beta")
    pair.pg_query("DELETE FROM contact_company WHERE contact_id = 10")
    wait_until(lambda: pair.my_query("SELECT company_no FROM contact") == [(None,)], 30, "Bob has no company")
    # a company without an ERP counterpart: the association waits parked until it has one
    pair.pg_query("INSERT INTO contact_company VALUES (10, 3)")
    wait_until(lambda: pair.metric("replicator_parked_rows", direction="crm_to_erp") == 1, 30, "parked")
    assert pair.my_query("SELECT company_no FROM contact") == [(None,)]
    pair.pg_query("UPDATE company SET name = 'Gamma' WHERE id = 3")
    wait_until(lambda: pair.my_query("SELECT c.company_no = k.company_no FROM contact c, companies k "
                                     "WHERE k.name = 'Gamma'") == [(1,)], 30, "Bob works for Gamma once it is linked")
    pair.pg_query("DELETE FROM contact_company WHERE contact_id = 10")
    wait_until(lambda: pair.my_query("SELECT company_no FROM contact") == [(None,)], 30, "Bob has no company again")

    # ERP -> CRM: the foreign-key column creates, moves and deletes the association row
    pair.my_query("UPDATE contact SET company_no = %s WHERE contact_no = %s", (acme, bob))
    wait_until(lambda: pair.pg_query("SELECT contact_id, company_id FROM contact_company") == [(10, 1)], 30,
               "the association row created")
    pair.my_query("UPDATE contact SET company_no = %s WHERE contact_no = %s", (beta, bob))
    wait_until(lambda: pair.pg_query("SELECT contact_id, company_id FROM contact_company") == [(10, 2)], 30,
               "the association row moved to Beta")
    pair.my_query("UPDATE contact SET company_no = NULL WHERE contact_no = %s", (bob,))
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM contact_company") == [(0,)], 30, "the association deleted")
    time.sleep(2)
    assert pair.my_query("SELECT company_no FROM contact") == [(None,)]
    assert pair.metric("replicator_parked_rows") == 0
    assert pair.stop() == 0


def test_the_first_copy_carries_folds_and_verify_reports_no_false_difference(make_pair):
    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, ADDRESS_MAPPINGS)
    pair.pg_query("INSERT INTO customer VALUES ('c-1', 'Acme')")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 'c-1', 'email', 'info@acme.de')")
    pair.my_query("INSERT INTO customers (name, email, phone) VALUES ('Beta', NULL, '+1 2')")
    pair.start()  # copies every mapping on its first run, through the folds like the stream
    wait_until(lambda: pair.my_query("SELECT name, email, phone FROM customers ORDER BY name")
               == [("Acme", "info@acme.de", None), ("Beta", None, "+1 2")], 60, "Acme's email in the ERP")
    wait_until(lambda: pair.pg_query("SELECT c.name, a.kind, a.value FROM customer c JOIN address a ON "
                                     "a.owner_id = c.id ORDER BY c.name")
               == [("Acme", "email", "info@acme.de"), ("Beta", "phone", "+1 2")], 60, "Beta's phone in the CRM")
    wait_until(lambda: pair.metric("replicator_parked_rows") == 0, 30, "nothing parked")
    result = pair.cli("verify", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "customer_email: 4 rows checked, 0 differing" in result.stdout, result.stdout  # two parents, each way
    assert pair.pg_query("SELECT count(*) FROM address") == [(2,)]

    # a parent's delete is the parent mapping's: the CRM's address rows go by their ON DELETE CASCADE
    pair.pg_query("DELETE FROM customer WHERE name = 'Acme'")  # its address row's cascaded delete finds no parent
    pair.my_query("DELETE FROM customers WHERE name = 'Beta'")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM customers") == [(0,)]
               and pair.pg_query("SELECT count(*) FROM customer") == [(0,)], 30, "both customers deleted")
    assert pair.pg_query("SELECT count(*) FROM address") == [(0,)]
    time.sleep(1)
    assert pair.metric("replicator_parked_rows") == 0
    assert pair.stop() == 0


def test_a_concurrent_edit_of_a_folded_column_is_decided_alike_on_both_sides(make_pair):
    mappings = ADDRESS_MAPPINGS.replace("    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email",
                                        "    conflicts: {priority: erp}\n"
                                        "    fold: {parent: customers, child: crm, by: owner_id, value: value, into: email")
    assert mappings != ADDRESS_MAPPINGS
    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, mappings, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    pair.pg_query("INSERT INTO customer VALUES ('c-1', 'Acme')")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 'c-1', 'email', 'old@acme.de')")
    wait_until(lambda: pair.my_query("SELECT email FROM customers") == [("old@acme.de",)], 30, "the email")
    assert pair.stop() == 0
    pair.pg_query("UPDATE address SET value = 'crm@acme.de' WHERE id = 'a-1'")
    pair.my_query("UPDATE customers SET email = 'erp@acme.de'")
    pair.start()
    wait_until(lambda: pair.my_query("SELECT email FROM customers") == [("erp@acme.de",)]
               and pair.pg_query("SELECT value FROM address") == [("erp@acme.de",)], 30, "the ERP's edit on both sides")
    found = {}
    for q, schema in ((pair.pg_query, "replicator"), (pair.my_query, f"`{pair.state_schema}`")):
        wait_until(lambda: q(f"SELECT count(*) FROM {schema}.conflicts")[0][0] > 0, 30, f"a conflict in {schema}")
        for stream, kind, winner in q(f"SELECT stream, kind, winner FROM {schema}.conflicts"):
            found[stream] = (kind, winner)
    assert found == {"crm_to_erp": ("update_differs", "erp"), "erp_to_crm": ("update_differs", "erp")}
    # explain looks the parent's counterpart up through the crosswalk, read-only
    (cust_no,), = pair.my_query("SELECT cust_no FROM customers")
    text = pair.cli("explain", "--mapping", "customer_email", "--side", "crm", "--key", "a-1").stdout
    assert f'parent: customers "c-1" -> {cust_no}' in text and 'customers.email = "erp@acme.de"' in text, text
    assert pair.stop() == 0


MIRROR_PG = "CREATE TABLE company (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL, phone text)"
MIRROR_MY = """
CREATE TABLE llx_societe (rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(100) NOT NULL);
CREATE TABLE llx_phone (
    rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    fk_soc INT NOT NULL,
    type VARCHAR(10) NOT NULL,
    num VARCHAR(40) NOT NULL
)"""
MIRROR_MAPPINGS = """
mappings:
  companies:
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: llx_societe, key: [rowid]}
    link: {crosswalk: true}
    fields: {name: {erp: nom, lossy: allow}}
  company_phone:                      # the child rows on the MariaDB side, keyed by AUTO_INCREMENT
    direction: both
    crm: {table: company, key: [id]}
    erp: {table: llx_phone, key: [rowid], slice: {type: work}, generate: {rowid: default}}
    fold: {parent: companies, child: erp, by: fk_soc, value: num, into: phone, lossy: allow}
"""


def test_child_rows_on_the_mariadb_side(make_pair):
    pair = make_pair(MIRROR_PG, MIRROR_MY, MIRROR_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    check = pair.cli("check")
    assert "fold into" in check.stdout, check.stdout
    pair.start()
    pair.pg_query("INSERT INTO company (id, name, phone) VALUES (1, 'Acme', '+49 1')")
    wait_until(lambda: pair.my_query("SELECT s.nom, p.type, p.num FROM llx_societe s JOIN llx_phone p ON "
                                     "p.fk_soc = s.rowid") == [("Acme", "work", "+49 1")], 30,
               "Acme and its phone row in the ERP")
    (soc,), = pair.my_query("SELECT rowid FROM llx_societe")
    pair.my_query("UPDATE llx_phone SET num = '+49 2'")
    wait_until(lambda: pair.pg_query("SELECT phone FROM company") == [("+49 2",)], 30, "the ERP's edit in the CRM")
    pair.my_query("INSERT INTO llx_phone (fk_soc, type, num) VALUES (%s, 'mobile', '+49 170')", (soc,))
    pair.my_query("DELETE FROM llx_phone WHERE type = 'work'")
    wait_until(lambda: pair.pg_query("SELECT phone FROM company") == [(None,)], 30, "the phone row's delete: NULL")
    # two rows of the type in the ERP: the stream refuses to pick one
    pair.my_query("INSERT INTO llx_phone (fk_soc, type, num) VALUES (%s, 'work', 'a'), (%s, 'work', 'b')", (soc, soc))
    assert pair.wait_exit(60) != 0
    log = pair.log()
    assert ".llx_phone, key (3,), column num" in log and "carries one" in log, log[-3000:]
    assert pair.pg_query("SELECT phone FROM company") == [(None,)]


def test_a_refused_fold_row_is_quarantined_when_the_mapping_says_so(make_pair):
    """`on_error: quarantine` on a fold: two rows of the type for one parent are queued (table, key, column in
    the error) instead of stopping the direction; the parent's other changes stream on; once the extra row is
    gone, `dlq retry` applies the queued change through the linker."""
    mappings = MIRROR_MAPPINGS.replace("  company_phone:                      # the child rows on the MariaDB "
                                       "side, keyed by AUTO_INCREMENT\n    direction: both\n",
                                       "  company_phone:\n    direction: both\n    on_error: quarantine\n")
    assert "on_error: quarantine" in mappings
    pair = make_pair(MIRROR_PG, MIRROR_MY, mappings,
                     extra_config="sync: {on_first_run: false}\nverify: {recheck_seconds: 1}\n")
    pair.start()
    pair.pg_query("INSERT INTO company (id, name, phone) VALUES (1, 'Acme', '+49 1'), (2, 'Beta', NULL)")
    wait_until(lambda: len(pair.my_query("SELECT 1 FROM llx_phone")) == 1, 30, "Acme's phone row in the ERP")
    (soc,), = pair.my_query("SELECT rowid FROM llx_societe WHERE nom = 'Beta'")
    # (row ids far from the parents' keys: the queue's key, the child row's, must not match a parent's by chance)
    pair.my_query("INSERT INTO llx_phone (rowid, fk_soc, type, num) VALUES (71, %s, 'work', 'a'), "
                  "(72, %s, 'work', 'b')", (soc, soc))
    # erp_to_crm: the queue is in the CRM's state schema (the default, replicator)
    queued = lambda: pair.pg_query('SELECT mapping, error FROM replicator.dead_letter ORDER BY id')  # noqa: E731
    wait_until(lambda: len(queued()) >= 1, 30, "the refused fold row in the dead-letter queue")
    mapping, error = queued()[0]
    assert mapping == "company_phone" and "llx_phone" in error and "num" in error, error
    # the direction did not stop: a later ERP edit of another record arrives
    pair.my_query("UPDATE llx_societe SET nom = 'Acme 2' WHERE nom = 'Acme'")
    wait_until(lambda: pair.pg_query("SELECT name FROM company WHERE id = 1") == [("Acme 2",)], 30,
               "Acme's rename in the CRM while Beta's rows wait")
    assert pair.proc is not None and pair.proc.poll() is None
    assert pair.pg_query("SELECT phone FROM company WHERE id = 2") == [(None,)]  # nothing picked silently
    pair.my_query("DELETE FROM llx_phone WHERE num = 'b'")
    # the two inserts, and the delete held behind the second one
    wait_until(lambda: len(queued()) == 3, 30, "the delete of 'b' queued behind its insert")
    assert [m for m, _ in queued()] == ["company_phone"] * 3, queued()
    # vfold15: verify names Beta's column in the CRM (NULL; the ERP's one row is 'a') as known, queued -- not as
    # drift -- though the queue holds its changes under the child rows' keys. (The other direction's line, the
    # ERP's row 'a' against the CRM's NULL, is drift as for any two-way mapping: that stream queued nothing.)
    code, out = _verify(pair, "--mapping", "company_phone")
    known = [line for line in out.splitlines() if "(known: queued in the dead-letter queue" in line]
    assert len(known) == 1 and "erp_to_crm public.company key=(2,)" in known[0] and "'a'" in known[0], out
    assert not [line for line in out.splitlines() if "public.company" in line and line not in known], out
    retried = pair.cli("dlq", "retry", "--mapping", "company_phone", check=False)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert queued() == []
    # replayed through the linker with the source's dialect: the delete of 'b' leaves the row 'a' has
    assert pair.pg_query("SELECT phone FROM company WHERE id = 2") == [("a",)]
    assert pair.stop() == 0


# a fold through a link table (`via:`, two hops), as EspoCRM keeps a contact's e-mail (docs/mappings.md, "Through a
# link table"): the CRM on MariaDB, the ERP's party.email on PostgreSQL
ESPO_MY = """
CREATE TABLE contact (id VARCHAR(17) NOT NULL PRIMARY KEY, first_name VARCHAR(100) NULL);
CREATE TABLE email_address (
    id VARCHAR(17) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NULL,
    deleted TINYINT(1) DEFAULT 0,
    `lower` VARCHAR(255) NULL
);
CREATE TABLE entity_email_address (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entity_id VARCHAR(17) NULL,
    email_address_id VARCHAR(17) NULL,
    entity_type VARCHAR(100) NULL,
    `primary` TINYINT(1) DEFAULT 0,
    deleted TINYINT(1) DEFAULT 0
)"""
PARTY_PG = "CREATE TABLE party (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text, email text)"
ESPO_MAPPINGS = """
mappings:
  contact_email:
    direction: espocrm_to_tryton
    espocrm: {table: email_address, key: [id], slice: {deleted: 0}}
    tryton: {table: party, key: [id]}
    fold:
      parent: contacts
      child: espocrm
      via: {table: entity_email_address, key: [id], by: entity_id, to: email_address_id,
            slice: {entity_type: Contact, primary: 1, deleted: 0}}
      value: name
      into: email
  contacts:
    direction: espocrm_to_tryton
    espocrm: {table: contact, key: [id]}
    tryton: {table: party, key: [id]}
    link: {crosswalk: true}
    filter: {espocrm_to_tryton: {first_name: {ne: hidden}}}
    fields: {first_name: {tryton: name}}
"""


def test_a_link_table_folds_into_a_column_two_hops_away(make_pair):
    """EspoCRM's entity_email_address -> email_address.name into Tryton's party.email: the first copy, an
    address three contacts share renamed (both linked ones follow, the third parks until it is linked), the
    primary flag moved, a soft-deleted link (NULL), and two primary addresses refused by name."""
    pair = make_pair(PARTY_PG, ESPO_MY, ESPO_MAPPINGS, names=("tryton", "espocrm"), maria_first=True)
    pair.my_query("INSERT INTO contact VALUES ('c1', 'Ann'), ('c2', 'Bob'), ('c3', 'hidden')")
    pair.my_query("INSERT INTO email_address (id, name, `lower`) VALUES ('e1', 'Office@x.de', 'office@x.de'), "
                  "('e2', 'ann@x.de', 'ann@x.de')")
    pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) VALUES "
                  "('c1', 'e1', 'Contact', 1), ('c2', 'e1', 'Contact', 1), ('c1', 'e2', 'Contact', 0), "
                  "('a9', 'e2', 'Account', 1), ('c3', 'e1', 'Contact', 1)")
    check = pair.cli("check")
    assert "email_address.name (deleted = 0) through" in check.stdout and "espocrm_to_tryton only" in check.stdout, \
        check.stdout
    pair.start()
    emails = lambda: pair.pg_query("SELECT name, email FROM party ORDER BY name")  # noqa: E731
    # the first copy: both contacts share the office address
    wait_until(lambda: emails() == [("Ann", "Office@x.de"), ("Bob", "Office@x.de")], 60, "the first copy")
    # the shared address renamed: every contact linked to it follows
    pair.my_query("UPDATE email_address SET name = 'Team@x.de', `lower` = 'team@x.de' WHERE id = 'e1'")
    wait_until(lambda: emails() == [("Ann", "Team@x.de"), ("Bob", "Team@x.de")], 30, "the rename, for both")
    # the third contact (filtered out until now) arrives: its parked changes read the address as it is now
    parked = lambda: pair.pg_query("SELECT count(*) FROM replicator.parked")[0][0]  # noqa: E731
    assert parked() >= 2  # its link row (from the copy) and the rename, each once
    pair.my_query("UPDATE contact SET first_name = 'Cleo' WHERE id = 'c3'")
    wait_until(lambda: emails() == [("Ann", "Team@x.de"), ("Bob", "Team@x.de"), ("Cleo", "Team@x.de")], 30,
               "the third contact with the shared address")
    wait_until(lambda: parked() == 0, 30, "nothing parked again")
    pair.my_query("DELETE FROM entity_email_address WHERE entity_id = 'c3'")
    wait_until(lambda: emails()[2] == ("Cleo", None), 30, "the link row's delete: NULL")
    # Ann's primary flag moves to her own address (one statement: one transaction)
    pair.my_query("UPDATE entity_email_address SET `primary` = (email_address_id = 'e2') "
                  "WHERE entity_id = 'c1' AND entity_type = 'Contact'")
    wait_until(lambda: emails() == [("Ann", "ann@x.de"), ("Bob", "Team@x.de"), ("Cleo", None)], 30,
               "the primary flag moved")
    # Bob's link soft-deleted: no primary address left, NULL
    pair.my_query("UPDATE entity_email_address SET deleted = 1 WHERE entity_id = 'c2'")
    wait_until(lambda: emails() == [("Ann", "ann@x.de"), ("Bob", None), ("Cleo", None)], 30, "the soft delete: NULL")
    # explain Ann by her contact key: the path, her primary link row and its address, her counterpart
    text = pair.cli("explain", "--mapping", "contact_email", "--side", "espocrm", "--key", "c1").stdout
    assert "path: contacts key = " in text and ".entity_email_address.entity_id (entity_type" in text \
        and ".email_address.name -> tryton public.party.email" in text and 'parent: contacts "c1" -> ' in text, text
    assert 'link row [3] -> far row "e2": "ann@x.de"' in text, text
    assert 'result: public.party.email of the parent = "ann@x.de"' in text, text
    # a link row's key is not a contact's: said, with where the key belongs (exit 78, no traceback)
    wrong = pair.cli("explain", "--mapping", "contact_email", "--side", "espocrm", "--key", "3", check=False)
    assert wrong.returncode == 78 and "is the key of its parent mapping" in wrong.stderr + wrong.stdout, wrong
    assert "Traceback" not in wrong.stderr, wrong.stderr
    # two primary addresses for Ann: refused, naming the link table, its key and column
    pair.my_query("UPDATE entity_email_address SET `primary` = 1 WHERE entity_id = 'c1'")
    assert pair.wait_exit(60) != 0
    log = pair.log()
    assert "parent 'c1' links to 2 rows of" in log and "entity_email_address, key (" in log \
        and "column email_address_id" in log, log[-3000:]
    assert emails() == [("Ann", "ann@x.de"), ("Bob", None), ("Cleo", None)]  # nothing picked silently


def test_a_refused_two_hop_fold_change_is_quarantined_and_retried(make_pair):
    """`on_error: quarantine` on a two-hop fold: Ann's two primary addresses queue the link row's change, and
    the rename of the address she shares with Bob (each named by its own table); once fixed, `dlq retry`
    replays both, the far row's through the far table's flow: Bob gets the new name too."""
    mappings = ESPO_MAPPINGS.replace("direction: espocrm_to_tryton\n    espocrm: {table: email_address",
                                     "direction: espocrm_to_tryton\n    on_error: quarantine\n"
                                     "    espocrm: {table: email_address")
    assert "on_error: quarantine" in mappings
    pair = make_pair(PARTY_PG, ESPO_MY, mappings, names=("tryton", "espocrm"), maria_first=True,
                     extra_config="sync: {on_first_run: false}\nverify: {recheck_seconds: 1}\n")
    pair.start()
    pair.my_query("INSERT INTO contact VALUES ('c1', 'Ann'), ('c2', 'Bob')")
    pair.my_query("INSERT INTO email_address (id, name) VALUES ('e1', 'a@x.de'), ('e2', 'b@x.de')")
    pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) VALUES "
                  "('c1', 'e1', 'Contact', 1), ('c2', 'e1', 'Contact', 1)")
    email = lambda: pair.pg_query("SELECT email FROM party ORDER BY name")  # noqa: E731
    wait_until(lambda: email() == [("a@x.de",), ("a@x.de",)], 30, "Ann's and Bob's e-mail")
    pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) VALUES "
                  "('c1', 'e2', 'Contact', 1)")
    pair.my_query("UPDATE email_address SET name = 'ann@x.de' WHERE id = 'e1'")
    queued = lambda: pair.pg_query("SELECT mapping, error FROM replicator.dead_letter ORDER BY id")  # noqa: E731
    wait_until(lambda: len(queued()) == 2, 30, "the link row and the rename queued")
    errors = [e for _, e in queued()]
    assert "entity_email_address" in errors[0] and "email_address_id" in errors[0], errors
    assert "email_address" in errors[1] and "links to 2 rows" in errors[1], errors
    assert email() == [("a@x.de",), ("a@x.de",)] and pair.proc is not None and pair.proc.poll() is None
    # vfold15: both parents are known, queued: Ann by her queued link row, Bob by the queued far row he links to
    code, out = _verify(pair, "--mapping", "contact_email")
    known = [line for line in out.splitlines() if "(known: queued in the dead-letter queue" in line]
    assert code == 0 and len(known) == 2 and "the sides agree but for 2 row(s)" in out, out
    assert any("espocrm key ('c1',)" in line for line in known) and any("espocrm key ('c2',)" in line
                                                                        for line in known), out
    pair.my_query("UPDATE entity_email_address SET `primary` = 0 WHERE email_address_id = 'e2'")
    wait_until(lambda: len(queued()) == 3, 30, "the fix queued behind the link row's insert")
    retried = pair.cli("dlq", "retry", "--mapping", "contact_email", check=False)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert queued() == [] and email() == [("ann@x.de",), ("ann@x.de",)]
    assert pair.stop() == 0


def test_an_empty_text_is_no_child_row_with_null_if_empty(make_pair):
    """EspoCRM stores a cleared web site as '' (docs/walkthrough-espocrm-tryton.md): without `transform:
    [null_if_empty]` the fold kept a child row holding ''; with it an empty text is NULL both ways -- no child row
    made, the one there deleted, and a child row holding '' clears the parent's column."""
    mappings = ADDRESS_MAPPINGS.replace(
        "into: phone, lossy: allow}", "into: phone, lossy: allow, transform: [null_if_empty]}")
    pair = make_pair(ADDRESS_PG, CUSTOMERS_MY, mappings, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    pair.my_query("INSERT INTO customers (name, email, phone) VALUES ('Acme', '', '')")
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM customer") == [(1,)], 30, "Acme in the CRM")
    (owner,), = pair.pg_query("SELECT id FROM customer")
    # email has no null_if_empty: its '' is a row, as before; phone's '' is none
    wait_until(lambda: _addresses(pair, owner) == [("email", "")], 30, "the email row only")
    pair.my_query("UPDATE customers SET phone = '+49 30 1'")
    wait_until(lambda: _addresses(pair, owner) == [("email", ""), ("phone", "+49 30 1")], 30, "a phone row")
    pair.my_query("UPDATE customers SET phone = ''")  # cleared the EspoCRM way: the row goes
    wait_until(lambda: _addresses(pair, owner) == [("email", "")], 30, "the phone row deleted")
    # the other way: a CRM phone row holding '' is no phone
    pair.my_query("UPDATE customers SET phone = '+49 30 2'")
    wait_until(lambda: pair.pg_query("SELECT value FROM address WHERE kind = 'phone'") == [("+49 30 2",)], 30,
               "the phone row again")
    pair.pg_query("UPDATE address SET value = '' WHERE kind = 'phone'")
    wait_until(lambda: pair.my_query("SELECT email, phone FROM customers") == [("", None)], 30, "phone NULL")
    assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-2000:]


def _verify(pair, *args: str) -> tuple[int, str]:
    from tests.integration.test_verify import verify
    return verify(pair, *args)
