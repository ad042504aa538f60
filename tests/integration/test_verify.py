"""`replicator verify` against real servers with the daemon replicating.

1. A table of many types replicated both ways by the daemon compares equal (no false positives).
2. Rows corrupted behind replicator's back are found exactly, with their values; `--repair` fixes them
   through the tagged apply path (the repairs do not echo), then verify passes; the periodic verifier
   exports the same counts.
3. A busy system (continuous updates on both sides while verifying) reports nothing.
4. A crosswalk-linked two-way mapping with a one-way transform, and a one-way mapping with a value map,
   transforms and a time zone compare correctly; a corrupted crosswalk row is found and
   repaired through the crosswalk.

verify runs in this process (`replicator.verify.command.command`, as the CLI calls it); the daemon is a subprocess.
"""
from __future__ import annotations

import argparse
import io
import random
import re
import threading
import time
from datetime import datetime
from decimal import Decimal

import pytest

from replicator import metrics
from replicator.config import load
from replicator.mapping.model import load_mappings
from replicator.stream.pipeline import MappingHolder
from replicator.verify.command import PeriodicVerifier, Verifier, add_arguments, command
from tests.integration.harness import Pair, wait_until

# quick re-checks: genuine differences are reported after 2 rounds of at most 1 s each
FAST = "sync: {on_first_run: false}\nverify: {recheck_seconds: 1, chunk_rows: 100}\n"


def verify(pair: Pair, *args: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = load(pair.config_path)
    out = io.StringIO()
    code = command(parser.parse_args(list(args)), config, load_mappings(config), out)
    return code, out.getvalue()


def difference_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r": (differs|missing in target|extra in target|cannot be)", line)]


# ------------------------------------------------------------------------------ 1. many types

TYPED_PG = """
CREATE TABLE typed (
    id int PRIMARY KEY, i_small smallint, i_big bigint, u_big numeric(20,0), amount numeric(12,2),
    amount4 numeric(14,4), ratio real, score double precision, dt timestamp(6), ts timestamptz(6),
    dt_lossy timestamp(6), d date, tm time(6), flag boolean, txt text, code char(5), doc jsonb, blob bytea,
    uid uuid, uid_bin uuid, status text, tags text)
"""
TYPED_MY = """
CREATE TABLE typed (
    id INT PRIMARY KEY, i_small SMALLINT, i_big BIGINT, u_big BIGINT UNSIGNED, amount DECIMAL(12,2),
    amount4 DECIMAL(12,2), ratio FLOAT, score DOUBLE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
    dt_lossy DATETIME, d DATE, tm TIME(6), flag TINYINT(1), txt TEXT, code CHAR(5), doc JSON, `blob` BLOB,
    uid UUID, uid_bin BINARY(16), status ENUM('new','paid','shipped'), tags SET('red','green','blue'))
"""
TYPED_MAPPINGS = """
mappings:
  typed:
    direction: both
    crm: {table: typed, key: [id]}
    erp: {table: typed, key: [id]}
    fields:
      id: ~
      i_small: ~
      i_big: ~
      u_big: ~
      amount: ~
      amount4: {owner: crm, lossy: allow}      # numeric(14,4) into DECIMAL(12,2): rounded
      ratio: ~
      score: ~
      dt: ~
      ts: ~
      dt_lossy: {owner: crm, lossy: allow}     # microseconds into DATETIME(0)
      d: ~
      tm: ~
      flag: ~
      txt: ~
      code: ~
      doc: ~
      blob: ~
      uid: ~
      uid_bin: ~
      status: ~
      tags: ~
"""


