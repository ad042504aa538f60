"""A zero date's row error names its value ('2024-00-15') on every binlog path: a table mysql-replication decodes
itself (a GEOMETRY column) and a DATETIME in the pre-5.6 format, as the fast decoder's DATE and DATETIME(n)."""
from __future__ import annotations

from tests.integration.harness import Pair, wait_until

PG = """
CREATE TABLE geo (id int PRIMARY KEY, d date, dt timestamp);
CREATE TABLE olddt (id int PRIMARY KEY, dt timestamp);
"""
MY_GEO = "CREATE TABLE geo (id INT PRIMARY KEY, shape GEOMETRY NULL, d DATE NULL, dt DATETIME NULL)"
MY_OLD = "CREATE TABLE olddt (id INT PRIMARY KEY, dt DATETIME NULL)"
MAPPINGS = """
mappings:
  geo:
    direction: erp_to_crm
    on_error: quarantine
    crm: {table: geo, key: [id]}
    erp: {table: geo, key: [id]}
    fields: {id: ~, d: ~, dt: ~}
  olddt:
    direction: erp_to_crm
    on_error: quarantine
    crm: {table: olddt, key: [id]}
    erp: {table: olddt, key: [id]}
    fields: {id: ~, dt: ~}
"""


def queued(pair: Pair) -> dict[tuple[str, str], str]:
    return {(table.rsplit(".", 1)[-1], key): error for table, key, error in pair.pg_query(
        "SELECT target_table, target_key, error FROM replicator.dead_letter")}


def test_zero_dates_read_by_the_library_and_in_the_old_datetime_format_name_their_value(make_pair):
    pair = make_pair(PG, MY_GEO, MAPPINGS, extra_config="sync: {on_first_run: false}\n", setup=False)
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL mysql56_temporal_format = OFF")  # the old DATETIME, for this table only
            try:
                cur.execute(MY_OLD)
            finally:
                cur.execute("SET GLOBAL mysql56_temporal_format = ON")
    finally:
        conn.close()
    pair.setup()
    pair.start()
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("INSERT INTO geo VALUES (1, POINT(1, 2), '2024-00-15', NULL), "
                        "(2, NULL, '2024-05-06', '2024-02-00 10:11:12'), (3, NULL, '2024-05-06', NULL)")
            cur.execute("UPDATE geo SET d = '0000-00-00' WHERE id = 3")
            cur.execute("INSERT INTO olddt VALUES (1, '2024-00-15 01:02:03'), (2, '2024-05-06 07:08:09')")
    finally:
        conn.commit()
        conn.close()
    wait_until(lambda: len(queued(pair)) == 4, 30, "four rows queued")
    q = queued(pair)
    for (table, key), (column, value) in {("geo", "[1]"): ("d", "2024-00-15"),
                                          ("geo", "[2]"): ("dt", "2024-02-00 10:11:12"),
                                          ("geo", "[3]"): ("d", "0000-00-00"),
                                          ("olddt", "[1]"): ("dt", "2024-00-15 01:02:03")}.items():
        error = q[(table, key)]
        assert f"column {column}" in error and f"the value '{value}' is a MariaDB zero date" in error, error
    assert pair.pg_query("SELECT id FROM olddt") == [(2,)]
