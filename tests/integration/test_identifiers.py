"""Identifiers that need quoting, through a real round trip: table and column names with backticks,
double quotes, single quotes, spaces, percent signs, non-ASCII letters and reserved words, on both
sides, through `check`, `setup`, the initial sync, the stream in both directions, `verify` and
`explain`. Wherever replicator builds SQL, each name goes through its dialect's quoting function."""
from __future__ import annotations

import json

from tests.integration.harness import wait_until

KEY = "k`ey"
COLUMNS = [KEY, "a`b", 'q"d', "it's", "two words", "naïve ü", "select", "50%s"]
OTHERS = COLUMNS[1:]
PG_TABLE = 'Odd "T" é'
MY_TABLE = "odd`t é"


def pg_ident(name: str) -> str:
    """Quoted, and % doubled: every statement below runs with parameters."""
    return ('"' + name.replace('"', '""') + '"').replace("%", "%%")


def my_ident(name: str) -> str:
    return ("`" + name.replace("`", "``") + "`").replace("%", "%%")


def yaml_str(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)  # a JSON string is a YAML string


PG_SQL = (f"CREATE TABLE {pg_ident(PG_TABLE)} ({pg_ident(KEY)} int PRIMARY KEY, "
          + ", ".join(f"{pg_ident(c)} varchar(100)" for c in OTHERS) + ")").replace("%%", "%")
MY_SQL = (f"CREATE TABLE {my_ident(MY_TABLE)} ({my_ident(KEY)} INT PRIMARY KEY, "
          + ", ".join(f"{my_ident(c)} VARCHAR(100) CHECK ({my_ident(c)} <> 'x')" for c in OTHERS)
          + ")").replace("%%", "%")
MAPPINGS = ("mappings:\n  odd:\n    direction: both\n"
            f"    crm: {{table: {yaml_str(PG_TABLE)}, key: [{yaml_str(KEY)}]}}\n"
            f"    erp: {{table: {yaml_str(MY_TABLE)}, key: [{yaml_str(KEY)}]}}\n"
            "    fields:\n" + "".join(f"      {yaml_str(c)}: ~\n" for c in COLUMNS))
PG_COLS = ", ".join(pg_ident(c) for c in COLUMNS)
MY_COLS = ", ".join(my_ident(c) for c in COLUMNS)
MARKS = ", ".join(["%s"] * len(COLUMNS))


def pg_rows(pair) -> list[tuple]:
    return sorted(pair.pg_query(f"SELECT {PG_COLS} FROM {pg_ident(PG_TABLE)}", ()))


def my_rows(pair) -> list[tuple]:
    return sorted(pair.my_query(f"SELECT {MY_COLS} FROM {my_ident(MY_TABLE)}", ()))


def row(key: int, tag: str) -> tuple:
    return (key,) + tuple(f"{tag} {c} '\"` %s é" for c in OTHERS)


def test_odd_identifiers_round_trip(make_pair) -> None:
    pair = make_pair(PG_SQL, MY_SQL, MAPPINGS, setup=False)
    # rows that exist before the first run: copied by the initial sync (the table scanners)
    pair.pg_query(f"INSERT INTO {pg_ident(PG_TABLE)} ({PG_COLS}) VALUES ({MARKS})", row(1, "pg"))
    pair.my_query(f"INSERT INTO {my_ident(MY_TABLE)} ({MY_COLS}) VALUES ({MARKS})", row(2, "my"))

    check = pair.cli("check", check=False)
    out = check.stdout + check.stderr
    # setup has not run yet: no slot, publication, REPLICA IDENTITY FULL or conflicts table; all else passes
    before_setup = ("slot", "publication", "REPLICA IDENTITY", "conflicts")
    about = [line for line in out.splitlines() if line.startswith(("[FAIL]", "[warn]"))
             and not any(s in line for s in before_setup)]
    assert about == [], out
    assert not [line for line in out.splitlines() if "column" in line and "does not exist" in line], out
    assert "``" not in out and "['k`ey']" in out, out  # the key as it is spelled

    pair.setup()
    pair.start()
    def synced() -> bool:
        assert pair.proc.poll() is None, f"the daemon stopped:\n{pair.log()[-3000:]}"
        return len(pg_rows(pair)) == 2 and len(my_rows(pair)) == 2
    wait_until(synced, 60, "the synced rows on both sides")
    assert pg_rows(pair) == my_rows(pair) == sorted([row(1, "pg"), row(2, "my")])

    # the stream, both ways: insert, update, delete
    pair.pg_query(f"INSERT INTO {pg_ident(PG_TABLE)} ({PG_COLS}) VALUES ({MARKS})", row(3, "pg"))
    pair.my_query(f"INSERT INTO {my_ident(MY_TABLE)} ({MY_COLS}) VALUES ({MARKS})", row(4, "my"))
    sets = ", ".join(f"{pg_ident(c)} = %s" for c in OTHERS)
    pair.pg_query(f"UPDATE {pg_ident(PG_TABLE)} SET {sets} WHERE {pg_ident(KEY)} = 2", row(2, "pg2")[1:])
    pair.my_query(f"DELETE FROM {my_ident(MY_TABLE)} WHERE {my_ident(KEY)} = 1", ())
    want = sorted([row(2, "pg2"), row(3, "pg"), row(4, "my")])
    wait_until(lambda: pg_rows(pair) == want and my_rows(pair) == want, 60, "the streamed changes on both sides")
    assert pair.metric("replicator_errors_total") == 0
    pair.stop()

    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0 and "the sides agree" in verify.stdout, verify.stdout + verify.stderr
    explain = pair.cli("explain", "--mapping", "odd", "--side", "crm", "--key", "3", "--json", check=False)
    assert explain.returncode == 0, explain.stdout + explain.stderr
    assert "pg 50%s '\\\"` %s é" in json.dumps(json.loads(explain.stdout), ensure_ascii=False), explain.stdout
