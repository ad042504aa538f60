"""Values no other test writes, through every carried type pair, both ways: a property-based differential
test on the real servers and the real daemon (docs/types.md, "Values drawn by Hypothesis").

Each `Case` of tests/integration/valuecases.py is one type pair with one table per side (`id`, `c`) and a
one-way mapping. Hypothesis draws one value per pair at and beyond the type's edges; it is written on the
source server (which may refuse it: then it is not part of the example), read back as the source stored it,
and carried by the daemon (`on_error: quarantine`). Then, for each value:

- a value the target can hold arrives, and equals the source's value by the documented equivalence
  (canonical forms of valuecases.py): never altered, clipped, dropped, or queued;
- a value it cannot hold (only in a pair `check` warns about, or a documented exception such as a NUL
  character into PostgreSQL text) is a row error naming table, key and column, queued in the dead-letter
  queue, and the rest of the stream goes on.

The same values go through the initial sync (written before the first run: the table scanners) and the
stream (the binlog and WAL decoders); `replicator check` gives each pair the verdict the case states; and
`replicator verify` agrees where every value arrived exactly, and finds every target value changed behind
its back, down to one unit in the last place.

Examples per run: REPLICATOR_VALUE_EXAMPLES (default 6 for the sync, 8 streamed: about a minute); a deeper
run: `REPLICATOR_VALUE_EXAMPLES=200 pytest tests/integration/test_type_values.py` (bench/README.md).
"""
from __future__ import annotations

import itertools
import math
import os
import re
import struct
import traceback
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration.harness import Pair, wait_until
from tests.integration.valuecases import CASES, Case, PG_ZONES, pg_literal

EXAMPLES = int(os.environ.get("REPLICATOR_VALUE_EXAMPLES", "0") or 0)
# shrinking re-runs examples against the servers: only in a deeper run, where it is worth the minutes
SETTINGS = settings(max_examples=EXAMPLES or 8, deadline=None, database=None, derandomize=not EXAMPLES,
                    suppress_health_check=list(HealthCheck),
                    phases=list(Phase) if EXAMPLES else [Phase.explicit, Phase.reuse, Phase.generate])
SYNC_SETTINGS = settings(SETTINGS, max_examples=EXAMPLES or 6)
MY_ZONES = ["+00:00", "+05:45", "-09:30", "+14:00", "-12:00"]


# text keys under collations that fold ('a', 'A', 'a ', 'á' one key in MariaDB's _ci and PAD SPACE ones):
# (direction, PostgreSQL key type, MariaDB key type); each pair `check` passes as fit
KEYS = [("p2m", "varchar(20)", "VARCHAR(20) COLLATE utf8mb4_nopad_bin"),
        ("m2p", "varchar(20)", "VARCHAR(20) COLLATE utf8mb4_general_ci"),
        ("m2p", "char(8)", "CHAR(8) COLLATE utf8mb4_general_ci")]
KEY_TEXT = st.sampled_from(["a", "A", "a ", " a", "á", "a\u0301", "ä", "ss", "ß", "Ä", "ǅ", "i", "İ", "ı", "😀", "x"])


def key_mapping(i: int, way: str) -> str:
    direction = "erp_to_crm" if way == "m2p" else "crm_to_erp"
    return (f"  k{i}:\n    direction: {direction}\n    crm: {{table: k{i}, key: [k]}}\n"
            f"    erp: {{table: k{i}, key: [k]}}\n    fields: {{k: ~, n: ~}}\n")


def mapping(case: Case) -> str:
    direction = "erp_to_crm" if case.way == "m2p" else "crm_to_erp"
    return (f"  {case.name}:\n    direction: {direction}\n    crm: {{table: {case.name}, key: [id]}}\n"
            f"    erp: {{table: {case.name}, key: [id]}}\n    fields: {{id: ~, c: ~}}\n")


