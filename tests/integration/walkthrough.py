"""What every walkthrough page's test does alike: the page's `file:` blocks made into a pair of servers (schemas,
the first mapping file to the pair, the other mapping files beside it, key defaults and seed rows), a concurrent
edit of one record on both sides, and the race counted on each side. A new walkthrough test starts here."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from tests.integration.harness import Pair, page_statements, wait_until

FIRST_MAPPING = "mappings/10-customers.yaml"


def page_pair(make_pair: Callable[..., Pair], page: dict[str, str], pg_schema: str, my_schema: str, *,
              pg_scripts: Iterable[str] = (), pg_seed: Iterable[str] = (), my_seed: Iterable[str] = (),
              **options: Any) -> Pair:
    """A pair (not set up: the page runs check before setup) from the page's blocks, by name: `pg_schema` and
    `my_schema` are the two schemas; every `mappings/` block is written, the first one through `make_pair`.
    `pg_scripts` run on PostgreSQL as one statement list each (function bodies hold semicolons), then `pg_seed`
    and `my_seed` statement by statement. `options` go to `make_pair` (names, maria_first, ...)."""
    options.setdefault("extra_config", "on_error: quarantine\n")
    pair = make_pair(page[pg_schema], page[my_schema], page[FIRST_MAPPING], setup=False, **options)
    # under the page's own name: mappings fed by one source row apply in the order of the files, sorted by name
    # (`test.yaml` sorted after `20-...`, and the vtiger page's address row came before the account it references)
    (pair.tmp / "mappings" / "test.yaml").rename(pair.tmp / FIRST_MAPPING)
    for name, text in page.items():
        if name.startswith("mappings/") and name != FIRST_MAPPING:
            (pair.tmp / name).write_text(text)
    for name in pg_scripts:
        pair.pg_query(page[name])
    for name in pg_seed:
        for stmt in page_statements(page[name]):
            pair.pg_query(stmt)
    for name in my_seed:
        for stmt in page_statements(page[name]):
            pair.my_query(stmt)
    return pair


def race(pair: Pair, my_sql: str, my_params: Any, pg_sql: str, pg_params: Any = None) -> None:
    """Both sides edit one record before either edit arrives: the MariaDB edit holds its row lock, uncommitted,
    while the PostgreSQL edit commits, and commits a second later, so each direction meets the other's edit."""
    conn = pair.maria.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(my_sql, my_params)
            pair.pg_query(pg_sql, pg_params)
            time.sleep(1)
        conn.commit()
    finally:
        conn.close()


def recorded(pair: Pair, mapping: str = "customers") -> tuple[int, int]:
    """How many conflicts of `mapping` each side's state schema holds: (PostgreSQL, MariaDB)."""
    return (len(pair.pg_query("SELECT 1 FROM replicator.conflicts WHERE mapping = %s", (mapping,))),
            len(pair.my_query(f"SELECT 1 FROM `{pair.state_schema}`.conflicts WHERE mapping = %s", (mapping,))))


def wait_recorded_once(pair: Pair, mapping: str = "customers") -> None:
    """Each direction met the other's edit and recorded the race once, in its own target."""
    wait_until(lambda: recorded(pair, mapping) == (1, 1), 30, "the race recorded once on each side")
