"""Records that leave their mapping, on real servers (docs/mappings.md, "Records outside the referenced mapping"):
the rows keyed by a record that left are no longer carried -- whether its leave deleted their counterparts or a
mapping keeps them -- and come back whole when it returns."""
from __future__ import annotations

from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE account (id int PRIMARY KEY, deleted boolean NOT NULL DEFAULT false, name text);
CREATE TABLE account_ext (id int PRIMARY KEY, vat text);
CREATE TABLE account_memo (id int PRIMARY KEY, memo text)
"""
MY = """
CREATE TABLE customer (rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40));
CREATE TABLE customer_ext (rowid INT NOT NULL PRIMARY KEY, vat VARCHAR(20));
CREATE TABLE customer_memo (rowid INT NOT NULL PRIMARY KEY, memo VARCHAR(40))
"""
MAPPINGS = """
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: account, key: [id]}
    erp: {table: customer, key: [rowid]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    fields:
      name: {lossy: allow}
  customer_ext:
    direction: crm_to_erp
    crm: {table: account_ext, key: [id]}
    erp: {table: customer_ext, key: [rowid]}
    fields:
      id: {erp: rowid, references: customers}
      vat: {lossy: allow}
  customer_memo:
    direction: crm_to_erp
    crm: {table: account_memo, key: [id]}
    erp: {table: customer_memo, key: [rowid]}
    delete: ignore
    fields:
      id: {erp: rowid, references: customers}
      memo: {lossy: allow}
"""


def rows(pair: Pair, table: str, column: str) -> list[tuple]:
    return [tuple(r) for r in pair.my_query(f"SELECT c.name, t.{column} FROM {table} t LEFT JOIN customer c "
                                            f"ON c.rowid = t.rowid ORDER BY t.rowid")]


def test_rows_of_a_record_that_left_are_not_carried_until_it_returns(make_pair):
    pair = make_pair(PG, MY, MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    try:
        pair.pg_query("INSERT INTO account (id, name) VALUES (1, 'Acme'), (2, 'Bolt')")
        pair.pg_query("INSERT INTO account_ext VALUES (1, 'V1'), (2, 'V2')")
        pair.pg_query("INSERT INTO account_memo VALUES (1, 'M1'), (2, 'M2')")
        wait_until(lambda: rows(pair, "customer_memo", "memo") == [("Acme", "M1"), ("Bolt", "M2")], 30, "copied")
        assert rows(pair, "customer_ext", "vat") == [("Acme", "V1"), ("Bolt", "V2")]
        # Acme into the bin: the customer goes, its ext row with it; its memo stays (customer_memo: delete: ignore)
        pair.pg_query("UPDATE account SET deleted = true WHERE id = 1")
        wait_until(lambda: rows(pair, "customer_ext", "vat") == [("Bolt", "V2")], 30, "Acme's ext row gone")
        orphan = [(None, "M1"), ("Bolt", "M2")]
        assert rows(pair, "customer_memo", "memo") == orphan
        # edits of the binned record's rows are not carried: the ext row is not made again (an orphan), the kept
        # memo not written; counted as rows outside; Bolt's edits still flow
        pair.pg_query("UPDATE account_ext SET vat = 'V1b' WHERE id = 1")
        pair.pg_query("UPDATE account_memo SET memo = 'M1b' WHERE id = 1")
        pair.pg_query("UPDATE account_ext SET vat = 'V2b' WHERE id = 2")
        wait_until(lambda: rows(pair, "customer_ext", "vat") == [("Bolt", "V2b")], 30, "Bolt's edit")
        assert rows(pair, "customer_memo", "memo") == orphan
        assert pair.metric("replicator_rows_outside_total", direction="crm_to_erp", mapping="customer_ext",
                           outside_of="customers") == 1
        assert pair.metric("replicator_rows_outside_total", direction="crm_to_erp", mapping="customer_memo",
                           outside_of="customers") == 1
        assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 0
        # back from the bin: the customer comes back under its pair's key, its rows whole, as they are now
        pair.pg_query("UPDATE account SET deleted = false WHERE id = 1")
        wait_until(lambda: rows(pair, "customer_ext", "vat") == [("Acme", "V1b"), ("Bolt", "V2b")], 30, "Acme back")
        wait_until(lambda: rows(pair, "customer_memo", "memo") == [("Acme", "M1b"), ("Bolt", "M2")], 30, "memo")
        assert pair.stop() == 0
        assert "Traceback" not in pair.log(), pair.log()
    finally:
        pair.stop()


KEPT_PG = """
CREATE TABLE account (id int PRIMARY KEY, deleted boolean NOT NULL DEFAULT false, name text);
CREATE TABLE account_ext (id int PRIMARY KEY, vat text);
CREATE TABLE account_phone (id serial PRIMARY KEY, account_id int NOT NULL, number text)
"""
KEPT_MY = """
CREATE TABLE customer (rowid INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), phone VARCHAR(20));
CREATE TABLE customer_ext (rowid INT NOT NULL PRIMARY KEY, vat VARCHAR(20))
"""
KEPT_MAPPINGS = """
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: account, key: [id]}
    erp: {table: customer, key: [rowid]}
    link: {crosswalk: true}
    filter: {crm_to_erp: {deleted: {eq: false}}}
    leave: ignore
    fields:
      name: {lossy: allow}
  customer_ext:
    direction: crm_to_erp
    crm: {table: account_ext, key: [id]}
    erp: {table: customer_ext, key: [rowid]}
    fields:
      id: {erp: rowid, references: customers}
      vat: {lossy: allow}
  customer_phone:
    direction: crm_to_erp
    crm: {table: account_phone, key: [id], generate: {id: default}}
    erp: {table: customer, key: [rowid]}
    fold: {parent: customers, child: crm, by: account_id, value: number, into: phone, lossy: allow}
