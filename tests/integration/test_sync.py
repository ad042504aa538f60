"""Initial and on-demand sync against real servers: overlapping data linked by natural key, a
200k-row copy under concurrent writes on both sides, kill -9 in the middle of a copy, and a re-sync
of one mapping while the daemon streams the others."""
from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import Any, Callable

from tests.integration.harness import Pair, checkout_env, wait_until

CUSTOMERS_PG = """
CREATE TABLE customer (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text,
                       credit_limit numeric(12,2));
"""
CUSTOMERS_MY = """
CREATE TABLE customers (cid INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE,
                        customer_name VARCHAR(200), credit_limit DECIMAL(12,2)) ENGINE=InnoDB;
"""
CUSTOMERS_MAP = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
      name: {erp: customer_name}
      credit_limit: {owner: erp}
"""


def sync_status(pair: Pair) -> dict[tuple[str, str], tuple[str, int]]:
    """(stream, mapping) -> (status, rows_done) from both targets' sync tables."""
    rows = pair.pg_query("SELECT stream, mapping, status, rows_done FROM replicator.sync")
    rows += pair.my_query(f"SELECT stream, mapping, status, rows_done FROM `{pair.state_schema}`.sync")
    return {(r[0], r[1]): (r[2], int(r[3])) for r in rows}


def wait_synced(pair: Pair, expected: set[tuple[str, str]], timeout: float = 120) -> None:
    def done() -> Any:
        status = sync_status(pair)
        return all(status.get(k, ("", 0))[0] == "done" for k in expected) and status
    wait_until(done, timeout, f"sync of {sorted(expected)} done")


def test_first_run_links_rows_that_exist_on_both_sides(make_pair: Callable[..., Pair]) -> None:
    """Some customers on both sides (same email), some on one: after the first run every customer
    exists once on each side, linked, and both sides agree: the ERP's credit lines (it owns them) and,
    for the name (no owner), the CRM's value (sync.first_side defaults to the first connection)."""
    pair = make_pair(CUSTOMERS_PG, CUSTOMERS_MY, CUSTOMERS_MAP, setup=False)
    pair.pg_query("INSERT INTO customer (email, name, credit_limit) VALUES "
                  "('a@x', 'Anna', 1), ('b@x', 'Bert', NULL), ('c@x', 'Carl', NULL)")
    pair.my_query("INSERT INTO customers (email, customer_name, credit_limit) VALUES "
                  "('b@x', 'B. (erp)', 200), ('a@x', 'A. (erp)', 100), ('d@x', 'Dora', 400)")
    pair.setup()  # the data exists before replicator: it is not in the change streams, only the sync copies it
    pair.start()
    wait_synced(pair, {("crm_to_erp", "customers"), ("erp_to_crm", "customers")})
    expected = [("a@x", "Anna", Decimal("100.00")), ("b@x", "Bert", Decimal("200.00")),
                ("c@x", "Carl", None), ("d@x", "Dora", Decimal("400.00"))]
    crm = lambda: sorted(pair.pg_query("SELECT email, name, credit_limit FROM customer"))  # noqa: E731
    wait_until(lambda: crm() == expected, 20, f"the CRM to agree (it has {crm()})")
    assert sorted(pair.my_query("SELECT email, customer_name, credit_limit FROM customers")) == expected
    # one pair per customer: a and b linked by email, c created in the ERP, d created in the CRM
    pairs = pair.my_query(f"SELECT source_side, COUNT(*) FROM `{pair.state_schema}`.crosswalk GROUP BY source_side")
    pairs += pair.pg_query("SELECT source_side, COUNT(*) FROM replicator.crosswalk GROUP BY source_side")
    assert sorted((s, int(n)) for s, n in pairs) == [("crm", 3), ("erp", 1)]
    assert pair.metric("replicator_sync_rows_total", direction="crm_to_erp", mapping="customers") == 3
    # a later start copies nothing again
    pair.stop()
    pair.start()
    time.sleep(3)
    assert pair.metric("replicator_sync_rows_total", direction="crm_to_erp", mapping="customers") in (None, 0)
    assert len(pair.my_query("SELECT * FROM customers")) == 4
    pair.stop()


ACCOUNTS_PG = """
CREATE TABLE account (id bigint PRIMARY KEY, name text NOT NULL, balance numeric(14,2), touched int NOT NULL DEFAULT 0);
"""
ACCOUNTS_MY = """
CREATE TABLE account (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, balance DECIMAL(14,2),
                      touched INT NOT NULL DEFAULT 0) ENGINE=InnoDB;
"""
ACCOUNTS_MAP = """
mappings:
  accounts:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: account, key: [id]}
    fields:
      id: ~
      name: ~
      touched: ~
      balance: ~
"""