def typed_values(i: int) -> dict:
    rnd = random.Random(i)
    return dict(
        i_small=rnd.randint(-32768, 32767), i_big=rnd.randint(-2**63, 2**63 - 1),
        u_big=Decimal(rnd.randint(0, 2**64 - 1)), amount=Decimal(rnd.randint(-10**9, 10**9)) / 100,
        amount4=Decimal(rnd.randint(-10**9, 10**9)) / 10000, ratio=rnd.uniform(-1e6, 1e6),
        score=rnd.uniform(-1e300, 1e300), dt=f"2024-0{1 + i % 9}-1{i % 10} 12:34:56.{i:06d}",
        ts=f"2023-1{i % 3}-0{1 + i % 9} 0{i % 10}:15:00.5+0{i % 9}:00",
        dt_lossy=f"2024-02-29 23:59:59.{999999 - i}", d=f"19{10 + i % 90}-0{1 + i % 9}-2{i % 8}",
        tm=f"{i % 24:02d}:00:0{i % 10}.{i:06d}", flag=bool(i % 2), txt=f"Grüße {i} 👋 'q' \\ %s",
        code=("ab" if i % 3 else "abcde"), doc=f'{{"n": {i}, "list": [1, 2.50, null, true], "k": "v{i}"}}',
        blob=bytes(rnd.randrange(256) for _ in range(i % 50)), uid=f"6ba7b810-9dad-11d1-80b4-{i:012d}",
        uid_bin=f"0f1e2d3c-4b5a-4978-8796-{i:010d}00", status=("new", "paid", "shipped")[i % 3],
        tags=("red,blue", "green", "")[i % 3],
    )


def insert_typed(pair: Pair, ids: range, side: str) -> None:
    cols = list(typed_values(0))
    if side == "crm":
        conn = pair.pg.connect()
        with conn.cursor() as cur:
            for i in ids:
                v = typed_values(i)
                cur.execute(f"INSERT INTO typed (id, {', '.join(cols)}) VALUES (%s{', %s' * len(cols)})",
                            [i] + [v[c] for c in cols])
        conn.close()
        return
    conn = pair.maria.connect()
    with conn.cursor() as cur:
        for i in ids:
            v = typed_values(i)
            v["ts"] = v["ts"][:-6]  # MariaDB TIMESTAMP: no offset in the literal (the session is UTC)
            v["uid_bin"] = bytes.fromhex(v["uid_bin"].replace("-", ""))
            v["flag"] = int(v["flag"])
            v["amount4"] = v["dt_lossy"] = None  # owned by the CRM: the ERP does not write them
            cur.execute(f"INSERT INTO typed (id, {', '.join(f'`{c}`' for c in cols)}) VALUES (%s{', %s' * len(cols)})",
                        [i] + [v[c] for c in cols])
    conn.commit()
    conn.close()


def test_every_type_replicated_by_the_daemon_compares_equal(make_pair):
    pair = make_pair(TYPED_PG, TYPED_MY, TYPED_MAPPINGS, extra_config=FAST)
    pair.start()
    try:
        insert_typed(pair, range(1, 41), "crm")
        insert_typed(pair, range(101, 141), "erp")
        wait_until(lambda: pair.pg_query("SELECT count(*) FROM typed")[0][0] == 80
                   and pair.my_query("SELECT count(*) FROM typed")[0][0] == 80, what="80 rows on both sides")
        # an update on each side, and NULLs, travel too
        pair.pg_query("UPDATE typed SET txt = NULL, ratio = 0.1, doc = '[]' WHERE id = 7")
        pair.my_query("UPDATE typed SET txt = 'changed', `blob` = '', tags = 'blue,green' WHERE id = 107")
        wait_until(lambda: pair.my_query("SELECT txt FROM typed WHERE id = 7") == [(None,)]
                   and pair.pg_query("SELECT txt FROM typed WHERE id = 107") == [("changed",)], what="updates")
        code, out = verify(pair)
        assert difference_lines(out) == [], out
        assert code == 0, out
        assert "typed: 160 rows checked, 0 differing" in out  # 80 rows, each direction
        assert "verify: the sides agree" in out

        # not vacuous: small changes of each kind of value are found, in both directions' terms
        assert pair.stop() == 0
        pair.my_query("UPDATE typed SET ratio = ratio * 1.001, ts = ts + INTERVAL 1 SECOND, "
                      "uid_bin = UNHEX('0f1e2d3c4b5a49788796000000000701'), doc = '{\"n\": 7}', tags = 'red', "
                      "code = 'abc', tm = tm + INTERVAL 1 SECOND, u_big = u_big - 1 WHERE id = 7")
        code, out = verify(pair)
        assert code == 1, out
        lines = difference_lines(out)
        assert len(lines) == 2, out
        changed = ["ratio", "ts", "tm", "u_big", "doc", "uid_bin", "code", "tags"]
        for line, stream in zip(sorted(lines), ("crm_to_erp", "erp_to_crm")):
            assert line.startswith(f"typed {stream} ") and " key=(7,): differs: " in line, line
            columns = [part.split(":")[0] for part in line.split(": differs: ")[1].split("; ")]
            assert sorted(columns) == sorted(changed), line
    finally:
        pair.stop()


