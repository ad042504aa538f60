"""A fold into a table whose rows its application creates lazily (`optional: true` on the parent mapping's
endpoint: SuiteCRM's accounts_cstm, Dolibarr's *_extrafields), on real servers (docs/mappings.md, "Rows the
application creates lazily"). The parent's row there is missing while its fields are all NULL; a child row's
change sets the folded column, so the stream creates the row whole -- the parent mapping's fields from the
parent's source row, then the column -- as `verify --repair` does. Before, the change parked waiting for a parent
row nothing would ever make (the value never arrived, the sides differed). Both ways: child rows on PostgreSQL
folding into a MariaDB table, and child rows on MariaDB folding into a PostgreSQL table."""
from __future__ import annotations

from tests.integration.harness import wait_until

QUICK = "sync: {on_first_run: false}\n"

EXTRA_PG = """
CREATE TABLE customer (id int PRIMARY KEY, name varchar(100) NULL);
CREATE TABLE address (id varchar(40) PRIMARY KEY, owner_id int NOT NULL, kind varchar(10) NOT NULL,
                      value varchar(200) NOT NULL)"""
EXTRA_MY = "CREATE TABLE cust_extra (id INT NOT NULL PRIMARY KEY, note VARCHAR(100) NULL, email VARCHAR(200) NULL)"
EXTRA_MAPPINGS = """
mappings:
  extras:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: cust_extra, key: [id], optional: true}
    fields: {id: ~, name: {erp: note}}
    delete: {erp_to_crm: ignore}
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: cust_extra, key: [id]}
    fold: {parent: extras, child: crm, by: owner_id, value: value, into: email}
"""


def _quiet(pair, direction: str) -> None:
    assert pair.metric("replicator_parked_rows") == 0, pair.log()[-3000:]
    assert pair.metric("replicator_rows_missing_total", direction=direction) == 0, pair.log()[-3000:]


def test_a_child_row_creates_its_missing_parent_row_of_an_optional_mariadb_table(make_pair):
    pair = make_pair(EXTRA_PG, EXTRA_MY, EXTRA_MAPPINGS, extra_config=QUICK)
    pair.start()
    pair.pg_query("INSERT INTO customer VALUES (1, NULL), (2, 'Beta'), (3, 'Gamma')")
    wait_until(lambda: pair.my_query("SELECT id, note, email FROM cust_extra ORDER BY id")
               == [(2, "Beta", None), (3, "Gamma", None)], 30, "Beta's and Gamma's rows, none for 1 (all NULL)")
    # Gamma's row deleted by the ERP (its fields all NULL to it): the CRM keeps Gamma (delete: ignore)
    pair.my_query("DELETE FROM cust_extra WHERE id = 3")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 1, 'email', 'one@x.de')")
    pair.pg_query("INSERT INTO address VALUES ('a-3', 3, 'email', 'three@x.de')")
    # created whole: the parent mapping's field from the source row (Gamma's name), then the column
    wait_until(lambda: pair.my_query("SELECT id, note, email FROM cust_extra ORDER BY id")
               == [(1, None, "one@x.de"), (2, "Beta", None), (3, "Gamma", "three@x.de")], 30,
               "the missing rows created with their e-mails")
    _quiet(pair, "crm_to_erp")
    # the row made is the ordinary one from now on: a change of it either way, nothing echoed
    pair.pg_query("UPDATE address SET value = 'uno@x.de' WHERE id = 'a-1'")
    wait_until(lambda: pair.my_query("SELECT email FROM cust_extra WHERE id = 1") == [("uno@x.de",)], 30, "updated")
    pair.my_query("UPDATE cust_extra SET email = 'tres@x.de' WHERE id = 3")
    wait_until(lambda: pair.pg_query("SELECT value FROM address WHERE owner_id = 3") == [("tres@x.de",)], 30,
               "the ERP's edit of the column in the child row")
    assert pair.pg_query("SELECT id, name FROM customer ORDER BY id") == [(1, None), (2, "Beta"), (3, "Gamma")]
    assert pair.metric("replicator_conflicts_total") == 0
    assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-3000:]
    assert pair.stop() == 0


