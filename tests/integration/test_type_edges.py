"""Type edges found by probing schemas no other test used (docs/types.md, "Edges found by probing"):
each value arrives exactly, or `check` / a named error says why not.
"""
from __future__ import annotations

import pytest

from tests.integration.harness import wait_until

# every byte but NUL (PostgreSQL text holds no NUL): MariaDB's latin1 reads each as one character, the
# five cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) as the C1 controls of the same number
LATIN1_BYTES = bytes(range(1, 256))

PG_LATIN1 = "CREATE TABLE l1 (id int PRIMARY KEY, v text, c char(10))"
MY_LATIN1 = ("CREATE TABLE l1 (id INT PRIMARY KEY, v VARCHAR(300) CHARACTER SET latin1, "
             "c CHAR(10) CHARACTER SET latin1)")
MAP_LATIN1 = """
mappings:
  l1:
    direction: both
    crm: {table: l1, key: [id]}
    erp: {table: l1, key: [id]}
    fields: {id: ~, v: ~, c: ~}
"""


def _my_text(pair, key: int) -> tuple[str, str]:
    """The row's values as MariaDB itself converts them to Unicode."""
    return tuple(pair.my_query("SELECT CONVERT(v USING utf8mb4), CONVERT(c USING utf8mb4) FROM l1 WHERE id = %s",
                               (key,))[0])


def test_every_latin1_byte_arrives_as_mariadb_reads_it_and_comes_back(make_pair) -> None:
    pair = make_pair(PG_LATIN1, MY_LATIN1, MAP_LATIN1, setup=False)
    # row 1 before the first run (copied by the initial sync, the table scanner), row 2 streamed (binlog)
    pair.my_query("INSERT INTO l1 VALUES (1, %s, %s)", (LATIN1_BYTES, b"\x81\x8d\x8f\x90\x9d"))
    pair.setup()
    pair.start()
    wait_until(lambda: "sync of l1 done" in pair.log(), 60, "the first sync")
    pair.my_query("INSERT INTO l1 VALUES (2, %s, %s)", (LATIN1_BYTES[::-1], b"\x80\x9f\xff"))
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM l1")[0][0] == 2 or pair.proc.poll() is not None, 60,
               "both rows on PostgreSQL")
    assert pair.proc.poll() is None, pair.log()[-3000:]
    for key in (1, 2):  # a CHAR's pad spaces are no part of its value
        assert pair.pg_query("SELECT v, rtrim(c) FROM l1 WHERE id = %s", (key,))[0] == _my_text(pair, key)
    assert "\x81" in pair.pg_query("SELECT v FROM l1 WHERE id = 1")[0][0]
    # and back: the C1 characters become the same latin1 bytes again
    pair.pg_query("UPDATE l1 SET v = %s WHERE id = 1", ("\x81€\x9dÿ",))
    wait_until(lambda: pair.my_query("SELECT HEX(v) FROM l1 WHERE id = 1")[0][0] == "81809DFF",
               60, "the update on MariaDB")
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0 and "the sides agree" in verify.stdout, verify.stdout[-3000:] + verify.stderr
    assert pair.metric("replicator_errors_total") == 0


MY_GEOMETRY = "CREATE TABLE g (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET latin1, pt POINT, n INT)"
MAP_GEOMETRY = MAP_LATIN1.replace("l1", "g").replace("v: ~, c: ~", "v: ~")


