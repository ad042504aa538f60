"""The initial sync's edge cases against real servers: rows outside a mapping's slice are not copied and are
counted apart from the rows copied (sync table, `replicator sync`'s figures, the daemon's log and metrics); an
`optional: true` endpoint (a table whose rows its application creates lazily) gets no row from the copy whose
mapped fields would all be NULL (a missing row means that already), while rows that exist are still written."""
from __future__ import annotations

from typing import Callable

from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE account (id int PRIMARY KEY, name text);
CREATE TABLE account_cstm (id_c int PRIMARY KEY, code_c text, limit_c numeric(12,2));
"""
MY = """
CREATE TABLE company (rowid INT PRIMARY KEY, nom VARCHAR(100), entity INT NOT NULL DEFAULT 1,
                      code VARCHAR(20) NULL, outstanding DECIMAL(12,2) NULL) ENGINE=InnoDB;
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: company, key: [rowid], slice: {entity: 1}}
    delete: {crm_to_erp: ignore}
    fields:
      id: {erp: rowid}
      name: {erp: nom, lossy: allow}
  customer_custom:
    direction: both
    crm: {table: account_cstm, key: [id_c], optional: true}
    erp: {table: company, key: [rowid], slice: {entity: 1}}
    delete: {crm_to_erp: ignore}
    fields:
      id_c: {erp: rowid, references: customers}
      code_c: {erp: code, owner: erp, lossy: allow}
      limit_c: {erp: outstanding, owner: erp}
"""
# company 1..3 are tenant 1's (1 and 3 without custom values), 4..8 another tenant's
ERP_ROWS = [(1, "Acme", 1, None, None), (2, "Globex", 1, "G-2", 500), (3, "Initech", 1, None, None)] + \
    [(i, f"other {i}", 2, f"O-{i}", i) for i in range(4, 9)]


def sync_rows(pair: Pair) -> dict[str, tuple]:
    return {m: tuple(r) for m, *r in pair.pg_query(
        "SELECT mapping, status, rows_done, rows_skipped FROM replicator.sync WHERE stream = 'erp_to_crm'")}


def test_the_first_sync_counts_only_rows_it_copies_and_creates_no_empty_optional_rows(
        make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(PG, MY, MAPPINGS, "sync: {chunk_rows: 3}\n", setup=False)
    for row in ERP_ROWS:
        pair.my_query("INSERT INTO company VALUES (%s, %s, %s, %s, %s)", row)
    pair.pg_query("INSERT INTO account_cstm VALUES (3, 'stale', NULL)")  # a row that exists is still written
    pair.setup()
    out = pair.cli("sync").stdout
    # 3 rows of tenant 1 copied, 5 outside the slice skipped (customer_custom's rows of Acme and Initech are
    # copied too: the rows that hold nothing, which the missing row says already)
    for mapping in ("customers", "customer_custom"):
        assert f"{mapping} erp_to_crm  done: 3 rows, 5 skipped (outside the mapping's slice or filter)" in out, out
    assert sync_rows(pair) == {"customers": ("done", 3, 5), "customer_custom": ("done", 3, 5)}
    assert pair.pg_query("SELECT id FROM account ORDER BY id") == [(1,), (2,), (3,)]
    assert pair.pg_query("SELECT id_c, code_c FROM account_cstm ORDER BY id_c") == [(2, "G-2"), (3, None)]
    assert pair.cli("verify").returncode == 0

    # the row is made once the application would make it: an ERP edit of Acme's custom value (a two-way update
    # of a missing optional row creates it whole); a copy done again leaves the empty one out again
    pair.start()
    pair.my_query("UPDATE company SET code = 'A-1' WHERE rowid = 1")
    want = [(1, "A-1"), (2, "G-2"), (3, None)]
    wait_until(lambda: pair.pg_query("SELECT id_c, code_c FROM account_cstm ORDER BY id_c") == want, 30,
               "Acme's custom row")
    pair.stop()
    out = pair.cli("sync", "--mapping", "customer_custom").stdout
    assert "customer_custom erp_to_crm  done: 3 rows, 5 skipped" in out, out
    assert pair.pg_query("SELECT id_c, code_c FROM account_cstm ORDER BY id_c") == want


def test_a_sync_table_without_rows_skipped_is_told_to_run_setup_which_adds_it(make_pair: Callable[..., Pair]) -> None:
    """rows_skipped is new (round 12): a daemon on a sync table made before says what to run (exit 78), and
    `replicator setup` adds the column on both sides, keeping the rows."""
    pair = make_pair(PG, MY, MAPPINGS, "sync: {on_first_run: false}\n")
    pair.pg_query("ALTER TABLE replicator.sync DROP COLUMN rows_skipped")
    pair.my_query(f"ALTER TABLE `{pair.state_schema}`.sync DROP COLUMN rows_skipped")
    pair.start()
    assert pair.wait_exit(60) == 78
    assert "sync` is missing" in pair.log() or "sync is missing" in pair.log(), pair.log()[-2000:]
    assert "run `replicator setup`" in pair.log()
    pair.setup()
    for row in ERP_ROWS:
        pair.my_query("INSERT INTO company VALUES (%s, %s, %s, %s, %s)", row)
    out = pair.cli("sync", "--mapping", "customers").stdout
    assert "customers erp_to_crm  done: 3 rows, 5 skipped" in out, out


def test_the_stream_creates_no_empty_optional_row_either_and_makes_it_once_a_field_is_set(
        make_pair: Callable[..., Pair]) -> None:
    """The stream agrees with the copy: a source insert whose mapped fields would all be NULL in an
    `optional: true` table creates nothing there (the missing row says so; verify agrees), and a later update
    that sets a field creates the row whole."""
    pair = make_pair(PG, MY, MAPPINGS, "sync: {on_first_run: false}\n")
    pair.start()
    pair.my_query("INSERT INTO company VALUES (1, 'Acme', 1, NULL, NULL), (2, 'Globex', 1, 'G-2', 500)")
    wait_until(lambda: pair.pg_query("SELECT id FROM account ORDER BY id") == [(1,), (2,)], 30, "the accounts")
    # the same target transaction as the accounts: no empty row for Acme
    assert pair.pg_query("SELECT id_c, code_c FROM account_cstm ORDER BY id_c") == [(2, "G-2")]
    pair.my_query("UPDATE company SET code = 'A-1' WHERE rowid = 1")
    want = [(1, "A-1"), (2, "G-2")]
    wait_until(lambda: pair.pg_query("SELECT id_c, code_c FROM account_cstm ORDER BY id_c") == want, 30,
               "Acme's custom row, made by the update that set its first field")
    pair.stop()
    assert pair.cli("verify").returncode == 0