# ------------------------------------------------------------------ 2. corruption, repair, no echo

CORRUPT_PG = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty numeric(10,2), changed timestamptz);
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, credit_limit numeric(12,2))
"""
CORRUPT_MY = """
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, qty DECIMAL(10,2), changed DATETIME(6));
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, credit_limit DECIMAL(12,2))
"""
CORRUPT_MAPPINGS = """
mappings:
  items:
    direction: crm_to_erp
    crm: {table: items, key: [id]}
    erp: {table: items, key: [id]}
    fields: {id: ~, name: ~, qty: ~, changed: ~}
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: ~
      credit_limit: {owner: erp}
"""


def test_corrupted_rows_are_found_exactly_and_repaired_without_echo(make_pair):
    pair = make_pair(CORRUPT_PG, CORRUPT_MY, CORRUPT_MAPPINGS, extra_config=FAST)
    pair.start()
    try:
        pair.pg_query("INSERT INTO items SELECT i, 'item ' || i, i * 1.5, '2024-01-01 10:00+00' "
                      "FROM generate_series(1, 300) i")
        pair.pg_query("INSERT INTO customer SELECT i, 'customer ' || i FROM generate_series(1, 20) i")
        wait_until(lambda: pair.my_query("SELECT count(*) FROM customers")[0][0] == 20
                   and pair.my_query("SELECT count(*) FROM items")[0][0] == 300, what="rows in the ERP")
        pair.my_query("UPDATE customers SET credit_limit = id * 1000")  # owned by the ERP: flows to the CRM
        wait_until(lambda: pair.pg_query("SELECT credit_limit FROM customer WHERE id = 2") == [(Decimal("2000.00"),)],
                   what="credit limits in the CRM")
        code, out = verify(pair)
        assert (code, difference_lines(out)) == (0, []), out

        # behind replicator's back: items only flow crm -> erp, credit_limit only erp -> crm
        db = pair.maria.dbname
        pair.my_query("UPDATE items SET name = 'CORRUPT', qty = 0 WHERE id = 3")
        pair.my_query("DELETE FROM items WHERE id = 5")
        pair.my_query("INSERT INTO items VALUES (999, 'extra', 1, NULL)")
        pair.pg_query("UPDATE customer SET credit_limit = 1 WHERE id = 2")
        crm_items = pair.pg_query("SELECT * FROM items ORDER BY id")
        erp_customers = pair.my_query("SELECT * FROM customers ORDER BY id")

        code, out = verify(pair)
        assert code == 1, out
        assert sorted(difference_lines(out)) == sorted([
            f"items crm_to_erp {db}.items key=(3,): differs: name: 'item 3' -> 'CORRUPT'; qty: 4.50 -> 0.00",
            f"items crm_to_erp {db}.items key=(5,): missing in target",
            f"items crm_to_erp {db}.items key=(999,): extra in target",
            "customers erp_to_crm public.customer key=(2,): differs: credit_limit: 2000.00 -> 1.00",
        ]), out
        assert "items: 300 rows checked, 3 differing" in out and "customers: 40 rows checked, 1 differing" in out

        # the daemon's periodic verification sees the same
        config = load(pair.config_path)
        report = PeriodicVerifier(config, MappingHolder(load_mappings(config)), threading.Event()).run_once()
        assert report is not None and len(report.differences) == 4
        gauge = metrics.verify_rows_differing
        assert gauge.labels(f"{db}.items")._value.get() == 3
        assert gauge.labels("public.customer")._value.get() == 1
        assert gauge.labels(f"{db}.customers")._value.get() == 0
        assert metrics.verify_last_complete._value.get() > time.time() - 60

        dropped = {d: pair.metric("replicator_loop_dropped_batches_total", direction=d)
                   for d in ("crm_to_erp", "erp_to_crm")}
        applied = {d: pair.metric("replicator_rows_applied_total", direction=d) for d in ("crm_to_erp", "erp_to_crm")}
        code, out = verify(pair, "--repair")
        assert code == 0, out
        repairs = sorted(line for line in out.splitlines() if re.match(r"(repaired|inserted|deleted) ", line))
        assert repairs == sorted([
            "repaired customers erp_to_crm public.customer key=(2,): credit_limit 1.00 -> 2000.00",
            f"repaired items crm_to_erp {db}.items key=(3,): name 'CORRUPT' -> 'item 3', qty 0.00 -> 4.50",
            f"inserted items crm_to_erp {db}.items key=(5,)",
            f"deleted items crm_to_erp {db}.items key=(999,)",
        ]), out
        assert "verify: repaired 4 row(s); the sides agree" in out
        assert pair.my_query("SELECT name, qty FROM items WHERE id IN (3, 5, 999) ORDER BY id") == [
            ("item 3", Decimal("4.50")), ("item 5", Decimal("7.50"))]
        assert pair.pg_query("SELECT credit_limit FROM customer WHERE id = 2") == [(Decimal("2000.00"),)]

        # each repair transaction came back to the other reader tagged and was dropped, nothing was applied
        wait_until(lambda: all(pair.metric("replicator_loop_dropped_batches_total", direction=d) > dropped[d]
                               for d in dropped), what="the repairs' echoes dropped")
        pair.pg_query("INSERT INTO items VALUES (1000, 'after', 1, NULL)")  # a later change that does flow
        wait_until(lambda: pair.my_query("SELECT name FROM items WHERE id = 1000") == [("after",)], what="later row")
        assert pair.metric("replicator_rows_applied_total", direction="erp_to_crm") == applied["erp_to_crm"]
        assert pair.metric("replicator_rows_applied_total", direction="crm_to_erp") == applied["crm_to_erp"] + 1
        assert pair.pg_query("SELECT * FROM items WHERE id <> 1000 ORDER BY id") == crm_items
        assert pair.my_query("SELECT * FROM customers ORDER BY id") == erp_customers
        assert metrics.rows_repaired.labels(f"{db}.items")._value.get() >= 3

        code, out = verify(pair)
        assert (code, difference_lines(out)) == (0, []), out
    finally:
        pair.stop()


# ------------------------------------------------------------------------------ 3. a busy system

BUSY_PG = "CREATE TABLE account (id int PRIMARY KEY, balance numeric(14,2) NOT NULL, note text, seen timestamptz)"
BUSY_MY = ("CREATE TABLE account (id INT PRIMARY KEY, balance DECIMAL(14,2) NOT NULL, note VARCHAR(100), "
           "seen TIMESTAMP(6) NULL DEFAULT NULL)")
BUSY_MAPPINGS = """
mappings:
  account:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: account, key: [id]}
    fields: {id: ~, balance: ~, note: ~, seen: ~}