"""


def test_a_record_that_left_with_its_counterpart_kept_gets_no_edits_of_its_rows(make_pair):
    """`leave: ignore`: the ERP customer stays, but its folded phone and its second table's row are the record's:
    not written while it is outside, read again when it returns."""
    pair = make_pair(KEPT_PG, KEPT_MY, KEPT_MAPPINGS, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    try:
        def state() -> list[tuple]:
            return [tuple(r) for r in pair.my_query("SELECT c.name, c.phone, e.vat FROM customer c LEFT JOIN "
                                                    "customer_ext e ON e.rowid = c.rowid ORDER BY c.name")]
        pair.pg_query("INSERT INTO account (id, name) VALUES (1, 'Acme')")
        pair.pg_query("INSERT INTO account_ext VALUES (1, 'V1')")
        pair.pg_query("INSERT INTO account_phone VALUES (10, 1, '111')")
        wait_until(lambda: state() == [("Acme", "111", "V1")], 30, "copied")
        pair.pg_query("UPDATE account SET deleted = true WHERE id = 1")
        wait_until(lambda: state() == [("Acme", "111", None)], 30, "the ext row left, the customer kept")
        pair.pg_query("UPDATE account_phone SET number = '222' WHERE id = 10")
        pair.pg_query("UPDATE account_ext SET vat = 'V1b' WHERE id = 1")
        wait_until(lambda: pair.metric("replicator_rows_outside_total", direction="crm_to_erp",
                                       mapping="customer_ext", outside_of="customers") == 1
                   and pair.metric("replicator_rows_outside_total", direction="crm_to_erp",
                                   mapping="customer_phone", outside_of="customers") == 1, 60, "both counted outside")
        assert state() == [("Acme", "111", None)]
        pair.pg_query("UPDATE account SET deleted = false, name = 'Acme 2' WHERE id = 1")
        wait_until(lambda: state() == [("Acme 2", "222", "V1b")], 30, "back, with what changed meanwhile")
        assert pair.my_query("SELECT count(*) FROM customer") == [(1,)]
        assert pair.stop() == 0
        assert "Traceback" not in pair.log(), pair.log()
    finally:
        pair.stop()