class World:
    """The pair of servers, the daemon, and every value written so far."""

    def __init__(self, pair: Pair):
        self.pair = pair
        self.keys = itertools.count(1)
        self.pg_w = pair.pg.connect()
        self.my_w = pair.maria.connect()
        self.pg_r = pair.pg.connect()
        self.my_r = pair.maria.connect()
        with self.pg_r.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
        with self.my_r.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        self.written: list[tuple[Case, int, Any]] = []
        self.started = False  # the daemon: started by the first test that needs it (after the sync's rows)

    def close(self) -> None:
        for conn in (self.pg_w, self.my_w, self.pg_r, self.my_r):
            conn.close()

    # ---------------------------------------------------------------- the source
    def write(self, case: Case, value: Any, pg_zone: str, my_zone: str) -> int | None:
        """Insert `value` on the case's source; its key, or None when the source refuses it."""
        key = next(self.keys)
        try:
            if case.way == "p2m":
                with self.pg_w.cursor() as cur:
                    cur.execute("SET TimeZone = %s", (pg_zone if case.zone else "UTC",))
                    cur.execute(f"INSERT INTO {case.name} (id, c) VALUES (%s, %s)", (key, pg_literal(value)))
            else:
                with self.my_w.cursor() as cur:
                    cur.execute("SET time_zone = %s", (my_zone if case.zone else "+00:00",))
                    cur.execute(f"INSERT INTO {case.name} (id, c) VALUES (%s, %s)", (key, value))
        except Exception:  # the source server's own refusal (strict mode, a bad literal): not carried at all
            if case.way == "p2m":
                self.pg_w.rollback()
            return None
        self.written.append((case, key, value))
        return key

    def read(self, case: Case, side: str, key: int) -> tuple[bool, Any]:
        conn, expr = (self.pg_r, case.read_pg) if side == "pg" else (self.my_r, case.read_my)
        with conn.cursor() as cur:
            cur.execute(f"SELECT {expr} FROM {case.name} WHERE id = %s", (key,))
            rows = cur.fetchall()
        return (True, rows[0][0]) if rows else (False, None)

    # ---------------------------------------------------------------- the target
    def queued(self) -> dict[tuple[str, int], tuple[str, str]]:
        """(table, key) -> (error, class) of both dead-letter queues."""
        out = {}
        for rows in (self.pair.pg_query("SELECT target_table, target_key, error, error_class "
                                        "FROM replicator.dead_letter"),
                     self.pair.my_query(f"SELECT target_table, target_key, error, error_class "
                                        f"FROM `{self.pair.state_schema}`.dead_letter")):
            for table, key, error, cls in rows:
                out[(table.rsplit(".", 1)[-1].strip('"`'), int(key.strip("[]")))] = (error, cls)
        return out

    def settle(self, rows: list[tuple[Case, int, Any]], timeout: float = 90) -> dict:
        """Wait until every row is on its target or queued; the queue."""
        def done() -> Any:
            assert self.pair.proc is not None and self.pair.proc.poll() is None, \
                f"the daemon stopped:\n{self.pair.log()[-4000:]}"
            queue = self.queued()
            for case, key, _ in rows:
                if (case.name, key) not in queue and not self.read(case, "my" if case.way == "p2m" else "pg", key)[0]:
                    return None
            return queue or {"": ""}
        return wait_until(done, timeout, "every row on its target or in a dead-letter queue")

    def judge(self, rows: list[tuple[Case, int, Any]], queue: dict) -> list[str]:
        problems = []
        for case, key, written in rows:
            try:
                problem = self._judge(case, key, queue)
            except Exception:
                problem = f"cannot judge: {traceback.format_exc(limit=3)}"
            if problem:
                problems.append(f"{case.name} {case.my} <- {case.pg}" if case.way == "p2m" else
                                f"{case.name} {case.my} -> {case.pg}")
                problems[-1] += f" key {key}, wrote {written!r:.120}: {problem}"
        return problems

    def _judge(self, case: Case, key: int, queue: dict) -> str | None:
        src_side, dst_side = ("my", "pg") if case.way == "m2p" else ("pg", "my")
        _, raw = self.read(case, src_side, key)
        src = case.norm_src(raw)
        holds = case.holds(src)
        want = case.arrives(src)
        there, got = self.read(case, dst_side, key)
        if (case.name, key) in queue:
            error, cls = queue[(case.name, key)]
            if holds:
                return f"stored {raw!r:.100} fits, but was queued ({cls}): {error[:300]}"
            named = f"key ({key},), column c" in error and case.name in error
            return None if named else f"queued without naming table, key and column: {error[:300]}"
        if not there:
            return f"stored {raw!r:.100}: neither arrived nor queued"
        dst = case.norm_dst(got)
        if not holds:
            return f"stored {raw!r:.100} ({src!r:.100}) should have been refused, arrived as {got!r:.100}"
        if dst != want:
            return f"stored {raw!r:.100}, arrived {got!r:.100}: {want!r:.100} != {dst!r:.100}"
        return None