"""
ROWS = 3000


def test_a_busy_system_reports_no_false_differences(make_pair):
    pair = make_pair(BUSY_PG, BUSY_MY, BUSY_MAPPINGS, extra_config="sync: {on_first_run: false}\n"
                     "verify: {recheck_seconds: 5, chunk_rows: 100}\n")
    pair.start()
    stop = threading.Event()
    updates = {"crm": 0, "erp": 0}
    errors: list[BaseException] = []

    def writer(side: str) -> None:
        # the CRM updates even ids, the ERP odd ones: no conflicting writes, just a lot of traffic
        rnd = random.Random(side)
        try:
            conn = pair.pg.connect() if side == "crm" else pair.maria.connect()
            with conn.cursor() as cur:
                while not stop.is_set():
                    i = rnd.randrange(0 if side == "crm" else 1, ROWS, 2) + 1
                    cur.execute("UPDATE account SET balance = balance + 1, note = %s, seen = now() WHERE id = %s",
                                (f"{side} {updates[side]}", i))
                    updates[side] += 1
                    time.sleep(0.002)
            conn.close()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    try:
        pair.pg_query(f"INSERT INTO account SELECT i, i, 'start', now() FROM generate_series(1, {ROWS}) i")
        wait_until(lambda: pair.my_query("SELECT count(*) FROM account")[0][0] == ROWS, what="rows in the ERP")
        threads = [threading.Thread(target=writer, args=(s,), daemon=True) for s in ("crm", "erp")]
        for t in threads:
            t.start()
        wait_until(lambda: min(updates.values()) > 50, what="traffic on both sides")
        before = dict(updates)
        code, out = verify(pair)
        during = {s: updates[s] - before[s] for s in updates}
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors, errors
        # the rows really changed while they were compared: dozens of updates a side (how many depends on how
        # long verify takes against the writers' pace: 87 and 95 in one CI run of a quick verify, so not 100)
        assert min(during.values()) > 20, during
        assert difference_lines(out) == [], out
        assert code == 0, out
        assert f"account: {2 * ROWS} rows checked, 0 differing" in out
        print(f"\nupdates while verifying: {during}\n{out}")

        # re-checks wait for streams a daemon applies, and only for those
        verifier = Verifier(load(pair.config_path), load_mappings(load(pair.config_path)))
        try:
            assert verifier.side("erp").stream_applied("crm_to_erp") is True
            assert verifier.side("crm").stream_applied("erp_to_crm") is True
            assert pair.stop() == 0
            assert verifier.side("erp").stream_applied("crm_to_erp") is False
            assert verifier.side("crm").stream_applied("erp_to_crm") is False
        finally:
            verifier.close()
    finally:
        stop.set()
        pair.stop()


# ------------------------------------------------------------ 4. crosswalk, value maps, transforms

LINKED_PG = """
CREATE TABLE partner (id serial PRIMARY KEY, vat text NOT NULL, name text NOT NULL, tier text);
CREATE TABLE lead (id int PRIMARY KEY, name text NOT NULL, status text NOT NULL, created timestamp, email text)
"""
LINKED_MY = """
CREATE TABLE partners (pno INT AUTO_INCREMENT PRIMARY KEY, vat VARCHAR(20) NOT NULL, name VARCHAR(50) NOT NULL,
                       tier VARCHAR(10));