def test_a_latin1_byte_mysql_replication_cannot_read_stops_naming_table_key_and_column(make_pair) -> None:
    """A table the fast decoder does not take (a GEOMETRY column) is decoded by mysql-replication, whose
    cp1252 has no character for 0x81: the stream stops naming the table, the key (its rows read again with
    the byte kept: sources/libraryrows.py) and the column, not a traceback."""
    pair = make_pair("CREATE TABLE g (id int PRIMARY KEY, v text)", MY_GEOMETRY, MAP_GEOMETRY)
    pair.start()
    pair.my_query("INSERT INTO g (id, v, n) VALUES (1, %s, 1)", (b"a\x81",))
    assert pair.wait_exit(60) != 0
    stopped = [line for line in pair.log().splitlines() if "stopped on" in line]
    # (mysql-replication names latin1 by its Python codec, cp1252)
    assert stopped and (f"table {pair.maria.dbname}.g, key (1,), column v: a value is not text of its character "
                        f"set cp1252 (byte b'\\x81'") in stopped[-1], pair.log()[-3000:]
    assert "on_error: quarantine" in stopped[-1] and "Traceback" not in pair.log()


def test_a_latin1_byte_mysql_replication_cannot_read_is_quarantined(make_pair) -> None:
    """The same table under `on_error: quarantine`: the row is queued (class undecodable) with its key, the
    other rows of its event are written and the stream goes on, as for the fast decoder's own tables."""
    pair = make_pair("CREATE TABLE g (id int PRIMARY KEY, v text)", MY_GEOMETRY,
                     MAP_GEOMETRY.replace("    direction: both\n", "    direction: both\n    on_error: quarantine\n"),
                     "sync: {on_first_run: false}\n")
    pair.start()
    my = pair.maria.connect(autocommit=False)
    try:
        with my.cursor() as cur:  # one transaction, one rows event: the bad row in the middle
            cur.execute("INSERT INTO g (id, v, n) VALUES (1, 'one', 1), (2, %s, 2), (3, 'three', 3)", (b"b\x81",))
        my.commit()
    finally:
        my.close()
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM g")[0][0] == 2, 60, "the two good rows")
    queued = pair.pg_query("SELECT target_key, op, error_class, error FROM replicator.dead_letter ORDER BY id")
    assert [tuple(r[:3]) for r in queued] == [("[2]", "insert", "undecodable")], queued
    assert queued[0][3].startswith(f"table {pair.maria.dbname}.g, key (2,), column v: a value is not text of its "
                                   f"character set cp1252 (byte b'\\x81'"), queued[0][3]
    pair.my_query("INSERT INTO g (id, v, n) VALUES (4, 'four', 4)")  # the stream goes on
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM g")[0][0] == 3, 60, "a later row")
    assert pair.pg_query("SELECT id, v FROM g ORDER BY id") == [(1, "one"), (3, "three"), (4, "four")]
    assert "Traceback" not in pair.log()
    assert pair.stop() == 0


# (MariaDB type, PostgreSQL type, direction, what `check` says): pairs `check` passed as fit although values
# arrived altered (CHAR(n) drops trailing spaces, YEAR 0000 as 1900) or every / some value stopped the stream
CHECK_EDGES = [
    ("CHAR(10)", "varchar(10)", "crm_to_erp", "refused"),  # 'a ' read back as 'a'
    ("VARCHAR(10)", "char(10)", "erp_to_crm", "refused"),
    ("CHAR(10)", "char(10)", "crm_to_erp", "fit"),
    ("VARCHAR(20) CHARACTER SET latin1", "varchar(20)", "crm_to_erp", "warning"),  # '漢' refused by the server
    ("VARCHAR(20) CHARACTER SET utf8mb3", "varchar(20)", "crm_to_erp", "warning"),  # emoji
    ("VARCHAR(20) CHARACTER SET latin1", "varchar(20)", "erp_to_crm", "fit"),
    ("TEXT", "text", "crm_to_erp", "warning"),  # 65,535 bytes at most
    ("TEXT", "varchar(16383)", "crm_to_erp", "fit"),
    ("TINYTEXT", "varchar(255)", "crm_to_erp", "warning"),  # 255 bytes, not characters
    ("LONGTEXT", "text", "crm_to_erp", "fit"),
    ("TIME(6)", "timetz(6)", "crm_to_erp", "refused"),  # '12:00:00+05' is no TIME
    ("YEAR", "smallint", "erp_to_crm", "fit"),
    ("YEAR", "smallint", "crm_to_erp", "warning"),
    ("BOOLEAN", "boolean", "erp_to_crm", "warning"),  # 2 is a TINYINT(1) value
    ("BOOLEAN CHECK (c14 IN (0, 1))", "boolean", "erp_to_crm", "fit"),
    ("UUID", "varchar(36)", "erp_to_crm", "refused"),  # 16 bytes on the stream
    ("UUID", "uuid", "erp_to_crm", "fit"),
    # the binlog reader reads member names as UTF-8: a latin1 'é' arrived as ''
    ("ENUM('é','a') CHARACTER SET latin1", "text", "erp_to_crm", "refused"),
    ("SET('é','a') CHARACTER SET latin1", "text", "erp_to_crm", "refused"),
    ("ENUM('b','a') CHARACTER SET latin1", "text", "erp_to_crm", "fit"),
    ("ENUM('é','a')", "text", "erp_to_crm", "fit"),
    ("BLOB", "bytea", "crm_to_erp", "warning"),  # 65,535 bytes at most
    ("LONGBLOB", "bytea", "crm_to_erp", "fit"),
    ("BLOB", "bytea", "erp_to_crm", "fit"),
    # PostgreSQL money travels as its lc_monetary text ('$12.34'): every value was a row error, check said
    # "not checked"
    ("DECIMAL(15,2)", "money", "crm_to_erp", "refused"),
    ("DOUBLE", "money", "crm_to_erp", "refused"),
    ("VARCHAR(40)", "money", "crm_to_erp", "warning"),  # the text as PostgreSQL shows it: not checked
]