COMPANY_PG = "CREATE TABLE company_extra (id int PRIMARY KEY, note text NULL, phone text NULL)"
COMPANY_MY = """
CREATE TABLE llx_societe (rowid INT NOT NULL PRIMARY KEY, note VARCHAR(100) NULL);
CREATE TABLE llx_phone (rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY, fk_soc INT NOT NULL,
                        type VARCHAR(10) NOT NULL, num VARCHAR(40) NOT NULL)"""
COMPANY_MAPPINGS = """
mappings:
  companies:
    direction: both
    crm: {table: company_extra, key: [id], optional: true}
    erp: {table: llx_societe, key: [rowid]}
    fields: {id: {erp: rowid}, note: ~}
    delete: {crm_to_erp: ignore}
  company_phone:
    direction: both
    crm: {table: company_extra, key: [id]}
    erp: {table: llx_phone, key: [rowid], slice: {type: work}, generate: {rowid: default}}
    fold: {parent: companies, child: erp, by: fk_soc, value: num, into: phone}
"""


def test_a_child_row_creates_its_missing_parent_row_of_an_optional_postgresql_table(make_pair):
    pair = make_pair(COMPANY_PG, COMPANY_MY, COMPANY_MAPPINGS, extra_config=QUICK)
    pair.start()
    pair.my_query("INSERT INTO llx_societe VALUES (1, NULL), (2, 'Beta')")
    wait_until(lambda: pair.pg_query("SELECT id, note, phone FROM company_extra ORDER BY id") == [(2, "Beta", None)],
               30, "Beta's row, none for 1 (all NULL)")
    pair.my_query("INSERT INTO llx_phone (fk_soc, type, num) VALUES (1, 'work', '+49 1'), (2, 'home', '+49 9')")
    wait_until(lambda: pair.pg_query("SELECT id, note, phone FROM company_extra ORDER BY id")
               == [(1, None, "+49 1"), (2, "Beta", None)], 30, "company 1's row created with its phone")
    _quiet(pair, "erp_to_crm")
    pair.pg_query("UPDATE company_extra SET phone = '+49 2' WHERE id = 1")
    wait_until(lambda: pair.my_query("SELECT fk_soc, type, num FROM llx_phone ORDER BY rowid")
               == [(1, "work", "+49 2"), (2, "home", "+49 9")], 30, "the CRM's edit in the child row")
    assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-3000:]
    assert pair.stop() == 0


def test_a_parent_mapping_that_does_not_write_the_table_from_this_side_is_a_row_error(make_pair):
    """The parent mapping carries the ERP's extension rows to the CRM only: nothing creates the missing row from
    the CRM's side, so the CRM's e-mail has nowhere to go -- the direction stops naming table, key and column
    instead of parking it for a row that never comes."""
    mappings = EXTRA_MAPPINGS.replace("direction: both\n    crm: {table: customer",
                                      "direction: erp_to_crm\n    crm: {table: customer")
    mappings = mappings.replace("    delete: {erp_to_crm: ignore}\n", "    delete: ignore\n")
    pair = make_pair(EXTRA_PG, EXTRA_MY, mappings, extra_config=QUICK)
    pair.start()
    pair.pg_query("INSERT INTO customer VALUES (1, 'Acme')")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 1, 'email', 'one@x.de')")
    assert pair.wait_exit(60) != 0
    log = pair.log()
    assert (f"table {pair.maria.dbname}.cust_extra, crm key (1,)" in log and "column email" in log
            and "mapping extras does not create rows there from crm" in log), log[-3000:]
    assert pair.my_query("SELECT count(*) FROM cust_extra") == [(0,)]