CREATE TABLE leads (id INT PRIMARY KEY, lead_name VARCHAR(50) NOT NULL, status_code CHAR(1) NOT NULL,
                    created_utc DATETIME, email VARCHAR(100))
"""
LINKED_MAPPINGS = """
mappings:
  partners:
    direction: both
    crm: {table: partner, key: [id]}
    erp: {table: partners, key: [pno]}
    link: {crosswalk: true}
    fields:
      vat: ~
      name: {transform: {crm_to_erp: [trim, upper]}}     # one way only: both images are "in sync"
      tier: ~
  leads:
    direction: crm_to_erp
    crm: {table: lead, key: [id]}
    erp: {table: leads, key: [id]}
    fields:
      id: ~
      name: {erp: lead_name, transform: [trim, upper]}
      status:
        erp: status_code
        map: [{crm: open, erp: O}, {crm: won, erp: W}]
        unmapped: {default: X}
      created: {erp: created_utc, transform: [{timezone: Europe/Berlin}]}
      email: {transform: [trim, lower, null_if_empty]}
"""


def test_crosswalk_and_transformed_mappings_compare_correctly(make_pair):
    pair = make_pair(LINKED_PG, LINKED_MY, LINKED_MAPPINGS, extra_config=FAST)
    pair.start()
    try:
        pair.pg_query("INSERT INTO partner (vat, name, tier) SELECT 'DE' || i, ' Partner ' || i || ' ', 'gold' "
                      "FROM generate_series(1, 30) i")
        pair.my_query("INSERT INTO partners (vat, name, tier) VALUES ('SE1', 'Erp One', 'std'), ('SE2', 'Erp Two', NULL)")
        pair.pg_query("INSERT INTO lead SELECT i, ' lead ' || i, (ARRAY['open', 'won', 'lost'])[1 + i % 3], "
                      "'2024-07-01 12:00'::timestamp + i * interval '1 hour', "
                      "CASE WHEN i % 4 = 0 THEN ' ' ELSE ' Lead' || i || '@Example.COM ' END "
                      "FROM generate_series(1, 50) i")
        wait_until(lambda: pair.my_query("SELECT count(*) FROM partners")[0][0] == 32
                   and pair.pg_query("SELECT count(*) FROM partner")[0][0] == 32
                   and pair.my_query("SELECT count(*) FROM leads")[0][0] == 50, what="rows on both sides")
        assert pair.my_query("SELECT status_code, created_utc, email FROM leads WHERE id = 4") == [
            ("W", datetime(2024, 7, 1, 14, 0), None)]  # 16:00 in Berlin is 14:00 UTC
        code, out = verify(pair)
        assert (code, difference_lines(out)) == (0, []), out
        assert "partners: 64 rows checked, 0 differing" in out and "leads: 50 rows checked, 0 differing" in out

        # corrupt the ERP copy of CRM partner 3 and of lead 8 (the ERP's own partners stay as they are)
        pno = pair.my_query("SELECT pno FROM partners WHERE vat = 'DE3'")[0][0]
        pair.my_query("UPDATE partners SET tier = 'tin' WHERE pno = %s", (pno,))  # flows back to the CRM...
        wait_until(lambda: pair.pg_query("SELECT tier FROM partner WHERE vat = 'DE3'") == [("tin",)],
                   what="a two-way change travelling")  # ...so it is no drift: still in agreement
        pair.my_query("UPDATE leads SET status_code = 'W', created_utc = '2024-07-01 12:00' WHERE id = 8")
        code, out = verify(pair)
        assert code == 1, out
        assert difference_lines(out) == [
            f"leads crm_to_erp {pair.maria.dbname}.leads key=(8,): differs: status_code: 'X' -> 'W'; "
            "created_utc: 2024-07-01 18:00:00 -> 2024-07-01 12:00:00"], out

        # a crosswalk counterpart lost behind replicator's back: the CRM row is missing in the ERP
        pair.my_query("DELETE FROM partners WHERE pno = %s", (pno,))  # flows to the CRM: the CRM row goes too
        wait_until(lambda: pair.pg_query("SELECT count(*) FROM partner WHERE vat = 'DE3'") == [(0,)],
                   what="the delete travelling")
        crm_id = pair.pg_query("SELECT id FROM partner WHERE vat = 'DE4'")[0][0]
        pno4 = pair.my_query("SELECT pno FROM partners WHERE vat = 'DE4'")[0][0]
        pair.my_query(f"DELETE FROM `{pair.state_schema}`.crosswalk WHERE mapping = 'partners' "
                      "AND target_key = %s", (f"[{pno4}]",))  # the pair gone: no delete can travel now
        pair.my_query("DELETE FROM partners WHERE pno = %s", (pno4,))
        wait_until(lambda: pair.metric("replicator_rows_missing_total", direction="erp_to_crm") >= 1,
                   what="the unlinked delete seen by the daemon")
        code, out = verify(pair, "--mapping", "partners", "--repair")
        assert code == 0, out
        assert f"inserted partners crm_to_erp {pair.maria.dbname}.partners crm key=({crm_id},)" in out, out
        row = pair.my_query("SELECT vat, name, tier FROM partners WHERE vat = 'DE4'")
        assert row == [("DE4", "PARTNER 4", "gold")], row
        code, out = verify(pair, "--mapping", "partners")
        assert (code, difference_lines(out)) == (0, []), out
    finally:
        pair.stop()


# ------------------------------------------- 5. filters, gates, parked children: nothing is "missing"

ORDER_PG = """
CREATE TABLE quote (id int PRIMARY KEY, customer text NOT NULL, status text NOT NULL);
CREATE TABLE quote_line (id int PRIMARY KEY, quote_id int NOT NULL REFERENCES quote, qty int NOT NULL)
"""
ORDER_MY = """
CREATE TABLE sales_orders (order_no int AUTO_INCREMENT PRIMARY KEY, customer varchar(50) NOT NULL,
                           crm_status varchar(20)) AUTO_INCREMENT=7000;