def test_check_verdicts_of_the_edges_found_by_probing(make_pair) -> None:
    import re

    pg_cols = ", ".join(f"c{i} {pg}" for i, (_, pg, _, _) in enumerate(CHECK_EDGES))
    my_cols = ", ".join(f"c{i} {my}" for i, (my, _, _, _) in enumerate(CHECK_EDGES))
    body = "mappings:\n"
    for way in ("crm_to_erp", "erp_to_crm"):
        fields = "\n".join(f"      c{i}: ~" for i, c in enumerate(CHECK_EDGES) if c[2] == way)
        body += (f"  {way}:\n    direction: {way}\n    crm: {{table: e, key: [id]}}\n"
                 f"    erp: {{table: e, key: [id]}}\n    fields:\n      id: ~\n{fields}\n")
    pair = make_pair(f"CREATE TABLE e (id int PRIMARY KEY, {pg_cols})",
                     f"CREATE TABLE e (id INT PRIMARY KEY, {my_cols}) CHARACTER SET utf8mb4", body)
    result = pair.cli("check", check=False)
    out = result.stdout + result.stderr
    got = {}
    for i, (_, _, way, _) in enumerate(CHECK_EDGES):
        # (the cast's verdict: the zero-date warning is the server's sql_mode, not the pair's; test_types.py)
        lines = [line for line in out.splitlines() if re.search(rf"mappings\.{way}\.fields\.c{i}[:.]", line)
                 and "allows zero dates" not in line]
        got[i] = "refused" if any("[FAIL]" in line for line in lines) else \
            "warning" if any("[warn]" in line for line in lines) else "fit"
    wrong = {CHECK_EDGES[i][:3]: (got[i], CHECK_EDGES[i][3]) for i in got if got[i] != CHECK_EDGES[i][3]}
    assert wrong == {}, f"(check says, expected):\n{wrong}\n{out}"
    # the money refusal names the mapping file's line, both columns, and the fix
    i = next(i for i, c in enumerate(CHECK_EDGES) if c[:2] == ("DECIMAL(15,2)", "money"))
    line = next(line for line in out.splitlines() if f"mappings.crm_to_erp.fields.c{i}" in line and "[FAIL]" in line)
    assert re.search(rf"\.yaml:\d+: mappings\.crm_to_erp\.fields\.c{i}: crm:public\.e\.c{i} MONEY -> ", line), line
    assert "lc_monetary text" in line and f"USING c{i}::numeric" in out, out