@pytest.fixture(scope="module")
def world(pg_server, maria_server, tmp_path_factory) -> Iterator[World]:
    pg_db = pg_server.create_database(f"t_values_{os.getpid()}")
    my_db = maria_server.create_database(f"t_values_{os.getpid()}")
    tmp = tmp_path_factory.mktemp("values")
    pg_sql = ["CREATE TYPE mood AS ENUM ('a', 'b c', 'é')",
              # the server's zone for its sessions: one with DST and a half-hour offset
              f"ALTER DATABASE {pg_db.dbname} SET TimeZone = 'America/St_Johns'"]
    pg_sql += [f"CREATE TABLE {c.name} (id int PRIMARY KEY, c {c.pg})" for c in CASES]
    my_sql = [f"CREATE TABLE {c.name} (id INT PRIMARY KEY, c {c.my}) CHARACTER SET utf8mb4" for c in CASES]
    pg_sql += [f"CREATE TABLE k{i} (k {pg} PRIMARY KEY, n int)" for i, (_, pg, _) in enumerate(KEYS)]
    my_sql += [f"CREATE TABLE k{i} (k {my} PRIMARY KEY, n INT) CHARACTER SET utf8mb4"
               for i, (_, _, my) in enumerate(KEYS)]
    for db, statements in ((pg_db, pg_sql), (my_db, my_sql)):
        conn = db.connect()
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        conn.close()
    pair = Pair(tmp, pg_db, my_db, "mappings:\n" + "".join(mapping(c) for c in CASES)
                + "".join(key_mapping(i, way) for i, (way, _, _) in enumerate(KEYS)), "on_error: quarantine\n")
    w = World(pair)
    yield w
    w.close()
    pair.stop()
    pair.close()
    pg_server.drop_database(pg_db.dbname)
    maria_server.drop_database(my_db.dbname)


def start(world: World) -> None:
    if not world.started:
        world.pair.setup()
        os.environ["TZ"] = "Pacific/Chatham"  # the daemon's own zone never matters (+12:45/+13:45)
        try:
            world.pair.start()
        finally:
            os.environ.pop("TZ")
        world.started = True
        names = [c.name for c in CASES] + [f"k{i}" for i in range(len(KEYS))]
        wait_until(lambda: all(f"sync of {name} done" in world.pair.log() for name in names)
                   or world.pair.proc.poll() is not None, 120, "the first sync")


def draw_rows(world: World, data: st.DataObject) -> list[tuple[Case, int, Any]]:
    pg_zone = data.draw(st.sampled_from(PG_ZONES), label="PostgreSQL session TimeZone")
    my_zone = data.draw(st.sampled_from(MY_ZONES), label="MariaDB session time_zone")
    rows = []
    for case in CASES:
        value = data.draw(case.values, label=f"{case.name} {case.my} / {case.pg}")
        key = world.write(case, value, pg_zone, my_zone)
        if key is not None:
            rows.append((case, key, value))
    return rows


def test_check_gives_each_pair_its_verdict(world: World) -> None:
    out = world.pair.cli("check", check=False)
    text = out.stdout + out.stderr
    got = {}
    for case in CASES:
        # (the cast's verdict: the zero-date warning is the server's sql_mode, not the pair's; test_types.py)
        lines = [line for line in text.splitlines() if re.search(rf"mappings\.{case.name}\.fields\.c[:.]", line)
                 and "allows zero dates" not in line]
        got[case.name] = ("refused" if any("[FAIL]" in x for x in lines) else
                          "warning" if any("[warn]" in x for x in lines) else "fit")
    wrong = {f"{c.name} {c.way} {c.my} / {c.pg}": (got[c.name], c.verdict) for c in CASES if got[c.name] != c.verdict}
    wrong.update({f"k{i} {k}": "not fit" for i, k in enumerate(KEYS)
                  if re.search(rf"\[(FAIL|warn)\].*mappings\.k{i}\.", text)})
    assert wrong == {}, f"(check says, the case says): {wrong}\n{text[-3000:]}"
    # (before `setup`: the slot and the publication are not there yet; no field is refused)
    assert [x for x in text.splitlines() if x.startswith("[FAIL]") and ".fields." in x] == []


