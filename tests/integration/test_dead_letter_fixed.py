"""`dlq retry` after the DBA fixed the data (docs/operations.md "The dead-letter queue").

A CRM row the ERP rejects (a name longer than the ERP's varchar(10)) is queued; its later changes wait
behind it. The fix is (a) at the source: an UPDATE that makes the name fit, queued behind the bad insert
-- before, `dlq retry` replayed the queued insert, failed again and the row stayed stuck for good; now the
row's changes are one unit and its latest queued image is written in place of the failed one -- or a
DELETE, after which nothing is written; or (b) at the target: the column made wider, and the queued
changes go in as they are, in order. Every case ends with both databases equal, `verify` clean and the
queue empty. The mapping is two-way, so every retry goes through the conflict check (stream/deadcheck.py).
"""
from __future__ import annotations

import json

import pytest

from tests.integration.harness import Pair, wait_until

PG_SCHEMA = "CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)"
MY_SCHEMA = "CREATE TABLE p (id int PRIMARY KEY, name varchar(10) NOT NULL, qty int NOT NULL) ENGINE=InnoDB"
MAPPINGS = """
mappings:
  p:
    direction: both
    on_error: quarantine
    crm: {table: p, key: [id]}
    erp: {table: p, key: [id]}
    fields: {id: ~, name: ~, qty: ~}
"""
CONFIG = "sync: {on_first_run: false}\n"
LONG = "a name far too long for the ERP"


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, CONFIG)


def _erp(pair: Pair) -> dict[int, tuple[str, int]]:
    return {i: (n, q) for i, n, q in pair.my_query("SELECT id, name, qty FROM p")}


def _crm(pair: Pair) -> dict[int, tuple[str, int]]:
    return {i: (n, q) for i, n, q in pair.pg_query("SELECT id, name, qty FROM p")}


def _queued(pair: Pair, key: int | None = None) -> list[tuple[str, str]]:
    """The ERP's queue: (op, error class) in queue order, of one key or all."""
    rows = pair.my_query(f"SELECT target_key, op, error_class FROM `{pair.state_schema}`.dead_letter ORDER BY id")
    return [(op, cls) for k, op, cls in rows if key is None or k == f"[{key}]"]


def _dlq(pair: Pair, *args: str, check: bool = True) -> list[dict]:
    done = pair.cli("dlq", *args, "--json", check=check)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _bad_then(pair: Pair, key: int, *later: str) -> None:
    """Insert `key` with a name the ERP rejects, then run the `later` statements on the CRM; wait until
    the insert and each later change are queued in the ERP."""
    pair.pg_query("INSERT INTO p VALUES (%s, %s, 1)", (key, LONG))
    for sql in later:
        pair.pg_query(sql, (key,))
    wait_until(lambda: len(_queued(pair, key)) == 1 + len(later), 30, f"row {key}'s changes queued")