PG_BITS = """CREATE TABLE bits (id int PRIMARY KEY, b bit(8), vb bit varying(20), y smallint, flag boolean);
CREATE TABLE nets (id int PRIMARY KEY, n6 cidr, n4 inet)"""
MY_BITS = """CREATE TABLE bits (id INT PRIMARY KEY, b BIT(8), vb BIT(20), y YEAR, flag BIT(1));
CREATE TABLE nets (id INT PRIMARY KEY, n6 INET6, n4 INET4)"""
MAP_BITS = """
mappings:
  bits:
    direction: both
    crm: {table: bits, key: [id]}
    erp: {table: bits, key: [id]}
    fields: {id: ~, b: ~, vb: {lossy: allow}, y: {lossy: allow}, flag: ~}
  nets:
    direction: erp_to_crm
    crm: {table: nets, key: [id]}
    erp: {table: nets, key: [id]}
    fields: {id: ~, n6: ~, n4: ~}
"""


def test_bits_years_and_addresses_arrive_exactly_both_ways(make_pair) -> None:
    """BIT(n) <-> bit(n) (PostgreSQL's digits became the bytes of their characters: 'Data too long'), YEAR 0000
    (it arrived as 1900), and INET6/INET4 into cidr/inet (verify saw ::1/128 as a difference)."""
    pair = make_pair(PG_BITS, MY_BITS, MAP_BITS)
    pair.start()
    pair.my_query("INSERT INTO bits VALUES (1, b'00000101', b'1', 0, b'1'), (2, b'11111111', b'0', 2155, b'0'), "
                  "(3, b'0', b'11111111111111111111', 1901, NULL)")
    pair.my_query("INSERT INTO nets VALUES (1, '::1', '1.2.3.4'), (2, '::', '0.0.0.0'), (3, 'ffff::1', NULL)")
    pair.pg_query("INSERT INTO bits VALUES (11, B'10000000', B'00000000000000000001', 0, true), "
                  "(12, B'00000000', B'00000000000000000000', 2000, false)")

    def arrived() -> bool:
        assert pair.proc.poll() is None, pair.log()[-3000:]
        return (pair.pg_query("SELECT count(*) FROM bits")[0][0] == 5 and
                pair.my_query("SELECT count(*) FROM bits")[0][0] == 5 and
                pair.pg_query("SELECT count(*) FROM nets")[0][0] == 3)
    wait_until(arrived, 60, "every row on both sides")
    pg = {r[0]: r[1:] for r in pair.pg_query("SELECT id, b::text, vb::text, y FROM bits")}
    my = {r[0]: r[1:] for r in pair.my_query("SELECT id, BIN(b), BIN(vb), CAST(y AS UNSIGNED) FROM bits")}
    assert pg == {1: ("00000101", "00000000000000000001", 0), 2: ("11111111", "00000000000000000000", 2155),
                  3: ("00000000", "11111111111111111111", 1901), 11: ("10000000", "00000000000000000001", 0),
                  12: ("00000000", "00000000000000000000", 2000)}
    assert {k: (int(b, 2), int(vb, 2), y) for k, (b, vb, y) in my.items()} == \
        {k: (int(b, 2), int(vb, 2), y) for k, (b, vb, y) in pg.items()}
    # a boolean into a BIT(1) and back (verify compared true with '1' as a difference)
    assert pair.pg_query("SELECT id, flag FROM bits ORDER BY id") == \
        [(1, True), (2, False), (3, None), (11, True), (12, False)]
    assert pair.my_query("SELECT id, flag + 0 FROM bits ORDER BY id") == \
        [(1, 1), (2, 0), (3, None), (11, 1), (12, 0)]
    assert pair.pg_query("SELECT id, n6::text, host(n4) FROM nets ORDER BY id") == \
        [(1, "::1/128", "1.2.3.4"), (2, "::/128", "0.0.0.0"), (3, "ffff::1/128", None)]
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0 and "the sides agree" in verify.stdout, verify.stdout[-3000:] + verify.stderr
    assert pair.metric("replicator_errors_total") == 0


