"""`check`'s count of the zero and impossible dates a carried MariaDB date column already holds
(mapping/check/zerodates.py; docs/types.md "Zero dates").

The rows a mapping's slice (`kind: deal`) or filter (`stage` not `lost`) leaves out are never carried: their dates
are not counted for it. A day past its month's end (2024-02-30, stored under ALLOW_INVALID_DATES) has no
PostgreSQL value either: counted apart and named as such, also in a field that says `zero_date: null` (which
carries zero dates as NULL, never an impossible one: a row error). A real 29 February is neither.
"""
from __future__ import annotations

import re

from tests.integration.harness import Pair

PG = "CREATE TABLE deals (id int PRIMARY KEY, closed date, seen timestamp, due date)"
MY = ("CREATE TABLE deals (id INT PRIMARY KEY, kind VARCHAR(10) NOT NULL, stage VARCHAR(10) NOT NULL, closed DATE, "
      "seen DATETIME, due DATE)")
MAPPINGS = """
mappings:
  deals:
    direction: erp_to_crm
    on_error: quarantine
    filter: {erp_to_crm: {stage: {ne: lost}}}
    crm: {table: deals, key: [id]}
    erp: {table: deals, key: [id], slice: {kind: deal}}
    fields: {id: ~, closed: ~, seen: ~, due: {zero_date: null}}
"""
ROWS = [  # (id, kind, stage, closed, seen, due)
    (1, "deal", "won", "0000-00-00", None, "0000-00-00"),  # zero: closed (due says zero_date: null)
    (2, "deal", "lost", "0000-00-00", "2024-02-30 10:00:00", "2024-02-30"),  # the filter leaves it out
    (3, "lead", "won", "0000-00-00", "2024-02-30 10:00:00", "2024-02-30"),  # not in the slice
    (4, "deal", "won", "2024-02-30", "2023-02-29 10:00:00", None),  # impossible: closed and seen
    (5, "lead", "won", "2024-04-31", None, None),  # not in the slice
    (6, "deal", "won", "2024-02-29", "2024-02-29 23:59:59", "2024-06-31"),  # a leap day: real; due impossible
    (7, "deal", "open", "2024-04-30", "2024-00-10 00:00:00", None),  # zero: seen
    (8, "deal", "won", "2024-11-00", None, None),  # zero: closed (a zero day)
]


def test_check_counts_only_the_rows_the_mapping_carries_and_impossible_dates_apart(make_pair) -> None:
    pair: Pair = make_pair(PG, MY, MAPPINGS, setup=False)
    conn = pair.maria.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # as a legacy application's session
            cur.executemany("INSERT INTO deals VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    finally:
        conn.close()
    assert pair.my_query("SELECT closed FROM deals WHERE id = 4") == [("2024-02-30",)]  # stored as written
    checked = pair.cli("check", check=False)
    warned = {m.group(1): line for line in checked.stdout.splitlines()
              if (m := re.search(r": field (\w+) carries .* already holds", line))}
    assert sorted(warned) == ["closed", "due", "seen"], checked.stdout
    kept = "in its 8 rows, of the rows the mapping's filter or slice keeps"
    impossible = "impossible dates, a day past the month's end such as 2024-02-30 (stored under ALLOW_INVALID_DATES;"
    assert f"already holds zero dates (2 {kept}) and {impossible} 1 {kept})" in warned["closed"], warned["closed"]
    fate = "a row with an impossible date is a row error naming the column (quarantine) when the copy or an update " \
        "carries it, whatever zero_date says"
    assert fate in warned["closed"], warned["closed"]
    # a DATETIME past its month's end: a row error too, never a stop
    assert f"already holds zero dates (1 {kept}) and {impossible} 1 {kept}): each such row is a row error" \
        in warned["seen"] and fate in warned["seen"] and "stops the direction" not in warned["seen"], warned["seen"]
    # zero_date: null carries due's zero date as NULL; not its impossible DATE
    assert f"already holds {impossible} 1 {kept}): {fate}" in warned["due"], warned["due"]
    assert "DAYOFMONTH(LAST_DAY(" in warned["closed"], warned["closed"]
    assert "correct the rows holding an impossible date" in checked.stdout, checked.stdout

    # the query the warning gives finds exactly the rows it counted
    where = warned["closed"].split("SELECT ... WHERE ", 1)[1].split("; `replicator verify`", 1)[0]
    found = pair.my_query(f"SELECT id FROM deals WHERE kind = 'deal' AND stage <> 'lost' AND ({where}) ORDER BY id")
    assert [i for (i,) in found] == [1, 4, 8]