def test_the_first_copy_creates_the_missing_parent_row_as_the_stream_does(make_pair):
    pair = make_pair(EXTRA_PG, EXTRA_MY, EXTRA_MAPPINGS, extra_config=QUICK)
    pair.pg_query("INSERT INTO customer VALUES (1, NULL), (2, 'Beta'), (3, NULL)")
    pair.pg_query("INSERT INTO address VALUES ('a-1', 1, 'email', 'one@x.de'), ('a-2', 2, 'email', 'two@x.de')")
    result = pair.cli("sync", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # customer 3: no e-mail and no name, so no row (all NULL); customer 1: its e-mail makes its row
    assert pair.my_query("SELECT id, note, email FROM cust_extra ORDER BY id") == [
        (1, None, "one@x.de"), (2, "Beta", "two@x.de")]
    code, out = _verify(pair)
    assert code == 0, out


def _verify(pair, *args: str) -> tuple[int, str]:
    from tests.integration.test_verify import verify
    return verify(pair, *args)


def test_a_change_parked_before_its_parent_existed_makes_the_row_when_retried(make_pair):
    """A child row whose parent is not in the source yet parks, as any; the parent then arrives with its fields
    all NULL, which creates no row. The parked change makes the row when parked changes are retried (at the start
    of a session, and every minute while linked changes flow), instead of waiting for a row nothing makes."""
    pair = make_pair(EXTRA_PG, EXTRA_MY, EXTRA_MAPPINGS, extra_config=QUICK)
    pair.start()
    pair.pg_query("INSERT INTO address VALUES ('a-5', 5, 'email', 'five@x.de')")  # no customer 5 yet
    wait_until(lambda: pair.metric("replicator_parked_rows") == 1, 30, "the e-mail parked")
    pair.pg_query("INSERT INTO customer VALUES (5, NULL)")
    assert pair.stop() == 0
    assert pair.my_query("SELECT count(*) FROM cust_extra") == [(0,)]
    pair.start()
    wait_until(lambda: pair.my_query("SELECT id, note, email FROM cust_extra") == [(5, None, "five@x.de")], 30,
               "the row made by the retried change")
    wait_until(lambda: pair.metric("replicator_parked_rows") == 0, 30, "nothing parked")
    assert pair.stop() == 0


XW_PG = EXTRA_PG.replace("customer (id int PRIMARY KEY",
                         "customer (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
XW_MY = ("CREATE TABLE cust_extra (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100) NULL, "
         "email VARCHAR(200) NULL)")
XW_MAPPINGS = """
mappings:
  extras:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: cust_extra, key: [id], optional: true}
    link: {crosswalk: true}
    fields: {name: {erp: note}}
    delete: {erp_to_crm: ignore}
  customer_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: cust_extra, key: [id]}
    fold: {parent: extras, child: crm, by: owner_id, value: value, into: email}
"""


def test_a_checked_change_into_a_crosswalk_parent_row_gone_from_an_optional_table_makes_it_again(make_pair):
    """A two-way fold's change is conflict-checked, and the check of a row that is not there wrote nothing and
    said nothing: with a crosswalk pair whose row of NULLs the ERP's application deleted, the CRM's e-mail was
    lost (the stream's unchecked update would have made the row). Now the row is made whole first, under the
    pair's key, and the check writes the e-mail over its NULL."""
    pair = make_pair(XW_PG, XW_MY, XW_MAPPINGS, extra_config=QUICK)
    pair.start()
    pair.pg_query("INSERT INTO customer VALUES (10, 'Gamma')")
    wait_until(lambda: pair.my_query("SELECT note, email FROM cust_extra") == [("Gamma", None)], 30, "Gamma's row")
    (erp_id,) = pair.my_query("SELECT id FROM cust_extra")[0]
    pair.my_query("DELETE FROM cust_extra")  # its fields all NULL to the ERP: the CRM keeps Gamma
    pair.pg_query("INSERT INTO address VALUES ('a-10', 10, 'email', 'ten@x.de')")
    wait_until(lambda: pair.my_query("SELECT id, note, email FROM cust_extra")
               == [(erp_id, "Gamma", "ten@x.de")], 30, "the row made again with the e-mail, under the pair's key")
    _quiet(pair, "crm_to_erp")
    assert pair.pg_query("SELECT id, name FROM customer") == [(10, "Gamma")]
    assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-3000:]
    assert pair.stop() == 0