def test_a_fix_at_the_source_or_the_target_ends_with_both_sides_equal(pair: Pair) -> None:
    pair.start()
    pair.pg_query("INSERT INTO p VALUES (100, 'fine', 1)")
    wait_until(lambda: 100 in _erp(pair), 30, "a good row replicates")

    # (a) the fix at the source: the name shortened, then another field changed; all queued behind the insert
    _bad_then(pair, 1, "UPDATE p SET name = 'short' WHERE id = %s", "UPDATE p SET qty = 2 WHERE id = %s")
    assert _queued(pair, 1)[0][0] == "insert" and [c for _, c in _queued(pair, 1)[1:]] == ["held", "held"]
    done = _dlq(pair, "retry", "--key", "1")
    assert [(d["result"], d["op"]) for d in done] == [("applied", "insert"), ("applied", "update"), ("applied", "update")]
    assert "replaced by the row's latest queued change" in done[0]["note"], done[0]
    assert _erp(pair)[1] == ("short", 2) and _queued(pair, 1) == []

    # the latest image still does not fit: both errors named, the row stays queued, nothing written
    _bad_then(pair, 2, f"UPDATE p SET name = '{LONG}!' WHERE id = %s")
    failed = pair.cli("dlq", "retry", "--key", "2", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "written in its place, fails too" in failed.stdout, failed.stdout
    assert 2 not in _erp(pair) and len(_queued(pair, 2)) == 2
    pair.pg_query("UPDATE p SET name = 'ok' WHERE id = 2")
    wait_until(lambda: len(_queued(pair, 2)) == 3, 30, "the fix of row 2 queued behind")
    assert [d["result"] for d in _dlq(pair, "retry", "--key", "2")] == ["applied"] * 3
    assert _erp(pair)[2] == ("ok", 1)

    # the source deleted the bad row: nothing to write, the queue is emptied
    _bad_then(pair, 3, "DELETE FROM p WHERE id = %s")
    assert [d["result"] for d in _dlq(pair, "retry", "--key", "3")] == ["applied", "applied"]
    assert 3 not in _erp(pair) and _queued(pair, 3) == []

    # (b) the fix at the target: the column made wider; the queued changes go in as they are, in order
    _bad_then(pair, 4, "UPDATE p SET qty = 7 WHERE id = %s")
    pair.my_query("ALTER TABLE p MODIFY name varchar(100) NOT NULL")
    done = _dlq(pair, "retry", "--key", "4")
    assert [(d["result"], d["op"], d.get("note")) for d in done] == [("applied", "insert", None), ("applied", "update", None)]
    assert _erp(pair)[4] == (LONG, 7)

    # no row is held any more: their next changes stream through the running daemon, in both directions
    pair.pg_query("UPDATE p SET qty = qty + 10 WHERE id IN (1, 2, 4)")
    pair.my_query("UPDATE p SET qty = qty + 100 WHERE id = 100")
    wait_until(lambda: _erp(pair) == _crm(pair), 30, "both sides equal")
    assert _crm(pair) == {1: ("short", 12), 2: ("ok", 11), 4: (LONG, 17), 100: ("fine", 101)}
    assert _queued(pair) == []
    verified = pair.cli("verify", check=False)
    assert verified.returncode == 0 and "verify: the sides agree" in verified.stdout, verified.stdout + verified.stderr
    assert pair.stop() == 0


def test_skip_names_the_held_changes_it_drops(pair: Pair) -> None:
    pair.start()
    _bad_then(pair, 5, "UPDATE p SET name = 'short' WHERE id = %s")
    skipped = pair.cli("dlq", "skip", "--key", "5").stdout
    lines = skipped.splitlines()
    assert len(lines) == 2 and lines[0].startswith("skipped erp:") and " insert" in lines[0], skipped
    assert " update (a later change of the row, queued behind an earlier one: the target misses it too; " \
           "`replicator verify --mapping p --repair`" in lines[1], skipped
    assert _queued(pair) == [] and 5 not in _erp(pair)
    pair.cli("verify", "--mapping", "p", "--repair", check=False)
    wait_until(lambda: _erp(pair) == _crm(pair), 30, "the row copied by verify --repair")
    assert _erp(pair)[5] == ("short", 1)
    assert pair.stop() == 0


def test_the_latest_image_does_not_overwrite_a_row_made_on_the_target_since(pair: Pair) -> None:
    """The net change goes through the conflict check as a single queued change does: the ERP's users
    created the row themselves while the CRM's insert waited; the fixed image is not written over it."""
    pair.start()
    _bad_then(pair, 7)
    pair.my_query("INSERT INTO p VALUES (7, 'erp7', 5)")
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM replicator.conflicts")[0][0] >= 1
               or _crm(pair).get(7) == ("erp7", 5), 30, "the ERP's insert reached the CRM")
    pair.pg_query("UPDATE p SET name = 'short7' WHERE id = 7")
    wait_until(lambda: len(_queued(pair, 7)) == 2, 30, "the fix queued behind the insert")
    failed = pair.cli("dlq", "retry", "--key", "7", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert _queued(pair, 7) == [("insert", "conflict"), ("update", "held")], failed.stdout
    assert "it exists there with name = 'erp7'" in failed.stdout, failed.stdout
    assert _erp(pair)[7] == ("erp7", 5)
    assert pair.stop() == 0