def test_values_copied_by_the_initial_sync(world: World) -> None:
    """Rows written before the first run: the table scanners read them, the appliers write them; a value the
    target cannot hold is queued like a streamed one (it stopped the copy, `on_error: quarantine` or not)."""
    assert not world.started, "run this file from its first test"
    @SYNC_SETTINGS
    @given(st.data())
    def write(data: st.DataObject) -> None:
        draw_rows(world, data)
    write()
    rows = list(world.written)  # (with the rows of an example Hypothesis cut short: they are in the tables)
    start(world)
    assert world.pair.proc.poll() is None, world.pair.log()[-4000:]
    problems = world.judge(rows, world.settle(rows))
    assert problems == [], "\n".join(problems)


def test_values_streamed(world: World) -> None:
    """Rows written while the daemon runs: the binlog and WAL decoders read them."""
    start(world)

    @SETTINGS
    @given(st.data())
    def carry(data: st.DataObject) -> None:
        rows = draw_rows(world, data)
        problems = world.judge(rows, world.settle(rows))
        assert problems == [], "\n".join(problems)
    carry()



def test_mariadb_text_with_nul_is_queued_naming_table_key_and_column(world: World) -> None:
    """Not left to the draw: a NUL in each MariaDB text type into PostgreSQL text (a documented exception: the pair is fit by `check`, docs/types.md) is
    a row error naming table, key and column, queued under `on_error: quarantine` while the stream goes on."""
    start(world)
    def refuses_nul(case: Case) -> bool:
        try:
            return not case.holds("a\x00b")
        except (TypeError, ValueError, AttributeError):  # a case of numbers, dates...
            return False
    cases = [c for c in CASES if c.way == "m2p" and c.my.startswith(("VARCHAR", "CHAR", "TEXT")) and refuses_nul(c)]
    assert len(cases) >= 6, [c.name for c in cases]
    rows = []
    for case in cases:
        for value in ("\x00", "a\x00b"):
            key = world.write(case, value, "UTC", "+00:00")
            assert key is not None, f"MariaDB {case.my} refused {value!r}"
            rows.append((case, key, value))
    fine = world.write(cases[0], "after", "UTC", "+00:00")  # the stream goes on past the queued rows
    assert fine is not None
    queue = world.settle(rows + [(cases[0], fine, "after")])
    assert world.judge(rows, queue) == []
    assert all((case.name, key) in queue for case, key, _ in rows), "a NUL arrived or vanished"
    assert world.read(cases[0], "pg", fine) == (True, "after")

def test_keys_a_collation_folds_stay_apart(world: World) -> None:
    """Text keys that differ only in case, accents or trailing spaces: each source row arrives as its own row
    with its own key, exactly (a CHAR's pad spaces aside), whatever the source's collation made one."""
    start(world)
    examples = itertools.count()

    @SETTINGS
    @given(st.data())
    def keys(data: st.DataObject) -> None:
        prefix = f"{next(examples)}:"
        for i, (way, _, _) in enumerate(KEYS):
            texts = data.draw(st.lists(KEY_TEXT, max_size=6, unique=True), label=f"k{i} keys")
            conn = world.my_w if way == "m2p" else world.pg_w
            for n, text in enumerate(texts):
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"INSERT INTO k{i} (k, n) VALUES (%s, %s)", (prefix + text, n))
                except Exception:  # one key already under the source's own collation
                    if way == "p2m":
                        conn.rollback()
        for i, (way, _, my) in enumerate(KEYS):
            src, dst = (world.my_r, world.pg_r) if way == "m2p" else (world.pg_r, world.my_r)
            pad = my.startswith("CHAR")

            def rows(conn: Any) -> list[tuple[str, int]]:
                with conn.cursor() as cur:  # not `LIKE 'p%'`: MariaDB 10.11's misses '6:😀' under utf8mb4_nopad_bin
                    cur.execute(f"SELECT k, n FROM k{i}")
                    return sorted((k.rstrip(" ") if pad else k, n) for k, n in cur.fetchall() if k.startswith(prefix))
            want = rows(src)
            try:
                (got,) = wait_until(lambda: (lambda r: (r,) if len(r) >= len(want) else None)(rows(dst)), 60,
                                    f"the keys of k{i} on the target")
            except AssertionError:
                raise AssertionError(f"k{i} {KEYS[i]}: source keys {want}, target keys {rows(dst)}, queued "
                                     f"{[v for (t, _), v in world.queued().items() if t == f'k{i}']}") from None
            assert got == want, f"k{i} {KEYS[i]}: source keys {want}, target keys {got}"
    keys()