def test_check_warns_of_a_key_collation_that_folds_source_keys(make_pair) -> None:
    """PostgreSQL keys 'a' and 'A ' are two rows; under MariaDB's utf8mb4_general_ci (or any PAD SPACE
    collation) they are one, and the second upsert overwrites the first: `check` says so, naming the
    collation; a _nopad_bin key column compares exactly."""
    pair = make_pair("CREATE TABLE k (code varchar(20) PRIMARY KEY, v int);"
                     "CREATE TABLE x (code varchar(20) PRIMARY KEY, v int)",
                     "CREATE TABLE k (code VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT);"
                     "CREATE TABLE x (code VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, v INT)",
                     "mappings:\n" + "".join(
                         f"  {t}:\n    direction: crm_to_erp\n    crm: {{table: {t}, key: [code]}}\n"
                         f"    erp: {{table: {t}, key: [code]}}\n    fields: {{code: ~, v: ~}}\n" for t in ("k", "x")))
    out = pair.cli("check", check=False).stdout
    warned = [line for line in out.splitlines() if line.startswith("[warn]") and ".fields.code" in line]
    assert len(warned) == 1 and "mappings.k.fields.code" in warned[0], out
    assert "differ only in letter case, accents or trailing spaces are one row under utf8mb4_general_ci" in warned[0]
    assert "COLLATE utf8mb4_nopad_bin" in out.split(warned[0], 1)[1].lstrip("\n").splitlines()[0]  # the fix


def test_a_postgresql_error_that_names_no_column_stops_naming_it(make_pair) -> None:
    """'malformed array literal: "a,b"' (22P02) carries no column name: the stop names the one column whose
    value it quotes."""
    pair = make_pair("CREATE TABLE arr (id int PRIMARY KEY, note text, tags text[])",
                     "CREATE TABLE arr (id INT PRIMARY KEY, note VARCHAR(10), tags VARCHAR(20))",
                     "mappings:\n  arr:\n    direction: erp_to_crm\n    crm: {table: arr, key: [id]}\n"
                     "    erp: {table: arr, key: [id]}\n    fields: {id: ~, note: ~, tags: ~}\n")
    pair.start()
    pair.my_query("INSERT INTO arr VALUES (1, 'x', '{a,b}'), (2, 'y', 'a,b')")
    assert pair.wait_exit(60) != 0
    stopped = [line for line in pair.log().splitlines() if "stopped on" in line]
    assert stopped and "public.arr, key (2,), column tags: malformed array literal" in stopped[-1], pair.log()[-3000:]


def test_enum_and_set_values_arrive_exactly_or_stop_naming_the_column(make_pair) -> None:
    """Into a MariaDB ENUM / SET under a _ci collation 'A' became 'a', 'e' became 'é' and 'X' 'x' without a
    word; exact members arrive as they are, anything else stops its row naming table, key and column."""
    pair = make_pair("CREATE TABLE en (id int PRIMARY KEY, e text, s text)",
                     "CREATE TABLE en (id INT PRIMARY KEY, e ENUM('a','b''c','é') COLLATE utf8mb4_general_ci, "
                     "s SET('x','y') COLLATE utf8mb4_general_ci)",
                     "mappings:\n  en:\n    direction: crm_to_erp\n    crm: {table: en, key: [id]}\n"
                     "    erp: {table: en, key: [id]}\n    fields: {id: ~, e: ~, s: ~}\n")
    pair.start()
    pair.pg_query("INSERT INTO en VALUES (1, 'a', 'y,x'), (2, 'b''c', ''), (3, 'é', NULL)")
    wait_until(lambda: pair.my_query("SELECT count(*) FROM en")[0][0] == 3, 60, "the exact members")
    assert pair.my_query("SELECT id, e, s FROM en ORDER BY id") == [(1, "a", "x,y"), (2, "b'c", ""), (3, "é", None)]
    pair.pg_query("INSERT INTO en VALUES (4, 'e', 'x')")
    assert pair.wait_exit(60) != 0
    stopped = [line for line in pair.log().splitlines() if "stopped on" in line]
    assert stopped and f"{pair.maria.dbname}.en, key (4,), column e: " in stopped[-1], pair.log()[-3000:]
    assert "'e' is not a member of enum('a','b''c','é')" in stopped[-1]
    assert pair.my_query("SELECT count(*) FROM en WHERE id = 4") == [(0,)]


