"""An impossible date (a day past its month's end, 2024-02-30, stored by a MariaDB session whose sql_mode has
ALLOW_INVALID_DATES) has no PostgreSQL value: on every path -- the fast binlog decoder, a table mysql-replication
decodes itself (a GEOMETRY column), the table scanner of the initial copy and of verify -- it is a row error naming
table, key, column and value, whatever the field's `zero_date` says (docs/types.md, "Zero dates"): the direction
stops, or with `on_error: quarantine` only that row is queued and the next ones flow. Before: a bare
`ValueError: day is out of range for month` stopped the direction (DATE), or a silent NULL (DATETIME with
`zero_date: null`)."""
from __future__ import annotations

from datetime import date, datetime

from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE deals (id int PRIMARY KEY, d date, dt timestamp, ts timestamptz, n text);
CREATE TABLE geo (id int PRIMARY KEY, d date)
"""
MY = """
CREATE TABLE deals (id INT PRIMARY KEY, d DATE NULL, dt DATETIME NULL, ts TIMESTAMP NULL DEFAULT NULL,
                    n VARCHAR(10));
CREATE TABLE geo (id INT PRIMARY KEY, shape GEOMETRY NULL, d DATE NULL)
"""
MAPPINGS = """
mappings:
  deals:
    direction: erp_to_crm
    on_error: %(on_error)s
    crm: {table: deals, key: [id]}
    erp: {table: deals, key: [id]}
    fields: {id: ~, d: ~, dt: {zero_date: null}, ts: {zero_date: null}, n: ~}
  geo:
    direction: erp_to_crm
    on_error: %(on_error)s
    crm: {table: geo, key: [id]}
    erp: {table: geo, key: [id]}
    fields: {id: ~, d: {zero_date: null}}
"""
ROWS = [  # (id, d, dt, n)
    (1, "2024-02-30", None, "a"),  # refused: d
    (2, "2024-05-06", "2023-02-29 10:00:00", "b"),  # refused: dt, though it says zero_date: null
    (3, "2024-02-29", "2024-02-29 23:59:59", "c"),  # a leap day: real
    (4, "2024-05-06", "0000-00-00 00:00:00", "d"),  # a zero date: NULL (zero_date: null)
]


def insert_legacy(pair: Pair, rows: list[tuple]) -> None:
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # a legacy application's session
            cur.executemany("INSERT INTO deals (id, d, dt, n) VALUES (%s, %s, %s, %s)", rows)
            cur.execute("INSERT INTO geo VALUES (1, POINT(1, 2), '2024-04-31'), (2, NULL, '2024-04-30')")
    finally:
        conn.commit()
        conn.close()


def queued(pair: Pair) -> dict[tuple[str, str], str]:
    return {(table.rsplit(".", 1)[-1], key): error for table, key, error in pair.pg_query(
        "SELECT target_table, target_key, error FROM replicator.dead_letter")}


def check_queued(pair: Pair) -> None:
    wait_until(lambda: len(queued(pair)) == 3, 30, "three rows queued")
    q = queued(pair)
    for (table, key), (column, value) in {("deals", "[1]"): ("d", "2024-02-30"),
                                          ("deals", "[2]"): ("dt", "2023-02-29 10:00:00"),
                                          ("geo", "[1]"): ("d", "2024-04-31")}.items():
        error = q[(table, key)]
        assert f"column {column}" in error and f"the value '{value}' is an impossible date" in error, error
        assert "zero_date: null does not carry it" in error, error
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM deals")[0][0] == 2, 30, "the other rows")
    assert pair.pg_query("SELECT id, d, dt, n FROM deals ORDER BY id") == [
        (3, date(2024, 2, 29), datetime(2024, 2, 29, 23, 59, 59), "c"), (4, date(2024, 5, 6), None, "d")]
    assert pair.pg_query("SELECT id, d FROM geo") == [(2, date(2024, 4, 30))]


def test_the_stream_queues_only_the_rows_holding_one_and_the_next_rows_flow(make_pair):
    pair = make_pair(PG, MY, MAPPINGS % {"on_error": "quarantine"}, extra_config="sync: {on_first_run: false}\n")
    # TIMESTAMP cannot hold one: the server stores its zero value instead (a zero date, NULL here), never the day
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            cur.execute("CREATE TEMPORARY TABLE probe (ts TIMESTAMP NULL)")
            cur.execute("INSERT INTO probe VALUES ('2024-02-30 10:00:00')")
            cur.execute("SELECT CAST(ts AS CHAR) FROM probe")
            assert cur.fetchall() == (("0000-00-00 00:00:00",),)
    finally:
        conn.close()
    pair.start()
    try:
        insert_legacy(pair, ROWS)
        check_queued(pair)
        # verify names them too (the table scanner reads them as the stream does), known as queued
        verified = pair.cli("verify", check=False)
        refused = sorted(line.split(":", 1)[0] for line in verified.stdout.splitlines()
                         if "cannot be mapped" in line and "impossible date" in line)
        assert refused == [f"deals erp_to_crm public.deals key=({k},)" for k in (1, 2)] + [
            "geo erp_to_crm public.geo key=(1,)"], verified.stdout
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()[-3000:]
    finally:
        pair.stop()


def test_the_initial_copy_queues_them_as_the_stream_does(make_pair):
    pair = make_pair(PG, MY, MAPPINGS % {"on_error": "quarantine"})
    insert_legacy(pair, ROWS)
    pair.start()
    try:
        wait_until(lambda: ("sync of deals done" in pair.log() and "sync of geo done" in pair.log())
                   or pair.proc.poll() is not None, 60, "the copy")
        assert pair.proc.poll() is None, pair.log()[-3000:]
        check_queued(pair)
    finally:
        pair.stop()


def test_an_impossible_date_stops_a_mapping_that_does_not_quarantine_naming_table_key_and_column(make_pair):
    pair = make_pair(PG, MY, MAPPINGS % {"on_error": "stop"}, extra_config="sync: {on_first_run: false}\n")
    pair.start()
    insert_legacy(pair, [ROWS[2], ROWS[0]])  # one rows event: a good row, then the impossible date
    code = pair.wait_exit(60)
    log = pair.log()
    assert code != 0, log
    assert "ValueError" not in log and "Traceback" not in log, log
    stopped = [line for line in log.splitlines() if "stopped on" in line]
    assert stopped, log
    message = stopped[-1]
    assert f"{pair.maria.dbname}.deals" in message and "(1,)" in message and "column d" in message, message
    assert "'2024-02-30' is an impossible date" in message, message
    assert pair.pg_query("SELECT count(*) FROM deals") == [(0,)]  # nothing of the transaction applied