def _load(pair: Pair, side: str, first: int, count: int) -> None:
    """Bulk-load rows directly (bypassing replicator: existing data)."""
    rows = [(i, f"acct {i}", Decimal(i % 10000) / 4) for i in range(first, first + count)]
    if side == "crm":
        conn = pair.pg.connect()
        with conn.cursor() as cur:
            from psycopg2.extras import execute_values

            execute_values(cur, "INSERT INTO account (id, name, balance) VALUES %s", rows, page_size=5000)
        conn.commit()
    else:
        conn = pair.maria.connect()
        with conn.cursor() as cur:
            for i in range(0, len(rows), 5000):
                cur.executemany("INSERT INTO account (id, name, balance) VALUES (%s, %s, %s)", rows[i:i + 5000])
        conn.commit()
    conn.close()


def _writer(pair: Pair, side: str, stop: threading.Event, counts: dict[str, int], ids: list[int]) -> None:
    """Continuous single-row writes of the side's own rows, plus new rows, until stopped."""
    rnd = random.Random(side)
    conn = pair.pg.connect() if side == "crm" else pair.maria.connect()
    new_id = 1_000_000 if side == "crm" else 2_000_000
    try:
        while not stop.is_set():
            with conn.cursor() as cur:
                k = rnd.choice(ids)
                if side == "crm":
                    cur.execute("UPDATE account SET touched = touched + 1, name = %s WHERE id = %s",
                                (f"renamed {rnd.random():.6f}", k))
                else:
                    cur.execute("UPDATE account SET balance = %s WHERE id = %s", (Decimal(rnd.randint(0, 10**6)) / 100, k))
                if rnd.random() < 0.1:
                    new_id += 1
                    cur.execute("INSERT INTO account (id, name, balance) VALUES (%s, %s, %s)",
                                (new_id, f"new {new_id}", Decimal(7)))
            conn.commit()
            counts[side] = counts.get(side, 0) + 1
            time.sleep(0.002)
    finally:
        conn.close()