# single-byte character sets whose Python codec reads some byte differently from MariaDB (mycharset.py)
CHARSETS = ("greek", "hebrew", "koi8u", "cp866", "tis620", "latin2", "cp1251")


def test_single_byte_character_sets_arrive_as_mariadb_reads_them(make_pair) -> None:
    """Every byte MariaDB reads as a character (not '?') arrives in PostgreSQL as that character: greek 0xA1
    arrived as ‘ where MariaDB shows ʽ. Through the first sync and the binlog, and verify agrees."""
    cols = ", ".join(f"{cs} VARCHAR(300) CHARACTER SET {cs}" for cs in CHARSETS)
    pair = make_pair(f"CREATE TABLE cs (id int PRIMARY KEY, {', '.join(f'{cs} text' for cs in CHARSETS)})",
                     f"CREATE TABLE cs (id INT PRIMARY KEY, {cols})",
                     "mappings:\n  cs:\n    direction: erp_to_crm\n    crm: {table: cs, key: [id]}\n"
                     "    erp: {table: cs, key: [id]}\n    fields: {id: ~, "
                     + ", ".join(f"{cs}: ~" for cs in CHARSETS) + "}\n", setup=False)
    shown = {}
    for cs in CHARSETS:  # the bytes MariaDB reads as a character of its own
        row = pair.my_query("SELECT " + ", ".join(
            f"HEX(CONVERT(CONVERT(UNHEX('{b:02x}') USING {cs}) USING utf8mb4))" for b in range(1, 256)))[0]
        shown[cs] = bytes(b for b, h in zip(range(1, 256), row) if bytes.fromhex(h) != b"?" or b == 0x3F)
    marks = ", ".join(["%s"] * len(CHARSETS))
    pair.my_query(f"INSERT INTO cs VALUES (1, {marks})", [shown[cs] for cs in CHARSETS])
    pair.setup()
    pair.start()
    wait_until(lambda: "sync of cs done" in pair.log() or pair.proc.poll() is not None, 60, "the first sync")
    pair.my_query(f"INSERT INTO cs VALUES (2, {marks})", [shown[cs][::-1] for cs in CHARSETS])
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM cs")[0][0] == 2 or pair.proc.poll() is not None, 60,
               "both rows")
    assert pair.proc.poll() is None, pair.log()[-3000:]
    names = ", ".join(CHARSETS)
    for key in (1, 2):
        want = pair.my_query(f"SELECT {', '.join(f'CONVERT({cs} USING utf8mb4)' for cs in CHARSETS)} FROM cs "
                             f"WHERE id = %s", (key,))[0]
        assert pair.pg_query(f"SELECT {names} FROM cs WHERE id = %s", (key,))[0] == want
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0 and "the sides agree" in verify.stdout, verify.stdout[-3000:] + verify.stderr


MAP_CP1250 = """
mappings:
  g:
    direction: erp_to_crm
    crm: {table: g, key: [id]}
    erp: {table: g, key: [id]}
    fields: {id: ~, v: ~, n: ~}
"""
PG_CP1250 = "CREATE TABLE g (id int PRIMARY KEY, v text, n int)"
MY_CP1250 = "CREATE TABLE g (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET cp1250, n INT)"


