#!/usr/bin/env python3
"""The cost of a two-hop fold (`fold.via`, docs/mappings.md "Through a link table") on bulk changes, end to end:
the real daemon (tests/integration/harness.Pair) between an EspoCRM-shaped MariaDB (contact, entity_email_address,
email_address) and a PostgreSQL party.email, as tests/integration/test_folds.py maps it.

N contacts, each with two link rows: its own address (primary) and one address all of them share (not primary).

- flip: `UPDATE entity_email_address SET primary = 1 - primary` -- 2N link rows in one statement (one source
  transaction); every contact's e-mail becomes the shared address;
- rename: the shared address renamed -- one far row, N parents.

Each time is from the source statement's commit until every party.email holds the expected value (polled every
20 ms). Servers are started in a temporary directory and removed at the end.

    python bench/fold_via_cost.py [--contacts 2000] [--repeat 1]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replicator.testing.devservers import MariaDBServer, PostgresServer  # noqa: E402
from tests.integration.harness import Pair, wait_until  # noqa: E402
from tests.integration.test_folds import ESPO_MAPPINGS, ESPO_MY, PARTY_PG  # noqa: E402


def _exec(db, sql: str) -> None:  # type: ignore[no-untyped-def]
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for stmt in filter(str.strip, sql.split(";")):
                cur.execute(stmt)
        conn.commit()
    finally:
        conn.close()


def timed(pair: Pair, sql: str, done: str, expected: int, timeout: float = 600) -> float:
    t0 = time.monotonic()
    pair.my_query(sql)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if pair.pg_query(done)[0][0] == expected:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise SystemExit(f"timed out: {done}\n{pair.log()[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contacts", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    n = args.contacts
    root = Path(tempfile.mkdtemp(prefix="fold-via-bench-"))
    pg, my = PostgresServer(root / "pg"), MariaDBServer(root / "my")
    try:
        pg.start()
        my.start()
        for r in range(args.repeat):
            pgdb, mydb = pg.create_database(f"b{r}"), my.create_database(f"b{r}")
            _exec(pgdb, PARTY_PG)
            _exec(mydb, ESPO_MY)
            tmp = root / f"run{r}"
            tmp.mkdir()
            pair = Pair(tmp, pgdb, mydb, ESPO_MAPPINGS, names=("tryton", "espocrm"), maria_first=True)
            pair.setup()
            pair.my_query("INSERT INTO contact VALUES " + ", ".join(f"('c{i}', 'n{i}')" for i in range(n)))
            pair.my_query("INSERT INTO email_address (id, name) VALUES ('shared', 'team@x.de'), "
                          + ", ".join(f"('e{i}', 'own{i}@x.de')" for i in range(n)))
            pair.my_query("INSERT INTO entity_email_address (entity_id, email_address_id, entity_type, `primary`) "
                          "VALUES " + ", ".join(f"('c{i}', 'e{i}', 'Contact', 1), ('c{i}', 'shared', 'Contact', 0)"
                                                for i in range(n)))
            pair.start()
            wait_until(lambda: pair.pg_query("SELECT count(*) FROM party WHERE email LIKE 'own%%'")[0][0] == n, 300,
                       "the first copy")
            flip = timed(pair, "UPDATE entity_email_address SET `primary` = 1 - `primary`",
                         "SELECT count(*) FROM party WHERE email = 'team@x.de'", n)
            rename = timed(pair, "UPDATE email_address SET name = 'all@x.de' WHERE id = 'shared'",
                           "SELECT count(*) FROM party WHERE email = 'all@x.de'", n)
            print(f"run {r + 1}: flip of {2 * n} link rows in one statement: {flip:.2f} s; "
                  f"rename of an address {n} contacts share: {rename:.2f} s", flush=True)
            rc = pair.stop()
            if rc != 0:
                raise SystemExit(f"the daemon exited {rc}:\n{pair.log()[-3000:]}")
            pair.close()
    finally:
        my.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