def wait_until_or_false(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _tables_equal(pair: Pair) -> list[tuple]:
    crm = {r[0]: r for r in pair.pg_query("SELECT id, name, balance, touched FROM account")}
    erp = {r[0]: r for r in pair.my_query("SELECT id, name, balance, touched FROM account")}
    return [(k, crm.get(k), erp.get(k)) for k in sorted(set(crm) | set(erp)) if crm.get(k) != erp.get(k)]


def test_200k_rows_copied_under_concurrent_writes_on_both_sides(make_pair: Callable[..., Pair]) -> None:
    """100k rows only in the CRM, 100k only in the ERP; both sides keep writing their rows during the
    copy. After the copy and the stream catch up, the tables are identical and verify agrees.

    The ERP's copy (second side) also reads the 100k rows the CRM's copy created there, while the CRM
    keeps updating them: it must not write those (older) values back over the CRM's newer ones."""
    pair = make_pair(ACCOUNTS_PG, ACCOUNTS_MY, ACCOUNTS_MAP, "sync: {chunk_rows: 5000}\n", setup=False)
    _load(pair, "crm", 1, 100_000)
    _load(pair, "erp", 100_001, 100_000)
    pair.setup()
    stop = threading.Event()
    counts: dict[str, int] = {}
    writers = [threading.Thread(target=_writer, args=(pair, side, stop, counts, ids))
               for side, ids in (("crm", list(range(1, 100_001, 7))), ("erp", list(range(100_001, 200_001, 7))))]
    for w in writers:
        w.start()
    started = time.monotonic()
    try:
        pair.start()
        wait_synced(pair, {("crm_to_erp", "accounts"), ("erp_to_crm", "accounts")}, timeout=300)
    finally:
        stop.set()
        for w in writers:
            w.join()
    took = time.monotonic() - started
    assert counts.get("crm", 0) > 100 and counts.get("erp", 0) > 100, counts  # writes really overlapped the copy
    diffs: list[tuple] = []

    def equal() -> bool:
        diffs[:] = _tables_equal(pair)
        return not diffs
    if not wait_until_or_false(equal, 60):
        raise AssertionError(f"{len(diffs)} rows differ, e.g. {diffs[:5]}")
    assert len(pair.pg_query("SELECT id FROM account")) >= 200_000
    status = sync_status(pair)
    assert status[("crm_to_erp", "accounts")][1] >= 100_000
    assert status[("erp_to_crm", "accounts")][1] >= 200_000  # the ERP held both halves by then
    result = pair.cli("verify", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"200k-row two-way sync under load: {took:.1f} s")
    pair.stop()


def test_kill_during_sync_resumes_from_the_last_chunk(make_pair: Callable[..., Pair]) -> None:
    """kill -9 twice in the middle of a copy into generated keys: every CRM row ends with exactly one
    ERP counterpart (a chunk applied twice would create duplicates) and the copy finishes."""
    mapping = CUSTOMERS_MAP.replace("direction: both", "direction: crm_to_erp")
    pair = make_pair(CUSTOMERS_PG, CUSTOMERS_MY, mapping, "sync: {chunk_rows: 500}\n", setup=False)
    pair.pg_query("INSERT INTO customer (email, name) SELECT 'u' || i || '@x', 'user ' || i "
                  "FROM generate_series(1, 12000) i")
    pair.setup()
    for _ in range(2):
        before = sync_status(pair).get(("crm_to_erp", "customers"), ("", 0))[1]
        pair.start()
        wait_until(lambda: sync_status(pair).get(("crm_to_erp", "customers"), ("", 0))[1] > before + 1000,
                   60, "the copy to make progress")
        pair.kill()
    status = sync_status(pair)[("crm_to_erp", "customers")]
    assert status[0] == "running" and 0 < status[1] < 12000, status
    pair.start()
    wait_synced(pair, {("crm_to_erp", "customers")})
    counts = pair.my_query("SELECT COUNT(*), COUNT(DISTINCT email) FROM customers")[0]
    assert tuple(map(int, counts)) == (12000, 12000)
    pairs = pair.my_query(f"SELECT COUNT(*), COUNT(DISTINCT target_key) FROM `{pair.state_schema}`.crosswalk")[0]
    assert tuple(map(int, pairs)) == (12000, 12000)
    pair.stop()


TWO_PG = ACCOUNTS_PG + CUSTOMERS_PG
TWO_MY = ACCOUNTS_MY + CUSTOMERS_MY
TWO_MAP = ACCOUNTS_MAP + "\n".join(CUSTOMERS_MAP.strip().splitlines()[1:]).replace("direction: both",
                                                                                  "direction: crm_to_erp") + "\n"


def test_resync_one_mapping_while_the_daemon_streams(make_pair: Callable[..., Pair]) -> None:
    """Rows lost on the ERP side (a restored backup) come back with `replicator sync --mapping`,
    sent to the running daemon; the other mapping keeps streaming and is not copied again."""
    pair = make_pair(TWO_PG, TWO_MY, TWO_MAP, setup=False)
    pair.pg_query("INSERT INTO customer (email, name) SELECT 'c' || i || '@x', 'c' || i FROM generate_series(1, 300) i")
    pair.setup()
    pair.start()
    wait_synced(pair, {("crm_to_erp", "customers"), ("crm_to_erp", "accounts"), ("erp_to_crm", "accounts")})
    wait_until(lambda: len(pair.my_query("SELECT * FROM customers")) == 300, 30, "customers copied")
    copied_accounts = pair.metric("replicator_sync_rows_total", direction="crm_to_erp", mapping="accounts")
    lost = [cid for (cid,) in pair.my_query("SELECT cid FROM customers WHERE cid % 3 = 0")]
    pair.my_query("DELETE FROM customers WHERE cid % 3 = 0")  # bypassing replicator, like a restore that lost them
    for cid in lost:  # the restore took the crosswalk back to the same point
        pair.my_query(f"DELETE FROM `{pair.state_schema}`.crosswalk WHERE target_key = %s", (f"[{cid}]",))
    writer_stop = threading.Event()

    def stream_accounts() -> None:
        i = 0
        while not writer_stop.is_set():
            i += 1
            pair.pg_query("INSERT INTO account (id, name) VALUES (%s, %s)", (5_000_000 + i, "during"))
            time.sleep(0.01)
    writer = threading.Thread(target=stream_accounts)
    writer.start()
    try:
        result = subprocess.run([sys.executable, "-m", "replicator", "sync", "--mapping", "customers",
                                 "--config", str(pair.config_path)], capture_output=True, text=True, timeout=120,
                                env=checkout_env())
    finally:
        writer_stop.set()
        writer.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running daemon copies the rows" in result.stdout
    assert "customers crm_to_erp  done: 300 rows" in result.stdout
    assert len(pair.my_query("SELECT * FROM customers")) == 300
    during = pair.pg_query("SELECT COUNT(*) FROM account WHERE name = 'during'")[0][0]
    wait_until(lambda: pair.my_query("SELECT COUNT(*) FROM account WHERE name = 'during'")[0][0] == during, 30,
               "accounts streamed meanwhile")
    assert during > 0
    assert pair.metric("replicator_sync_rows_total", direction="crm_to_erp", mapping="accounts") == copied_accounts
    pair.stop()


def test_sync_command_without_a_daemon_streams_until_done(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(ACCOUNTS_PG, ACCOUNTS_MY, ACCOUNTS_MAP, "sync: {chunk_rows: 1000}\n", setup=False)
    _load(pair, "crm", 1, 5000)
    pair.setup()
    result = pair.cli("sync", "--mapping", "accounts")
    assert "no daemon is running" in result.stdout
    assert "accounts crm_to_erp  done: 5,000 rows" in result.stdout
    assert "accounts erp_to_crm  done: 5,000 rows" in result.stdout
    assert not _tables_equal(pair)
    # the streams went on from where the copy left them: a later change still replicates
    pair.pg_query("UPDATE account SET name = 'after' WHERE id = 1")
    pair.start()
    wait_until(lambda: pair.my_query("SELECT name FROM account WHERE id = 1")[0][0] == "after", 30, "streamed")
    pair.stop()


def test_an_installation_from_before_sync_is_told_to_run_setup(make_pair: Callable[..., Pair]) -> None:
    """The sync table is new: a daemon started on state tables of an older version says what to do
    (exit 78, no restart loop), and `replicator setup` adds what is missing."""
    pair = make_pair(ACCOUNTS_PG, ACCOUNTS_MY, ACCOUNTS_MAP)
    pair.my_query(f"DROP TABLE `{pair.state_schema}`.sync")
    pair.start()
    assert pair.wait_exit(60) == 78
    assert "sync` is missing" in pair.log() and "run `replicator setup`" in pair.log()
    pair.setup()
    pair.start()
    wait_synced(pair, {("crm_to_erp", "accounts"), ("erp_to_crm", "accounts")})
    pair.stop()


PRODUCTS_PG = """
CREATE TABLE product (id serial PRIMARY KEY, sku text NOT NULL UNIQUE, name text);
CREATE TABLE product_cost (product_id int PRIMARY KEY REFERENCES product (id), cost numeric(12,2));
"""
PRODUCTS_MY = """
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, item_no VARCHAR(40) NOT NULL UNIQUE,
                    description VARCHAR(200)) ENGINE=InnoDB AUTO_INCREMENT=5000;
CREATE TABLE item_costs (item_id INT PRIMARY KEY, cost DECIMAL(12,2)) ENGINE=InnoDB;
"""
PRODUCTS_MAP = """
mappings:
  products:
    direction: crm_to_erp
    crm: {table: product, key: [id]}
    erp: {table: items, key: [id]}
    link: {natural: [sku], crosswalk: true}
    fields:
      sku: {erp: item_no}
      name: {erp: description}
  product_costs:
    direction: erp_to_crm
    crm: {table: product_cost, key: [product_id]}
    erp: {table: item_costs, key: [item_id]}
    fields:
      item_id: {crm: product_id, references: products}
      cost: ~
"""


def test_rows_parked_during_a_copy_are_applied_once_the_other_directions_copy_made_their_pair(
        make_pair: Callable[..., Pair]) -> None:
    """Issue 12: the ERP's item costs reference products whose crosswalk pair the other direction's copy
    makes (linked by SKU). A cost copied before its product was linked is parked; `replicator sync` retries
    the parked rows once the copies are done, says what still waits, and `verify` agrees without a daemon."""
    pair = make_pair(PRODUCTS_PG, PRODUCTS_MY, PRODUCTS_MAP, setup=False)
    pair.pg_query("INSERT INTO product (sku, name) VALUES ('A-1', 'Axle'), ('B-2', 'Bolt'), ('C-3', 'Cog')")
    pair.my_query("INSERT INTO items (item_no, description) VALUES ('C-3', 'Cog'), ('A-1', 'Axle'), ('B-2', 'Bolt')")
    pair.my_query("INSERT INTO item_costs SELECT id, 10 * LENGTH(description) FROM items")
    pair.setup()
    # the costs first: no product is linked yet, so every cost waits for its product's pair
    first = pair.cli("sync", "--mapping", "product_costs")
    assert "still parked after the copy: 3 row(s)" in first.stdout, first.stdout
    assert "product_costs erp_to_crm  3 waiting for products" in first.stdout, first.stdout
    assert pair.pg_query("SELECT * FROM product_cost") == []
    # the products: linked by SKU (pairs in the ERP's crosswalk); the parked costs follow in this run
    second = pair.cli("sync", "--mapping", "products")
    assert "parked after the copy: none" in second.stdout, second.stdout
    assert sorted(pair.pg_query("SELECT p.sku, c.cost FROM product_cost c JOIN product p ON p.id = c.product_id")) \
        == [("A-1", Decimal("40.00")), ("B-2", Decimal("40.00")), ("C-3", Decimal("30.00"))]
    assert pair.pg_query("SELECT COUNT(*) FROM replicator.parked")[0][0] == 0
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