def test_a_byte_cp1250_leaves_undefined_on_the_fast_decoder_stops_naming_table_key_and_column(make_pair) -> None:
    """cp1250 has no character for 0x81 (MariaDB shows '?'): the fast decoder finds the row, so the stream
    stops naming table, key and column (before: the column only, and that mysql-replication decodes the
    table, which it does not)."""
    pair = make_pair(PG_CP1250, MY_CP1250, MAP_CP1250, "sync: {on_first_run: false}\n")
    pair.start()
    pair.my_query("INSERT INTO g VALUES (7, %s, 1)", (b"a\x81",))
    assert pair.wait_exit(60) != 0
    stopped = [line for line in pair.log().splitlines() if "stopped on" in line]
    assert stopped and (f"table {pair.maria.dbname}.g, key (7,), column v: a value is not text of its character "
                        f"set cp1250 (byte b'\\x81'") in stopped[-1], pair.log()[-3000:]
    assert "on_error: quarantine" in stopped[-1] and "Traceback" not in pair.log()


def test_a_byte_cp1250_leaves_undefined_is_quarantined_and_the_fix_retried(make_pair) -> None:
    """With `on_error: quarantine` the row is queued (class undecodable) and the stream goes on; its image
    is never written. The DBA's correcting UPDATE waits behind it, and `dlq retry` writes it in its place."""
    pair = make_pair(PG_CP1250, MY_CP1250, MAP_CP1250.replace("    direction: erp_to_crm\n",
                                                              "    direction: erp_to_crm\n    on_error: quarantine\n"),
                     "sync: {on_first_run: false}\n")
    pair.start()
    my = pair.maria.connect(autocommit=False)
    try:
        with my.cursor() as cur:  # one transaction, one rows event: the bad row in the middle
            cur.execute("INSERT INTO g VALUES (1, 'one', 1), (2, %s, 2), (3, 'three', 3)", (b"b\x81",))
        my.commit()
    finally:
        my.close()
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM g")[0][0] == 2, 60, "the two good rows")
    queue = "replicator.dead_letter"  # the CRM's: the queue of the direction that writes there
    queued = pair.pg_query(f"SELECT target_key, op, error_class, error FROM {queue} ORDER BY id")
    assert [tuple(r[:3]) for r in queued] == [("[2]", "insert", "undecodable")], queued
    assert queued[0][3].startswith(f"table {pair.maria.dbname}.g, key (2,), column v: a value is not text of its character set "
                                   f"cp1250 (byte b'\\x81'"), queued[0][3]
    assert pair.proc is not None and pair.proc.poll() is None
    for _ in range(2):  # and again: it stays what it is, never written
        failed = pair.cli("dlq", "retry", "--key", "2", check=False)
        assert failed.returncode == 1 and "could not be read exactly" in failed.stdout, failed.stdout + failed.stderr
        assert pair.pg_query(f"SELECT error_class FROM {queue}") == [("undecodable",)]
    assert pair.pg_query("SELECT count(*) FROM g WHERE id = 2") == [(0,)]
    # the DBA corrects the value in MariaDB: queued behind, then written in place of the unreadable insert
    pair.my_query("UPDATE g SET v = 'b?' WHERE id = 2")
    wait_until(lambda: len(pair.pg_query(f"SELECT 1 FROM {queue}")) == 2, 30, "the correction queued behind")
    pair.cli("dlq", "retry", "--key", "2")
    assert pair.pg_query(f"SELECT count(*) FROM {queue}") == [(0,)]
    pair.my_query("UPDATE g SET n = 20 WHERE id = 2")  # no longer held: streams through
    wait_until(lambda: pair.pg_query("SELECT v, n FROM g WHERE id = 2") == [("b?", 20)], 30, "row 2 streamed")
    assert pair.pg_query("SELECT id, v, n FROM g ORDER BY id") == [(1, "one", 1), (2, "b?", 20), (3, "three", 3)]
    verified = pair.cli("verify", check=False)
    assert verified.returncode == 0 and "the sides agree" in verified.stdout, verified.stdout + verified.stderr
    assert pair.stop() == 0