CREATE TABLE sales_order_lines (line_id int AUTO_INCREMENT PRIMARY KEY, order_no int NOT NULL, qty int NOT NULL,
                                FOREIGN KEY (order_no) REFERENCES sales_orders (order_no)) AUTO_INCREMENT=9000
"""
ORDER_MAPPINGS = """
mappings:
  quotes:
    direction: crm_to_erp
    crm: {table: quote, key: [id]}
    erp: {table: sales_orders, key: [order_no]}
    link: {crosswalk: true}
    gate: {crm_to_erp: {column: status, becomes: confirmed}}
    filter: {crm_to_erp: {customer: {ne: internal}}}
    fields:
      customer: ~
      status: {erp: crm_status}
  quote_lines:
    direction: crm_to_erp
    crm: {table: quote_line, key: [id]}
    erp: {table: sales_order_lines, key: [line_id]}
    link: {crosswalk: true}
    parent: {mapping: quotes, field: quote_id}
    fields:
      quote_id: {erp: order_no, references: quotes}
      qty: ~
"""


def test_gates_filters_and_parked_children_are_not_missing_and_references_are_compared(make_pair):
    pair = make_pair(ORDER_PG, ORDER_MY, ORDER_MAPPINGS, extra_config=FAST)
    pair.start()
    try:
        pair.pg_query("INSERT INTO quote VALUES (1, 'Ann', 'confirmed'), (2, 'Bob', 'draft'), (3, 'Cy', 'confirmed'), "
                      "(4, 'internal', 'confirmed')")
        pair.pg_query("INSERT INTO quote_line VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3), (4, 2, 4), (5, 4, 5)")
        wait_until(lambda: pair.metric("replicator_parked_rows", direction="crm_to_erp") == 3
                   and pair.my_query("SELECT count(*) FROM sales_order_lines") == [(2,)], what="2 lines sent, 3 parked")
        pair.pg_query("UPDATE quote SET status = 'draft' WHERE id = 3")  # the gate closes: updates still flow
        wait_until(lambda: pair.my_query("SELECT crm_status FROM sales_orders WHERE order_no = 7001") == [("draft",)],
                   what="the update of a quote whose gate closed")
        code, out = verify(pair)
        assert (code, difference_lines(out)) == (0, []), out
        assert "quotes: 4 rows checked, 0 differing" in out and "quote_lines: 5 rows checked, 0 differing" in out

        # a line moved to another order behind replicator's back: the foreign key is compared translated
        db = pair.maria.dbname
        pair.my_query("UPDATE sales_order_lines SET order_no = 7001, qty = 99 WHERE line_id = 9000")
        code, out = verify(pair)
        assert code == 1, out
        assert difference_lines(out) == [f"quote_lines crm_to_erp {db}.sales_order_lines key=(9000,) (crm key (1,)): "
                                         "differs: order_no: 7000 -> 7001; qty: 1 -> 99"], out
        code, out = verify(pair, "--repair")
        assert code == 0, out
        assert (f"repaired quote_lines crm_to_erp {db}.sales_order_lines key=(9000,) (crm key (1,)): "
                "order_no 7001 -> 7000, qty 99 -> 1") in out, out
        assert pair.my_query("SELECT order_no, qty FROM sales_order_lines WHERE line_id = 9000") == [(7000, 1)]
        assert pair.metric("replicator_parked_rows", direction="crm_to_erp") == 3  # the repair parked nothing
        code, out = verify(pair)
        assert (code, difference_lines(out)) == (0, []), out
    finally:
        pair.stop()


# ------------------------------------------------------------------------------ 6. inside the daemon


def test_the_daemon_verifies_periodically_and_exports_drift(make_pair):
    """verify.every_seconds: the running daemon compares both sides on its own and exports the rows
    that still differ per target table, so ReplicatorDrift can fire; a repaired row clears it."""
    config = "sync: {on_first_run: false}\nverify: {every_seconds: 1, recheck_seconds: 1, chunk_rows: 100}\n"
    pair = make_pair(CORRUPT_PG, CORRUPT_MY, CORRUPT_MAPPINGS, extra_config=config)
    pair.start()
    try:
        db = pair.maria.dbname
        pair.pg_query("INSERT INTO items SELECT i, 'item ' || i, i, NULL FROM generate_series(1, 50) i")
        wait_until(lambda: pair.my_query("SELECT count(*) FROM items")[0][0] == 50, what="rows in the ERP")
        wait_until(lambda: pair.metric("replicator_verify_last_complete_timestamp_seconds") > 0, 30,
                   "a complete periodic verification")
        wait_until(lambda: pair.metrics_text() and f'replicator_verify_rows_differing{{table="{db}.items"}} 0.0'
                   in pair.metrics_text(), 30, "items agreeing")
        pair.my_query("UPDATE items SET name = 'CORRUPT' WHERE id IN (3, 4)")  # behind replicator's back
        wait_until(lambda: pair.metric("replicator_verify_rows_differing", table=f"{db}.items") == 2, 30,
                   "the drift exported")
        assert "differs: name: 'item 3' -> 'CORRUPT'" in pair.log()
        code, out = verify(pair, "--repair")
        assert code == 0, out
        wait_until(lambda: pair.metric("replicator_verify_rows_differing", table=f"{db}.items") == 0, 30,
                   "the drift cleared")
    finally:
        pair.stop()
