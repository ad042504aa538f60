"""`dlq retry` plans against the target table's shape now, as `verify --repair` does (docs/operations.md "The
dead-letter queue").

A CRM name too wide for the ERP's varchar(5) is queued. The DBA widens the column while `dlq retry` runs (after it
read the types, before it writes): the commit finds the table moved and rolls back; before, the retry stopped
there ("changed while replicator wrote into it"), now the new shape is judged with `check`'s rules, planned with,
and the row applied. A shape the mapping can no longer carry exactly (the amount narrowed to one decimal: the ERP
would round 1.25) is refused before anything is written, naming table and column; the row stays queued.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from replicator.errors import EXIT_CONFIG
from tests.integration.harness import Pair, checkout_env, wait_until

PG_SCHEMA = "CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL)"
MY_SCHEMA = "CREATE TABLE p (id int PRIMARY KEY, name varchar(5) NOT NULL, amount decimal(12,2) NOT NULL) ENGINE=InnoDB"
MAPPINGS = """
mappings:
  p:
    direction: crm_to_erp
    on_error: quarantine
    crm: {table: p, key: [id]}
    erp: {table: p, key: [id]}
    fields: {id: ~, name: ~, amount: ~}
"""
CONFIG = "sync: {on_first_run: false}\n"


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, CONFIG)


def _erp(pair: Pair) -> dict[int, tuple[str, Decimal]]:
    return {i: (n, a) for i, n, a in pair.my_query("SELECT id, name, amount FROM p")}


def _queued(pair: Pair) -> list[int]:
    return [i for (i,) in pair.my_query(f"SELECT id FROM `{pair.state_schema}`.dead_letter ORDER BY id")]


def _quarantined(pair: Pair, key: int, name: str) -> None:
    pair.pg_query("INSERT INTO p VALUES (%s, %s, 1.25)", (key, name))
    wait_until(lambda: len(_queued(pair)) == 1, 30, f"row {key} queued")


def test_a_column_widened_while_retry_runs_is_planned_with_and_the_row_applied(pair: Pair) -> None:
    pair.start()
    _quarantined(pair, 1, "far too long")
    assert pair.stop() == 0
    (queued,) = _queued(pair)
    holder = pair.maria.connect(autocommit=False)  # the queued change locked: the retry plans, then waits for it
    retry = None
    try:
        with holder.cursor() as cur:
            cur.execute(f"SELECT id FROM `{pair.state_schema}`.dead_letter WHERE id = %s FOR UPDATE", (queued,))
        retry = subprocess.Popen([sys.executable, "-m", "replicator", "dlq", "retry", "--key", "1", "--json",
                                  "--config", str(pair.config_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=pair.tmp, env=checkout_env())
        waiting = "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
        wait_until(lambda: pair.my_query(waiting)[0][0] > 0 or retry.poll() is not None, 60, "the retry waiting")
        assert retry.poll() is None, retry.communicate()
        pair.my_query("ALTER TABLE p MODIFY name varchar(50) NOT NULL")  # after its plan, before its write
    finally:
        holder.rollback()
        holder.close()
    out, err = retry.communicate(timeout=120) if retry is not None else ("", "")
    assert retry is not None and retry.returncode == 0, out + err
    assert [json.loads(line)["result"] for line in out.splitlines()] == ["applied"], out
    assert "p changed while streaming: name varchar(5) -> varchar(50)" in err, err
    assert _erp(pair) == {1: ("far too long", Decimal("1.25"))} and _queued(pair) == []


def test_a_shape_that_no_longer_carries_the_mapped_column_stays_refused_naming_it(pair: Pair) -> None:
    pair.start()
    _quarantined(pair, 2, "far too long")
    assert pair.stop() == 0
    pair.my_query("ALTER TABLE p MODIFY name varchar(50) NOT NULL, MODIFY amount decimal(12,1) NOT NULL")
    refused = pair.cli("dlq", "retry", "--key", "2", check=False)
    assert refused.returncode == EXIT_CONFIG, refused.stdout + refused.stderr
    text = refused.stdout + refused.stderr
    assert re.search(r"erp table \S+\.p, column amount: `check` refuses the field in the table's shape now: .*"
                     r"NUMERIC\(12, 2\) into DECIMAL\(12, 1\): fewer decimal places \(rounded\)\. Nothing was written",
                     text), text
    assert _erp(pair) == {} and len(_queued(pair)) == 1  # the queue as it was

    pair.my_query("ALTER TABLE p MODIFY amount decimal(12,2) NOT NULL")  # the fix: the retry goes in
    done = pair.cli("dlq", "retry", "--key", "2", "--json")
    assert [json.loads(line)["result"] for line in done.stdout.splitlines()] == ["applied"], done.stdout
    assert _erp(pair) == {2: ("far too long", Decimal("1.25"))} and _queued(pair) == []