def test_verify_agrees_then_finds_every_altered_value(world: World) -> None:
    start(world)
    world.settle(world.written)
    out = world.pair.cli("verify", check=False)
    assert out.returncode == 0 and "the sides agree" in out.stdout, out.stdout[-6000:] + out.stderr
    queue = world.queued()
    altered = []
    for case in CASES:
        keys = [k for c, k, _ in world.written if c is case and (c.name, k) not in queue]
        if not keys:
            continue
        key = keys[-1]
        if nudge(world, case, key):
            altered.append((case, key))
    assert len(altered) > len(CASES) // 2, f"too few values to alter: {len(altered)} (run the whole file)"
    out = world.pair.cli("verify", check=False)
    report = out.stdout + out.stderr
    missed = [f"{c.name} {c.my} / {c.pg} key {k}" for c, k in altered
              if not re.search(rf"\b{c.name}\b.*\b{k}\b.*differs", report)]
    assert missed == [], f"verify called an altered value equal: {missed}\n{report[-4000:]}"


def nudge(world: World, case: Case, key: int) -> bool:
    """Change the target value by the least step its type has (one ulp, one microsecond, a trailing space...);
    False when the type has no such step here."""
    side = "my" if case.way == "p2m" else "pg"
    conn = world.my_r if side == "my" else world.pg_r
    with conn.cursor() as cur:
        cur.execute(f"SELECT c FROM {case.name} WHERE id = %s", (key,))
        (value,) = cur.fetchone()
    target_type = (case.my if side == "my" else case.pg).lower()
    new: Any
    if value is None:
        return False
    if isinstance(value, bool):
        new = not value
    elif isinstance(value, int):
        new = value + 1 if value < 0 or "year" in target_type else value - 1 if value > 0 else 1
        if "bit" in target_type:
            return False
    elif isinstance(value, float):
        if not math.isfinite(value):
            return False
        # a float32 target by a float32 step; a double, one holding a copied float32 too, by one ulp
        if target_type.startswith(("real", "float")):
            bits = struct.unpack("<I", struct.pack("<f", value))[0]
            new = struct.unpack("<f", struct.pack("<I", bits ^ 1))[0]
        else:
            new = math.nextafter(value, 0.0) if value else 5e-324
    elif isinstance(value, Decimal):
        if not value.is_finite():
            return False
        step = Decimal(1).scaleb(value.as_tuple().exponent)
        with localcontext() as exact:  # (the default 28 digits would round 65 back to the value itself)
            exact.prec = 100
            new = value - step if value > 0 else value + step
    elif isinstance(value, str):
        if target_type.startswith(("enum", "json", "inet", "uuid", "char(36)", "bit", "set")) or \
                target_type in ("text",) and case.my.startswith(("ENUM", "SET")):
            return False
        if "char(" in target_type and "var" not in target_type:
            new = [value.rstrip(" ") + "x" if len(value.rstrip(" ")) < 10 else "x" + value[1:]]
        else:  # a trailing space first: a PAD SPACE collation compares it equal
            new = [value + " ", value[:-1] + ("x" if value[-1:] != "x" else "y")]
    elif isinstance(value, datetime):
        step = timedelta(microseconds=1 if "(6)" in target_type else 1000 if "(3)" in target_type else 10 ** 6)
        new = value - step if value.year > 1 else value + step
    elif isinstance(value, date):
        new = value - timedelta(days=1) if value.year > 1 else value + timedelta(days=1)
    elif isinstance(value, timedelta):
        if "(0)" in target_type:
            return False
        new = value - timedelta(microseconds=1) if value > timedelta(0) else value + timedelta(microseconds=1)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if target_type == "binary(16)":
            new = raw[:-1] + bytes([raw[-1] ^ 1])
        else:  # a trailing zero byte first: a BINARY would pad with them
            new = [raw + b"\x00", raw[:-1]] if raw else [b"\x00"]
    else:
        return False
    for candidate in new if isinstance(new, list) else [new]:
        try:
            with conn.cursor() as cur:
                cur.execute(f"UPDATE {case.name} SET c = %s WHERE id = %s", (candidate, key))
            return True
        except Exception:  # the target's own limit (a VARCHAR(40) holding 40 characters): the next nudge
            continue
    return False
