"""mapping_check: mappings against hand-built column catalogs (no servers).

Every rule of replicator/mapping/check/ and the wording of its findings: file:line, the field's key
path, what is wrong and the fix.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import types as st
from sqlalchemy.dialects import mysql, postgresql

from replicator.changes import TableRef
from replicator.config import Account, Batching, Config, Connection, Secret
from replicator.mapping.model import MappingSet, load_mappings
from replicator.mapping.check import (ERROR, FIT, LOSSY, UNKNOWN, ColumnInfo, _cast, check_config, check_types,
                                      column_info, field_specs, parse_check)
from replicator.admin.preflight import Finding, failures

CRM = TableRef("public", "customer")
ERP = TableRef("erpdb", "customers")
KINDS = {"crm": "postgresql", "erp": "mariadb"}


def C(kind: str, **kw) -> ColumnInfo:  # noqa: N802
    return ColumnInfo(kind, **kw)


INT = C("int", bits=32)
BIGINT = C("int", bits=64)
UBIGINT = C("int", bits=64, unsigned=True)
PK = C("int", bits=64, nullable=False)
AUTO_PK = C("int", bits=64, nullable=False, generated=True)
TEXT = C("text")


def vc(n: int, **kw) -> ColumnInfo:
    return C("text", length=n, **kw)


def dec(p: int | None, s: int | None = 0, **kw) -> ColumnInfo:
    return C("decimal", precision=p, scale=s, **kw)


def make_config(tmp_path: Path, crm_port: int = 5432, erp_port: int = 3306) -> Config:
    acc = Account("u", Secret(""))
    crm = Connection("crm", "postgresql", "127.0.0.1", crm_port, "crmdb", acc, acc)
    erp = Connection("erp", "mariadb", "127.0.0.1", erp_port, "erpdb", acc, acc)
    return Config(tmp_path / "replicator.yaml", (crm, erp), tmp_path / "maps", Batching())


class Env:
    def __init__(self, tmp_path: Path):
        self.config = make_config(tmp_path)
        self.config.mappings_dir.mkdir(exist_ok=True)
        self.path = self.config.mappings_dir / "m.yaml"

    def load(self, text: str) -> MappingSet:
        self.path.write_text(text, encoding="utf-8")
        return load_mappings(self.config)

    def check(self, text: str, crm: dict | None = None, erp: dict | None = None, *, extra: dict | None = None,
              specs: bool = True, sql_modes: dict | None = None, stored_zero: dict | None = None,
              server: dict | None = None) -> list[Finding]:
        mset = self.load(text)
        catalogs: dict = {"crm": {}, "erp": {}}
        if crm is not None:
            catalogs["crm"][CRM] = crm
        if erp is not None:
            catalogs["erp"][ERP] = erp
        for (side, table), cols in (extra or {}).items():
            catalogs[side][table] = cols
        return check_types(mset, catalogs, KINDS, field_specs(self.config.mappings_dir) if specs else None,
                           sql_modes, stored_zero, server)

    def failures(self, *args, **kw) -> list[str]:
        return [f"{f.side}: {f.what} | fix: {f.fix}".replace(str(self.config.mappings_dir) + "/", "")
                for f in self.check(*args, **kw) if not f.ok]

    def oks(self, *args, **kw) -> list[str]:
        return [f"{f.side}: {f.what}".replace(str(self.config.mappings_dir) + "/", "")
                for f in self.check(*args, **kw) if f.ok]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def one_field(spec: str = "~", direction: str = "crm_to_erp", extra: str = "", name: str = "v") -> str:
    return f"""\
mappings:
  customers:
    direction: {direction}
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [id]}}
{extra}    fields:
      id: ~
      {name}: {spec}
"""


def pair(env: Env, src: ColumnInfo, dst: ColumnInfo, spec: str = "~", direction: str = "crm_to_erp",
         **kw) -> list[str]:
    return env.failures(one_field(spec, direction), {"id": PK, "v": src}, {"id": PK, "v": dst}, **kw)


# ---------------------------------------------------------------- rule 1: the cast table


@pytest.mark.parametrize("src, dst, verdict", [
    # integers
    (INT, BIGINT, FIT),
    (BIGINT, INT, LOSSY),
    (UBIGINT, BIGINT, LOSSY),
    (C("int", bits=32, unsigned=True), BIGINT, FIT),
    (INT, C("int", bits=32, unsigned=True), LOSSY),
    (C("int", bits=16), C("int", bits=24), FIT),
    (INT, dec(10), FIT),
    (INT, dec(9), LOSSY),
    (BIGINT, dec(None, None), FIT),
    (INT, dec(12, 2, unsigned=True), LOSSY),
    (INT, C("float", bits=64), FIT),
    (BIGINT, C("float", bits=64), LOSSY),
    (C("int", bits=16), C("float", bits=32), FIT),
    (INT, C("float", bits=32), LOSSY),
    (INT, vc(11), FIT),
    (INT, vc(10), LOSSY),
    (INT, TEXT, FIT),
    (INT, C("bool"), LOSSY),
    (INT, C("enum", enums=("1", "2")), ERROR),
    (INT, C("date"), ERROR),
    (INT, C("json"), ERROR),
    (INT, C("bytes"), ERROR),
    # decimals
    (dec(14, 2), dec(14, 2), FIT),
    (dec(10, 2), dec(14, 4), FIT),
    (dec(14, 2), dec(10, 2), LOSSY),
    (dec(10, 4), dec(10, 2), LOSSY),
    (dec(None, None), dec(20, 4), LOSSY),
    (dec(20, 4), dec(None, None), FIT),
    (dec(9, 0), INT, FIT),
    (dec(10, 0), INT, LOSSY),
    (dec(5, 2), BIGINT, LOSSY),
    (dec(15, 2), C("float", bits=64), FIT),
    (dec(16, 2), C("float", bits=64), LOSSY),
    (dec(8, 2), C("float", bits=32), LOSSY),
    (dec(10, 2), vc(12), FIT),
    (dec(10, 2), vc(11), LOSSY),
    (dec(10, 2), C("datetime"), ERROR),
    # floats
    (C("float", bits=64), dec(20, 6), LOSSY),
    (C("float", bits=64), BIGINT, LOSSY),
    (C("float", bits=64), C("float", bits=32), LOSSY),
    (C("float", bits=32), C("float", bits=64), FIT),
    (C("float", bits=64), vc(24), FIT),
    (C("float", bits=64), vc(10), LOSSY),
    # text
    (vc(20), vc(20), FIT),
    (vc(50), vc(100), FIT),
    (vc(100), vc(50), LOSSY),
    (TEXT, vc(50), LOSSY),
    (vc(50), TEXT, FIT),
    (TEXT, INT, LOSSY),
    (vc(10), dec(10, 2), LOSSY),
    (TEXT, C("date"), LOSSY),
    (TEXT, C("datetime"), LOSSY),
    (TEXT, C("bool"), LOSSY),
    (TEXT, C("enum", enums=("a",)), LOSSY),
    (TEXT, C("json"), LOSSY),
    (TEXT, C("uuid"), LOSSY),
    (TEXT, C("bytes"), LOSSY),
    # enums
    (C("enum", enums=("a", "b")), C("enum", enums=("a", "b", "c")), FIT),
    (C("enum", enums=("a", "b", "c")), C("enum", enums=("a", "b")), LOSSY),
    (C("enum", enums=("won", "lost")), vc(4), FIT),
    (C("enum", enums=("won", "lost")), vc(3), LOSSY),
    (C("enum", enums=("1",)), INT, LOSSY),
    # booleans
    (C("bool"), C("bool"), FIT),
    (C("bool"), C("int", bits=8), FIT),
    (C("bool"), dec(1, 0), FIT),
    (C("bool"), dec(2, 2), LOSSY),
    (C("bool"), vc(5), FIT),
    (C("bool"), vc(1), LOSSY),
    (C("bool"), C("date"), ERROR),
    # dates and times
    (C("date"), C("date"), FIT),
    (C("date"), C("datetime", precision=0), FIT),
    (C("date"), vc(10), FIT),
    (C("date"), C("time"), ERROR),
    (C("date"), INT, ERROR),
    (C("datetime", precision=6), C("date"), LOSSY),
    (C("datetime", precision=6), C("time", precision=6), LOSSY),
    (C("datetime", precision=6, timezone=True), C("datetime", precision=6), FIT),
    (C("datetime", precision=6), C("datetime", precision=6, timezone=True), FIT),
    (C("datetime", precision=6), C("datetime", precision=0), LOSSY),
    (C("datetime", precision=0), C("datetime", precision=6), FIT),
    (C("datetime", precision=6), C("datetime", precision=6, bits=32), LOSSY),
    (C("datetime", precision=0, bits=32), C("datetime", precision=6), FIT),
    (C("datetime", precision=6), vc(26), FIT),
    (C("datetime", precision=6, timezone=True), vc(26), LOSSY),
    (C("datetime"), C("bool"), ERROR),
    (C("time", precision=6), C("time", precision=3), LOSSY),
    (C("time", precision=0), C("time", precision=6), FIT),
    (C("time"), C("datetime"), ERROR),
    # json, bytes, uuid
    (C("json"), C("json"), FIT),
    (C("json"), TEXT, FIT),
    (C("json"), vc(1000), LOSSY),
    (C("json"), INT, ERROR),
    (C("json"), C("bool"), ERROR),
    (C("bytes"), C("bytes"), FIT),
    (C("bytes", length=16), C("bytes", length=8), LOSSY),
    (C("bytes"), C("bytes", length=255), LOSSY),
    (C("bytes"), INT, ERROR),
    (C("bytes"), TEXT, LOSSY),
    (C("bytes"), C("json"), LOSSY),
    (C("bytes", length=16, precision=16), C("uuid"), FIT),
    (C("bytes", length=16), C("uuid"), LOSSY),
    (C("uuid"), C("uuid"), FIT),
    (C("uuid"), vc(36), FIT),
    (C("uuid"), vc(32), LOSSY),
    (C("uuid"), C("bytes", length=16), FIT),
    (C("uuid"), C("bytes", length=8), LOSSY),
    (C("uuid"), INT, ERROR),
    # unknown types
    (C("other"), INT, UNKNOWN),
    (INT, C("other"), UNKNOWN),
])
def test_cast_table(src: ColumnInfo, dst: ColumnInfo, verdict: str) -> None:
    assert _cast(src, dst)[0] == verdict, _cast(src, dst)


def test_int_narrowing_is_refused_with_location_and_fix(env: Env) -> None:
    (msg,) = pair(env, BIGINT, INT)
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v: crm:public.customer.v BIGINT -> "
                          "erp:erpdb.customers.v INTEGER (crm_to_erp): lossy cast: ")
    assert "BIGINT (-9223372036854775808..9223372036854775807) into INTEGER (-2147483648..2147483647) narrows" in msg
    assert "fix: widen erpdb.customers.v to hold BIGINT, or add `lossy: allow` to the field" in msg


def test_unsigned_bigint_into_signed_bigint(env: Env) -> None:
    (msg,) = pair(env, BIGINT, UBIGINT, direction="erp_to_crm")  # pair(crm column, erp column)
    assert "erp:erpdb.customers.v BIGINT UNSIGNED -> crm:public.customer.v BIGINT (erp_to_crm): lossy cast" in msg
    assert msg.startswith("crm: ")


def test_signed_into_unsigned_names_negative_values(env: Env) -> None:
    (msg,) = pair(env, INT, C("int", bits=32, unsigned=True))
    assert "negative values do not fit an UNSIGNED column" in msg


def test_smaller_precision_and_scale(env: Env) -> None:
    (msg,) = pair(env, dec(14, 2), dec(10, 2))
    assert "NUMERIC(14,2) into NUMERIC(10,2): fewer integer digits" in msg
    (msg,) = pair(env, dec(10, 4), dec(10, 2))
    assert "fewer decimal places (rounded)" in msg
    (msg,) = pair(env, dec(None, None), dec(10, 2))
    assert "fewer integer digits" in msg


def test_byte_lengths(env: Env) -> None:
    (msg,) = pair(env, C("bytes", type_name="BYTEA"), C("bytes", length=64, type_name="VARBINARY(64)"))
    assert "lossy cast: unbounded bytes into at most 64 bytes" in msg
    (msg,) = pair(env, C("bytes", length=128), C("bytes", length=64))
    assert "lossy cast: bytes of up to 128 into at most 64 bytes" in msg


def test_float_into_numeric_and_int(env: Env) -> None:
    (msg,) = pair(env, C("float", bits=64), dec(12, 2))
    assert "a floating-point number into NUMERIC(12,2) is rounded" in msg
    assert "fix: change erpdb.customers.v to a type that holds DOUBLE PRECISION" in msg
    assert len(pair(env, C("float", bits=64), INT)) == 1


def test_a_mariadb_double_with_places_rounds_silently(env: Env) -> None:
    # Akaunting's amounts are DOUBLE(15,4): MariaDB stores 1.234567 as 1.2346 without a warning
    d154 = C("float", bits=64, precision=15, scale=4, type_name="DOUBLE(15, 4)")
    (msg,) = pair(env, C("float", bits=64), d154)
    assert "DOUBLE(15, 4) rounds every value to 4 decimal places" in msg
    assert len(pair(env, dec(None, None), d154)) == 1  # Twenty's unbounded numeric
    assert len(pair(env, dec(12, 6), d154)) == 1
    assert not any("rounds every value" in m for m in pair(env, dec(10, 4), d154) + pair(env, INT, d154))
    assert not any("rounds every value" in m for m in pair(env, C("float", bits=64), d154, spec="{lossy: allow}"))


def test_a_shift_transform_keeps_the_cast_checked(env: Env) -> None:
    # Twenty's micros into Akaunting's DOUBLE(15,4): 1234567 micros are 1.234567, stored as 1.2346 silently;
    # any other transform skips the cast check, a shift must not: the value is still a number
    d154 = C("float", bits=64, precision=15, scale=4, type_name="DOUBLE(15, 4)")
    (msg,) = pair(env, dec(None, None), d154, spec="{transform: [{shift: -6}]}")
    assert "after its transform NUMERIC (shifted) -> erp:erpdb.customers.v DOUBLE(15, 4)" in msg, msg
    assert "rounds every value to 4 decimal places" in msg and "[FAIL]" not in msg, msg
    assert not any("rounds every value" in m for m in pair(env, dec(None, None), d154,
                                                          spec="{transform: [{shift: -6}], lossy: allow}"))
    (msg,) = pair(env, BIGINT, dec(18, 4), spec="{transform: [{shift: -6}]}")  # (19,6) into (18,4)
    assert "NUMERIC(19,6) into NUMERIC(18,4): fewer decimal places (rounded)" in msg, msg
    assert pair(env, BIGINT, dec(19, 6), spec="{transform: [{shift: -6}]}") == []  # a bigint has no NaN
    fits = pair(env, dec(15, 4), dec(21, 0), spec="{transform: [{shift: 6}]}")  # and back into micros
    assert not any("lossy cast" in m for m in fits), fits
    (msg,) = pair(env, dec(15, 4), dec(16, 0), spec="{transform: [{shift: 6}]}")  # 11 + 6 integer digits
    assert "fewer integer digits" in msg, msg


def test_text_lengths(env: Env) -> None:
    (msg,) = pair(env, vc(100), vc(50))
    assert "lossy cast: text of up to 100 characters into at most 50" in msg
    assert "fix: widen erpdb.customers.v to hold VARCHAR(100)" in msg
    (msg,) = pair(env, TEXT, vc(50))
    assert "lossy cast: unbounded values into at most 50 characters" in msg
    assert pair(env, vc(50), TEXT) == []
    assert pair(env, vc(50), vc(50)) == []


def test_text_into_number_date_bool(env: Env) -> None:
    for dst, kind in ((INT, "int"), (C("date"), "date"), (C("bool"), "bool"), (dec(10, 2), "decimal")):
        (msg,) = pair(env, vc(20), dst)
        assert f"lossy cast: text into {kind}: a text that is not a valid {kind} is a row error" in msg


def test_datetime_into_date_and_timestamptz_into_naive(env: Env) -> None:
    (msg,) = pair(env, C("datetime", precision=6), C("date"))
    assert "a datetime into a date loses the time of day" in msg
    tz = C("datetime", precision=6, timezone=True, type_name="TIMESTAMP WITH TIME ZONE")
    (msg,) = pair(env, tz, C("datetime", precision=6, type_name="DATETIME(6)"))
    assert msg.endswith("infinity, BC dates and years past 9999 have no MariaDB form (such a value is a row "
                        "error) | fix: keep such values out of the source, or add `lossy: allow` to the field to "
                        "say they never occur (one that does is still a row error)")
    findings = env.check(one_field(), {"id": PK, "v": tz}, {"id": PK, "v": C("datetime", precision=6)})
    assert failures(findings) == [] and [f.warning for f in findings if not f.ok] == [True]
    assert pair(env, tz, C("datetime", precision=6), "{lossy: allow}") == []
    # MariaDB has no such values: the other direction fits
    assert pair(env, tz, C("datetime", precision=6), direction="erp_to_crm") == []


@pytest.mark.parametrize("src, dst, said", [
    (C("float", bits=64), C("float", bits=64), "NaN and ±Infinity have no MariaDB form"),
    (dec(10, 2), dec(12, 2), "NaN have no MariaDB form"),
    (dec(6, 2), C("float", bits=64), "NaN have no MariaDB form"),
    (dec(None, None), dec(None, None), "NaN and ±Infinity have no MariaDB form"),
    (C("date"), C("date"), "infinity, BC dates"),
])
def test_postgresql_values_mariadb_cannot_hold_warn(env: Env, src: ColumnInfo, dst: ColumnInfo, said: str) -> None:
    findings = env.check(one_field(), {"id": PK, "v": src}, {"id": PK, "v": dst})
    (warned,) = [f for f in findings if not f.ok]
    assert warned.warning and said in warned.what


def test_fractional_seconds(env: Env) -> None:
    (msg,) = pair(env, C("datetime", precision=6, type_name="TIMESTAMP WITHOUT TIME ZONE"),
                  C("datetime", precision=0, type_name="DATETIME"))
    assert "DATETIME keeps 0 fractional-second digits, TIMESTAMP WITHOUT TIME ZONE 6" in msg
    assert "fix: widen erpdb.customers.v to DATETIME(6)," in msg  # MariaDB's spelling, not PostgreSQL's type


def test_a_timestamp_refused_for_its_fractional_seconds_says_so(env: Env) -> None:
    # Twenty's "deletedAt" timestamptz into Akaunting's deleted_at TIMESTAMP: refused because the microseconds are
    # cut without a word (the 1970..2038 range alone is a warning, values outside it are row errors); the
    # message named only the range, and its fix a PostgreSQL type for the MariaDB column
    (msg,) = pair(env, C("datetime", precision=6, timezone=True, type_name="TIMESTAMP WITH TIME ZONE"),
                  C("datetime", precision=0, bits=32, type_name="TIMESTAMP"))
    assert "[FAIL]" not in msg and "lossy cast: TIMESTAMP keeps 0 fractional-second digits" in msg, msg
    assert "(and holds 1970..2038 only)" in msg and "widen erpdb.customers.v to TIMESTAMP(6)," in msg, msg


def test_incompatible_types_are_errors_even_with_lossy(env: Env) -> None:
    (msg,) = pair(env, C("json", type_name="JSONB"), INT, "{lossy: allow}")
    assert "crm:public.customer.v JSONB -> erp:erpdb.customers.v INTEGER (crm_to_erp): incompatible types: " \
           "JSON cannot become an integer" in msg
    assert "(lossy: allow does not help)" in msg
    (msg,) = pair(env, C("bytes", type_name="BYTEA"), INT, "{lossy: allow}")
    assert "bytes cannot become an integer" in msg


def test_lossy_allow_turns_a_refusal_into_an_ok_finding(env: Env) -> None:
    text = one_field("{lossy: allow}")
    assert env.failures(text, {"id": PK, "v": BIGINT}, {"id": PK, "v": INT}) == []
    oks = env.oks(text, {"id": PK, "v": BIGINT}, {"id": PK, "v": INT})
    assert any("mappings.customers.fields.v" in o and "lossy (" in o and "allowed by lossy: allow" in o for o in oks)


def test_both_directions_are_checked(env: Env) -> None:
    msgs = pair(env, vc(100), vc(50), direction="both")
    assert len(msgs) == 1 and "(crm_to_erp)" in msgs[0]  # 50 into 100 fits
    msgs = pair(env, BIGINT, UBIGINT, direction="both")
    assert {m.split(" ", 1)[0] for m in msgs} == {"erp:", "crm:"}


def test_unknown_types_are_a_warning(env: Env) -> None:
    text = one_field()
    crm, erp = {"id": PK, "v": C("other", type_name="MONEY")}, {"id": PK, "v": vc(10)}
    findings = env.check(text, crm, erp)
    (warned,) = [f for f in findings if f.warning]
    assert not warned.ok and "MONEY -> erp:erpdb.customers.v VARCHAR(10) (crm_to_erp): not checked" in warned.what
    assert "docs/types.md" in warned.fix
    assert failures(findings) == []  # a warning: counted in the summary, not a reason to refuse to start


def test_lossy_allow_acknowledges_an_unknown_type_warning(env: Env) -> None:
    # issue 11: a warning printed on every run could not be acknowledged
    text = one_field("{lossy: allow}")
    crm, erp = {"id": PK, "v": C("other", type_name="MONEY")}, {"id": PK, "v": vc(10)}
    findings = env.check(text, crm, erp)
    assert [f for f in findings if f.warning] == []
    assert any("not checked" in f.what and "acknowledged by lossy: allow" in f.what for f in findings if f.ok)


def test_a_generated_postgresql_source_column_is_refused(env: Env) -> None:
    text = one_field()
    crm = {"id": PK, "v": C("int", bits=32, computed=True, type_name="INTEGER")}
    (msg,) = env.failures(text, crm, {"id": PK, "v": INT})
    assert msg.startswith("crm: ") and "crm:public.customer.v is a generated column" in msg
    assert "does not send it (crm_to_erp)" in msg and "fix: map the columns it is computed from" in msg
    # a MariaDB generated column is in the binlog's row image: fine
    assert env.failures(one_field(direction="erp_to_crm"), {"id": PK, "v": INT},
                        {"id": PK, "v": C("int", bits=32, computed=True)}) == []


def test_a_fitting_flow_says_so(env: Env) -> None:
    oks = env.oks(one_field(), {"id": PK, "v": INT}, {"id": PK, "v": BIGINT})
    assert "erp: m.yaml:3: mappings.customers: crm_to_erp: the types of 2 field(s) fit erpdb.customers" in oks


def test_missing_tables_and_columns_are_left_to_the_catalog_check(env: Env) -> None:
    assert env.failures(one_field(), {"id": PK}, {"id": PK}) == []
    assert env.check(one_field(), None, None) == []
    mset = env.load(one_field())
    assert check_types(mset, {}, KINDS) == []


# ---------------------------------------------------------------- rule 1: maps, transforms, defaults, constants


def test_transform_or_map_skips_the_kind_check(env: Env) -> None:
    assert pair(env, vc(20), C("date"), "{transform: [{parse_date: '%d.%m.%Y'}]}") == []
    assert pair(env, vc(20), INT, "{map: [{crm: a, erp: 1}, {crm: b, erp: 2}]}") == []
    # no specs: the map/transform is only known as a closure; still skipped
    assert pair(env, vc(20), C("date"), "{transform: [{parse_date: '%d.%m.%Y'}]}", specs=False) == []


def test_transform_for_the_other_direction_only_keeps_the_kind_check(env: Env) -> None:
    spec = "{transform: {erp_to_crm: [trim]}}"
    msgs = pair(env, vc(100), vc(50), spec, direction="both")
    assert len(msgs) == 1 and "(crm_to_erp): lossy cast" in msgs[0]


def test_default_only_is_still_kind_checked_with_specs(env: Env) -> None:
    (msg,) = pair(env, BIGINT, INT, "{default: 0}")
    assert "lossy cast" in msg
    assert pair(env, BIGINT, INT, "{default: 0}", specs=False) == []  # a closure: not known to be a default only


def test_default_must_fit(env: Env) -> None:
    (msg,) = pair(env, vc(5), vc(5), "{default: toolong}")
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v.default: default into erp:erpdb.customers.v "
                          "(crm_to_erp): 'toolong' is 7 characters, the column holds 5")


def test_constant_too_long_is_an_error_even_with_lossy(env: Env) -> None:
    text = one_field("{crm: ~, constant: CRM-IMPORT, lossy: allow}")
    (msg,) = env.failures(text, {"id": PK}, {"id": PK, "v": vc(5)})
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v.constant: constant into "
                          "erp:erpdb.customers.v (crm_to_erp): 'CRM-IMPORT' is 10 characters, the column holds 5")
    assert "fix: change the constant, or widen erpdb.customers.v" in msg
    # without specs the constant is read through its plan
    (msg,) = env.failures(text, {"id": PK}, {"id": PK, "v": vc(5)}, specs=False)
    assert "'CRM-IMPORT' is 10 characters" in msg


def test_constant_into_enum_number_and_not_null(env: Env) -> None:
    (msg,) = env.failures(one_field("{crm: ~, constant: X}"), {"id": PK},
                          {"id": PK, "v": C("enum", enums=("A", "B"), type_name="ENUM('A','B')")})
    assert "'X' is not a value of ENUM('A','B')" in msg
    (msg,) = env.failures(one_field("{crm: ~, constant: 300}"), {"id": PK}, {"id": PK, "v": C("int", bits=8)})
    assert "300 is outside TINYINT (-128..127)" in msg
    (msg,) = env.failures(one_field("{crm: ~, constant: abc}"), {"id": PK}, {"id": PK, "v": INT})
    assert "'abc' is not a number" in msg
    (msg,) = env.failures(one_field("{crm: ~, constant: ~}"), {"id": PK}, {"id": PK, "v": vc(5, nullable=False)})
    assert "constant NULL into NOT NULL erp:erpdb.customers.v" in msg
    ab = C("enum", enums=("A", "B"))
    assert env.failures(one_field("{crm: ~, constant: B}"), {"id": PK}, {"id": PK, "v": ab}) == []


# ---------------------------------------------------------------- rule 1: columns that cannot be written


def test_computed_target_column(env: Env) -> None:
    (msg,) = pair(env, INT, C("int", bits=32, computed=True))
    assert "erp:erpdb.customers.v is a generated column (AS expression) and cannot be written (crm_to_erp)" in msg


def test_identity_always_target_column(env: Env) -> None:
    always = C("int", bits=32, nullable=False, generated=True, identity_always=True)
    (msg,) = pair(env, always, INT, direction="erp_to_crm")
    assert "crm:public.customer.v is GENERATED ALWAYS AS IDENTITY and cannot be written (erp_to_crm)" in msg
    assert "SET GENERATED BY DEFAULT" in msg


# ---------------------------------------------------------------- rule 1: references


def refs_yaml(crosswalk: bool) -> str:
    link = "    link: {crosswalk: true}\n" if crosswalk else ""
    return f"""\
mappings:
  customers:
    direction: crm_to_erp
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [cid]}}
{link}    fields:
      id: {{erp: cid}}
  orders:
    direction: crm_to_erp
    crm: {{table: orders, key: [id]}}
    erp: {{table: orders, key: [id]}}
    fields:
      id: ~
      customer_id: {{references: customers}}
"""


def test_reference_through_a_crosswalk_compares_the_referenced_target_key(env: Env) -> None:
    extra = {("crm", TableRef("public", "orders")): {"id": PK, "customer_id": INT},
             ("erp", TableRef("erpdb", "orders")): {"id": PK, "customer_id": INT}}
    crm, erp = {"id": INT}, {"cid": C("int", bits=64, nullable=False, generated=True)}
    (msg,) = env.failures(refs_yaml(True), crm, erp, extra=extra)
    assert ("mappings.orders.fields.customer_id: erp:erpdb.customers.cid (the key of customers, through its "
            "crosswalk) BIGINT -> erp:erpdb.orders.customer_id INTEGER (crm_to_erp): lossy cast") in msg
    # shared keys: the value is the source value, INTEGER into INTEGER fits
    assert env.failures(refs_yaml(False), {"id": INT}, {"cid": INT}, extra=extra) == []


# ---------------------------------------------------------------- rule 2: NOT NULL columns


def test_not_null_column_without_default_and_field(env: Env) -> None:
    (msg,) = env.failures(one_field(), {"id": PK, "v": INT},
                          {"id": PK, "v": INT, "customer_no": vc(20, nullable=False)})
    assert msg.startswith("erp: m.yaml:3: mappings.customers.fields: column customer_no of erpdb.customers is NOT NULL "
                          "and no field fills it when crm_to_erp creates rows")
    assert "fix: add a field for customer_no (a source column or `constant:` with `crm: ~`), give " \
           "erpdb.customers.customer_no a DEFAULT or make it NULL, or set `created_by: erp`" in msg


FOLDED_NAME = """\
mappings:
  customers:
    direction: crm_to_erp
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    link: {crosswalk: true}
    fields:
      v: ~
  customer_names:
    direction: crm_to_erp
    crm: {table: customer_group, key: [customer_id]}
    erp: {table: customers, key: [id]}
    fold: {parent: customers, child: crm, by: customer_id, value: group_name, into: name}
"""


def test_not_null_column_a_fold_fills_is_filled_when_the_parent_is_created(env: Env) -> None:
    # probe13: OFBiz's party_group.group_name, a child row of the party, is Krayin's NOT NULL organizations.name:
    # the party's insert carries it (links.Linker._create), so check no longer asks for a field or a DEFAULT
    extra = {("crm", TableRef("public", "customer_group")): {"customer_id": PK, "group_name": vc(100)}}
    erp = {"id": AUTO_PK, "v": INT, "name": vc(255, nullable=False)}
    assert not any("no field fills it" in m for m in env.failures(FOLDED_NAME, {"id": PK, "v": INT}, erp, extra=extra))
    # without the fold nothing fills it
    alone = FOLDED_NAME[:FOLDED_NAME.index("  customer_names:")]
    assert any("column name of erpdb.customers is NOT NULL and no field fills it" in m
               for m in env.failures(alone, {"id": PK, "v": INT}, erp))


@pytest.mark.parametrize("col", [vc(20, nullable=False, has_default=True), vc(20),
                                 C("int", bits=64, nullable=False, generated=True),
                                 C("int", bits=64, nullable=False, computed=True)])
def test_not_null_with_default_nullable_or_generated_is_fine(env: Env, col: ColumnInfo) -> None:
    assert env.failures(one_field(), {"id": PK, "v": INT}, {"id": PK, "v": INT, "other": col}) == []


def test_not_null_names_the_owner_that_keeps_the_field_out(env: Env) -> None:
    text = one_field("{owner: erp}", direction="both")
    msgs = env.failures(text, {"id": PK, "v": INT}, {"id": PK, "v": C("int", bits=32, nullable=False)})
    (msg,) = msgs
    assert "column v of erpdb.customers is NOT NULL and no field fills it when crm_to_erp creates rows " \
           "(field v flows only from erp)" in msg


def test_created_by_the_other_side_never_inserts(env: Env) -> None:
    text = one_field("{owner: erp}", direction="both", extra="    created_by: erp\n")
    assert env.failures(text, {"id": PK, "v": INT}, {"id": PK, "v": C("int", bits=32, nullable=False)}) == []


def test_constant_fills_a_not_null_column(env: Env) -> None:
    text = one_field("{crm: ~, constant: 1}")
    assert env.failures(text, {"id": PK}, {"id": PK, "v": C("int", bits=32, nullable=False)}) == []


# ---------------------------------------------------------------- rule 3: value maps and enums

STATUS_MAP = "{map: [{crm: new, erp: N}, {crm: won, erp: W}]%s}"
CRM_STATUS = C("enum", enums=("new", "won", "lost"), type_name="deal_status")
ERP_STATUS = C("enum", enums=("N", "W", "L"), type_name="ENUM('N','W','L')")


def status(env: Env, extra: str = "", src: ColumnInfo = CRM_STATUS, dst: ColumnInfo = ERP_STATUS,
           **kw) -> list[str]:
    return pair(env, src, dst, STATUS_MAP % extra, **kw)


def test_map_must_cover_the_source_enum(env: Env) -> None:
    (msg,) = status(env)
    assert msg.startswith("crm: m.yaml:8: mappings.customers.fields.v.map: values 'lost' of crm:public.customer.v "
                          "deal_status are not in the map (crm_to_erp); with unmapped: error each is a row error")
    assert "fix: add pairs for them, or set `unmapped: pass` or `unmapped: {default: value}`" in msg


def test_unmapped_default_covers_the_enum(env: Env) -> None:
    assert status(env, ", unmapped: {default: L}") == []
    (msg,) = status(env, ", unmapped: {default: X}")
    assert "mappings.customers.fields.v.unmapped: unmapped default into erp:erpdb.customers.v (crm_to_erp): " \
           "'X' is not a value of ENUM('N','W','L')" in msg


def test_unmapped_pass_values_must_fit_the_target(env: Env) -> None:
    (msg,) = status(env, ", unmapped: pass")
    assert "values 'lost' of crm:public.customer.v pass unmapped (unmapped: pass) but do not fit " \
           "erp:erpdb.customers.v ENUM('N','W','L') (crm_to_erp)" in msg
    assert status(env, ", unmapped: pass", dst=C("enum", enums=("N", "W", "lost"))) == []
    assert status(env, ", unmapped: pass", dst=vc(10)) == []


def test_map_target_values_must_be_in_the_target_enum(env: Env) -> None:
    (msg,) = status(env, ", unmapped: pass", src=vc(10), dst=C("enum", enums=("N", "L"), type_name="ENUM('N','L')"))
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.v.map: map values for erp:erpdb.customers.v "
                          "(crm_to_erp): 'W' is not a value of ENUM('N','L')")
    assert "fix: use values of ENUM('N','L') on the erp side of the map, or add them to erpdb.customers.v" in msg


def test_map_target_values_must_fit_a_varchar(env: Env) -> None:
    (msg,) = pair(env, vc(10), vc(3), "{map: [{crm: a, erp: ABCD}], unmapped: pass}")
    assert "'ABCD' is 4 characters, the column holds 3" in msg


def test_map_followed_by_a_transform_is_not_checked_on_the_target(env: Env) -> None:
    assert status(env, ", unmapped: pass, transform: [lower]", src=vc(10),
                  dst=C("enum", enums=("n",))) == []


def test_map_coverage_in_the_other_direction(env: Env) -> None:
    msgs = status(env, direction="both")
    assert any("values 'L' of erp:erpdb.customers.v ENUM('N','W','L') are not in the map (erp_to_crm)" in m
               for m in msgs)
    assert any("values 'lost' of crm:public.customer.v" in m for m in msgs)


def test_map_with_numbers_matches_enum_text(env: Env) -> None:
    assert pair(env, C("enum", enums=("1", "2")), INT, "{map: [{crm: 1, erp: 10}, {crm: '2', erp: 20}]}") == []


def test_without_specs_maps_are_not_checked(env: Env) -> None:
    assert status(env, specs=False) == []


# ---------------------------------------------------------------- rule 4: gates, natural keys, crosswalks, references


def test_gate_column_must_exist(env: Env) -> None:
    gate = "    gate:\n      crm_to_erp: {column: stage, becomes: won}\n"
    (msg,) = env.failures(one_field(extra=gate), {"id": PK, "v": INT}, {"id": PK, "v": INT})
    assert msg.startswith("crm: m.yaml:3: mappings.customers.gate.crm_to_erp: gate column stage does not exist "
                          "in public.customer")
    ok = {"id": PK, "v": INT, "stage": vc(10)}
    assert env.failures(one_field(extra=gate), ok, {"id": PK, "v": INT}) == []


def test_gate_values_must_be_enum_values(env: Env) -> None:
    gate = "    gate:\n      crm_to_erp: {column: stage, becomes: [won, confirmed]}\n"
    (msg,) = env.failures(one_field(extra=gate), {"id": PK, "v": INT, "stage": CRM_STATUS}, {"id": PK, "v": INT})
    assert "gate values 'confirmed' are not values of public.customer.stage deal_status: the gate never fires" in msg


NATURAL = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    link: {natural: [vat_id], crosswalk: true}
    fields:
      vat_id: %s
      name: ~
"""
AUTO = {"id": AUTO_PK, "vat_id": vc(20), "name": vc(50)}


def test_natural_key_must_flow_both_ways(env: Env) -> None:
    (msg,) = env.failures(NATURAL % "{owner: crm}", AUTO, AUTO)
    assert msg.startswith("crm: m.yaml:8: mappings.customers.fields.vat_id: natural key field vat_id is not sent "
                          "erp_to_crm (owner: crm): rows cannot be linked in that direction")
    assert "fix: remove `owner` from the natural key field" in msg
    assert env.failures(NATURAL % "~", AUTO, AUTO) == []


def test_natural_key_column_must_exist_on_both_sides(env: Env) -> None:
    (msg,) = env.failures(NATURAL % "{erp: ust_id}", AUTO, AUTO)
    assert "mappings.customers.fields.vat_id: natural key column ust_id does not exist in erpdb.customers" in msg


def test_natural_key_needs_a_column_on_both_sides(env: Env) -> None:
    msgs = env.failures(NATURAL % "{erp: ~}", AUTO, AUTO)
    assert any("natural key field vat_id has no erp column" in m for m in msgs)


def test_crosswalk_key_must_be_generated(env: Env) -> None:
    plain = {"id": PK, "vat_id": vc(20), "name": vc(50)}
    msgs = env.failures(NATURAL % "~", plain, plain)
    assert len(msgs) == 2
    erp = next(m for m in msgs if m.startswith("erp:"))
    assert erp.startswith("erp: m.yaml:3: mappings.customers.link: crosswalk: key column id of erpdb.customers is not "
                          "generated by the database, but crm_to_erp creates rows and leaves the key to it")
    assert "fix: ALTER TABLE erpdb.customers MODIFY id BIGINT NOT NULL AUTO_INCREMENT" in erp
    crm = next(m for m in msgs if m.startswith("crm:"))
    assert "fix: ALTER TABLE public.customer ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY" in crm
    # it is not also reported as an unfilled NOT NULL column
    assert not any("no field fills it" in m for m in msgs)


def test_crosswalk_text_key_is_made_by_generate_not_an_identity(env: Env) -> None:
    """A char(36) key an application fills (SuiteCRM): an identity column cannot be added to it; the fix names
    `generate:`."""
    plain = {"id": PK, "vat_id": vc(20), "name": vc(50)}
    text_key = {"id": C("text", length=36, nullable=False), "vat_id": vc(20), "name": vc(50)}
    msgs = env.failures(NATURAL % "~", text_key, plain)
    crm = next(m for m in msgs if m.startswith("crm:"))
    assert "crosswalk: key column id of public.customer is not generated by the database" in crm
    assert "fix: add generate: {id: uuid} to the mapping's crm endpoint" in crm
    assert "IDENTITY" not in crm and "AUTO_INCREMENT" not in crm


SKU_KEY = """\
mappings:
  products:
    direction: erp_to_crm
    erp: {table: products, key: [id]}
    crm: {table: product, key: [product_id]}
    link: {crosswalk: true}
    fields:
      sku: {crm: product_id, lossy: allow}
      name: {crm: product_name}
"""


def test_crosswalk_key_a_narrow_text_or_a_field_fills_names_a_generate_that_fits(env: Env) -> None:
    """probe13: OFBiz (here the crm side) keys a product by product_id VARCHAR(20), which Krayin's sku is. The
    fix said `generate: {product_id: uuid}`: 36 characters for a VARCHAR(20), and nothing of the field."""
    extra = {("erp", TableRef("erpdb", "products")): {"id": AUTO_PK, "sku": vc(255), "name": vc(255)},
             ("crm", TableRef("public", "product")): {"product_id": C("text", length=20, nullable=False),
                                                      "product_name": vc(100)}}
    (msg,) = [m for m in env.failures(SKU_KEY, extra=extra) if "crosswalk: key" in m]
    assert msg.endswith('fix: add generate: {product_id: {template: "{sku}"}} to the mapping\'s crm endpoint: with a '
                        "crosswalk the key is made when the row is created, here from field sku's value (a field "
                        "alone does not key a crosswalk row), or drop link: crosswalk and share keys")
    # no field holds it: random hex digits as wide as the column, not a uuid
    alone = SKU_KEY.replace("sku: {crm: product_id", "sku: {crm: product_name").replace(
        "      name: {crm: product_name}\n", "")
    (msg,) = [m for m in env.failures(alone, extra=extra) if "crosswalk: key" in m]
    assert "fix: add generate: {product_id: {hex: 20}} to the mapping's crm endpoint (public.product.product_id " \
           "holds 20 characters, a uuid 36)" in msg


def test_crosswalk_numeric_key_the_application_numbers_is_made_by_a_default(env: Env) -> None:
    """iDempiere's c_bpartner_id is numeric(10), numbered by the application from AD_Sequence: the fix said
    `generate: {id: uuid}` (no number), and for an integer key only an identity, which counts apart from the
    application's numbering."""
    plain = {"id": PK, "vat_id": vc(20), "name": vc(50)}
    numeric_key = {"id": dec(10, 0, nullable=False), "vat_id": vc(20), "name": vc(50)}
    crm = next(m for m in env.failures(NATURAL % "~", numeric_key, plain) if m.startswith("crm:"))
    assert ("fix: give public.customer.id a DEFAULT that takes the application's next number (a function over its "
            "sequence table, or nextval of its sequence) and add generate: {id: default} to the mapping's crm "
            "endpoint") in crm, crm
    assert "uuid" not in crm and "IDENTITY" not in crm
    erp = next(m for m in env.failures(NATURAL % "~", plain, plain) if m.startswith("erp:"))
    assert erp.endswith("if the application numbers the rows itself (a sequence table such as iDempiere's "
                        "AD_Sequence, or a database sequence), give erpdb.customers.id a DEFAULT that takes its next "
                        "number and add generate: {id: default} to the erp endpoint instead"), erp


def test_crosswalk_key_only_where_rows_are_created(env: Env) -> None:
    text = (NATURAL % "~").replace("    link:", "    created_by: crm\n    link:")
    plain = {"id": PK, "vat_id": vc(20), "name": vc(50)}
    (msg,) = env.failures(text, AUTO, plain)
    assert "key column id of erpdb.customers is not generated" in msg


def test_crosswalk_identity_always_key_is_fine(env: Env) -> None:
    always = dict(AUTO, id=C("int", bits=64, nullable=False, generated=True, identity_always=True))
    assert env.failures(NATURAL % "~", always, AUTO) == []


def test_references_need_a_single_column_key(env: Env) -> None:
    text = """\
mappings:
  lines:
    direction: crm_to_erp
    crm: {table: customer, key: [id, line]}
    erp: {table: customers, key: [id, line]}
    fields:
      id: ~
      line: ~
  notes:
    direction: crm_to_erp
    crm: {table: notes, key: [id]}
    erp: {table: notes, key: [id]}
    fields:
      id: ~
      line_id: {references: lines}
"""
    cols = {"id": PK, "line": INT}
    extra = {("crm", TableRef("public", "notes")): {"id": PK, "line_id": INT},
             ("erp", TableRef("erpdb", "notes")): {"id": PK, "line_id": INT}}
    msgs = env.failures(text, cols, cols, extra=extra)
    assert len(msgs) == 2
    assert msgs[0].startswith("crm: m.yaml:15: mappings.notes.fields.line_id.references: references lines, whose crm "
                              "key ['id', 'line'] has 2 columns; a reference holds one")


# ---------------------------------------------------------------- reading catalogs, specs, the preflight entry


PG = postgresql.dialect()
MY = mysql.dialect()


def info(t, dialect=PG, **col) -> ColumnInfo:
    return column_info({"name": "c", "type": t, "nullable": col.pop("nullable", True), "default": None, **col}, dialect)


def test_column_info_postgresql() -> None:
    assert info(postgresql.INTEGER(), default="nextval('t_id_seq'::regclass)", autoincrement=True).generated
    ident = info(postgresql.BIGINT(), identity={"always": True}, autoincrement=True, nullable=False)
    assert (ident.kind, ident.bits, ident.generated, ident.identity_always, ident.nullable) == \
        ("int", 64, True, True, False)
    assert info(postgresql.SMALLINT()).bits == 16
    n = info(postgresql.NUMERIC(10, 2))
    assert (n.kind, n.precision, n.scale) == ("decimal", 10, 2)
    assert info(postgresql.NUMERIC()).precision is None
    assert info(postgresql.REAL()).bits == 32 and info(postgresql.DOUBLE_PRECISION(precision=53)).bits == 64
    assert info(postgresql.VARCHAR(20)).length == 20 and info(postgresql.TEXT()).length is None
    e = info(postgresql.ENUM("a", "b", name="mood"))
    assert (e.kind, e.enums, e.type_name) == ("enum", ("a", "b"), "mood")
    ts = info(postgresql.TIMESTAMP(timezone=True))
    assert (ts.kind, ts.timezone, ts.precision) == ("datetime", True, 6)
    assert info(postgresql.TIMESTAMP(precision=0)).precision == 0
    assert info(postgresql.JSONB()).kind == "json" and info(postgresql.BYTEA()).kind == "bytes"
    assert info(postgresql.UUID(), default="gen_random_uuid()").generated
    assert info(postgresql.INTERVAL()).kind == "interval"
    arr = info(postgresql.ARRAY(st.Integer()))
    assert (arr.kind, arr.item) == ("array", "int")
    assert info(postgresql.INET()).kind == "inet" and info(postgresql.INET()).bits is None
    assert info(postgresql.MONEY()).kind == "other"
    assert info(postgresql.DOMAIN("pos", st.Integer())).kind == "int"
    assert info(postgresql.INTEGER(), computed={"sqltext": "a*2"}).computed
    assert info(postgresql.BOOLEAN(), default="false", nullable=False).has_default


def test_column_info_mariadb() -> None:
    assert info(mysql.BIGINT(unsigned=True), MY, autoincrement=True).generated
    u = info(mysql.BIGINT(unsigned=True), MY)
    assert (u.kind, u.bits, u.unsigned, u.generated) == ("int", 64, True, False)
    assert info(mysql.TINYINT(display_width=1), MY).kind == "bool"
    assert info(mysql.TINYINT(display_width=4), MY).bits == 8
    assert info(mysql.MEDIUMINT(), MY).bits == 24
    assert info(mysql.FLOAT(), MY).bits == 32 and info(mysql.DOUBLE(), MY).bits == 64
    assert (info(mysql.DOUBLE(), MY).scale, info(mysql.DOUBLE(15, 4), MY).scale) == (None, 4)
    assert info(mysql.DECIMAL(5, 0, unsigned=True), MY).unsigned
    e = info(mysql.ENUM("A", "B"), MY)
    assert (e.kind, e.enums) == ("enum", ("A", "B"))
    assert info(mysql.SET("x"), MY).kind == "other"
    y = info(mysql.YEAR(), MY)
    assert (y.kind, y.bounds, y.describe()) == ("int", (0, 2155), "YEAR")
    # TINYTEXT / TEXT / MEDIUMTEXT hold bytes; LONGTEXT 4 GiB (unbounded here)
    assert [(info(t, MY).length, info(t, MY).octets) for t in (mysql.TINYTEXT(), mysql.TEXT(), mysql.MEDIUMTEXT(),
                                                               mysql.LONGTEXT())] == \
        [(None, 255), (None, 65535), (None, 16777215), (None, None)]
    assert info(mysql.CHAR(2), MY).padded and not info(mysql.VARCHAR(2), MY).padded
    assert info(mysql.NCHAR(2), MY).padded and info(postgresql.CHAR(2)).padded
    assert info(mysql.VARCHAR(9), MY, charset="latin1").charset == "latin1"
    assert info(mysql.VARCHAR(9), MY, charset="utf8mb4").charset is None
    assert info(postgresql.TEXT(), charset="latin1").charset is None  # PostgreSQL: the database's UTF-8
    assert info(mysql.TINYINT(display_width=1), MY).bounds is None
    assert info(mysql.ENUM("é"), MY, charset="latin1").charset == "latin1"
    assert info(mysql.SET("é", "a"), MY, charset="latin1").enums == ("é", "a")
    assert info(mysql.ENUM("é"), MY, charset="utf8mb4").charset is None
    assert info(mysql.DATETIME(), MY).precision == 0 and info(mysql.DATETIME(fsp=6), MY).precision == 6
    ts = info(mysql.TIMESTAMP(), MY)
    assert (ts.kind, ts.bits) == ("datetime", 32)
    assert info(mysql.TIME(fsp=3), MY).precision == 3
    b = info(mysql.BINARY(16), MY)
    assert (b.kind, b.length, b.precision) == ("bytes", 16, 16)
    assert info(mysql.VARBINARY(16), MY).precision is None and info(mysql.LONGBLOB(), MY).length is None
    assert [info(t, MY).length for t in (mysql.TINYBLOB(), mysql.BLOB(), mysql.MEDIUMBLOB())] == [255, 65535, 16777215]
    col = {"name": "j", "type": mysql.LONGTEXT(), "nullable": True, "default": None}
    assert column_info(col, MY, json=True).kind == "json"
    assert info(mysql.CHAR(2), MY, default="'DE'", nullable=False).has_default
    assert not info(mysql.VARCHAR(2), MY, default="NULL").has_default


def test_field_specs(env: Env) -> None:
    env.load(one_field("{map: [{crm: a, erp: A}], unmapped: pass}"))
    specs = field_specs(env.config.mappings_dir)
    assert specs[("customers", "id")] is None
    assert specs[("customers", "v")] == {"map": [{"crm": "a", "erp": "A"}], "unmapped": "pass"}
    assert field_specs(env.config.mappings_dir / "missing") == {}


def test_check_config_skips_unreachable_servers(tmp_path: Path) -> None:
    config = make_config(tmp_path, crm_port=1, erp_port=1)  # nothing listens on port 1
    config.mappings_dir.mkdir()
    (config.mappings_dir / "m.yaml").write_text(one_field(), encoding="utf-8")
    assert check_config(config, load_mappings(config)) == []


def test_describe_without_a_type_name() -> None:
    assert C("int", bits=64, unsigned=True).describe() == "BIGINT UNSIGNED"
    assert dec(10, 2).describe() == "NUMERIC(10,2)" and dec(None, None).describe() == "NUMERIC"
    assert vc(5).describe() == "VARCHAR(5)" and TEXT.describe() == "TEXT"
    assert C("enum", enums=("a",)).describe() == "ENUM('a')"


# ---------------------------------------------------------------- CHECK domains


@pytest.mark.parametrize("clause, parsed", [
    # PostgreSQL 15 spellings
    ("a::text = ANY (ARRAY['phone'::character varying, 'email'::character varying]::text[])",
     ("a", (("phone", "email"), None))),
    ("((status)::text = ANY ((ARRAY['it''s'::character varying, 'b'::character varying])::text[]))",
     ("status", (("it's", "b"), None))),
    ("(v::text = ANY (ARRAY['a'::character varying, 'b'::character varying]::text[])) OR v IS NULL",
     ("v", (("a", "b"), None))),
    ("w = ANY (ARRAY[1, 2, 3])", ("w", ((1, 2, 3), None))),
    ("z = 'only'::text", ("z", (("only",), None))),
    ("s >= 1 AND s <= 4", ("s", (None, (1, 4)))),
    ("((severity >= 1) AND (severity <= 4))", ("severity", (None, (1, 4)))),
    ("y > 0 AND y < 100", ("y", (None, (1, 99)))),
    ("x >= 0", ("x", (None, (0, None)))),
    # MariaDB spellings
    ("`a` in ('phone','email')", ("a", (("phone", "email"), None))),
    ("`v` in ('a','b') or `v` is null", ("v", (("a", "b"), None))),
    ("`s` between 1 and 4", ("s", (None, (1, 4)))),
    ("`w` in (1,2,3)", ("w", ((1, 2, 3), None))),
    # anything else is not a domain
    ("q < r", None),
    ("`q` < `r`", None),
    ("x > 0 AND y < 5", None),
    ("length(a) > 3", None),
    ("(amount)::numeric >= 0.5", None),
])
def test_parse_check(clause: str, parsed) -> None:
    assert parse_check(clause) == parsed


def test_column_info_applies_a_check() -> None:
    col = {"name": "c", "type": postgresql.VARCHAR(12), "nullable": False, "default": None}
    assert column_info(col, PG, check=(("phone", "email"), None)).enums == ("phone", "email")
    small = {"name": "c", "type": postgresql.SMALLINT(), "nullable": False, "default": None}
    info4 = column_info(small, PG, check=(None, (1, 4)))
    assert info4.bounds == (1, 4) and info4.describe() == "SMALLINT CHECK 1..4"
    assert column_info(small, PG, check=((1, 2, 3), None)).bounds == (1, 3)
    assert column_info(small, PG, check=(None, (0, None))).bounds == (0, 32767)


def test_column_info_reads_a_domain_check() -> None:
    pct = postgresql.DOMAIN("pct", st.SmallInteger(), check="VALUE >= 0 AND VALUE <= 100")
    assert column_info({"name": "p", "type": pct, "nullable": True, "default": None}, PG).bounds == (0, 100)


CHECKED = vc(12, enums=("phone", "email"))


@pytest.mark.parametrize("src, dst, verdict", [
    (CHECKED, C("enum", enums=("phone", "email", "visit")), FIT),
    (CHECKED, C("enum", enums=("phone",)), LOSSY),
    (C("enum", enums=("phone",)), CHECKED, FIT),
    (C("enum", enums=("phone", "fax")), CHECKED, LOSSY),
    (vc(12), CHECKED, LOSSY),
    (CHECKED, vc(5), FIT),  # the longest allowed value has 5 characters
    (CHECKED, vc(4), LOSSY),
    (C("int", bits=16, bounds=(1, 4)), C("int", bits=8), FIT),
    (C("int", bits=8), C("int", bits=16, bounds=(1, 4)), LOSSY),
    (C("int", bits=64, bounds=(0, 999)), dec(3, 0), FIT),
])
def test_cast_with_check_domains(src: ColumnInfo, dst: ColumnInfo, verdict: str) -> None:
    assert _cast(src, dst)[0] == verdict, _cast(src, dst)


def test_checked_target_message_and_fix(env: Env) -> None:
    (msg,) = pair(env, C("int", bits=8, type_name="TINYINT(4)"), C("int", bits=16, bounds=(1, 4), type_name="SMALLINT"))
    assert "TINYINT(4) (-128..127) into SMALLINT CHECK 1..4 narrows" in msg
    assert "fix: add the same CHECK to public.customer.v so its values always fit, relax the CHECK of " \
           "erpdb.customers.v, or add `lossy: allow`" in msg


def test_map_must_cover_a_checked_text_source(env: Env) -> None:
    (msg,) = pair(env, CHECKED, C("enum", enums=("P", "E")), "{map: [{crm: phone, erp: P}]}")
    assert "values 'email' of crm:public.customer.v VARCHAR(12) CHECK IN ('phone','email') are not in the map" in msg


def test_constant_into_a_checked_text_column(env: Env) -> None:
    (msg,) = env.failures(one_field("{crm: ~, constant: fax}"), {"id": PK}, {"id": PK, "v": CHECKED})
    assert "'fax' is not allowed by the CHECK of VARCHAR(12) CHECK IN ('phone','email')" in msg


def test_gate_values_of_a_checked_text_column(env: Env) -> None:
    gate = "    gate:\n      crm_to_erp: {column: channel, becomes: fax}\n"
    (msg,) = env.failures(one_field(extra=gate), {"id": PK, "v": INT, "channel": CHECKED}, {"id": PK, "v": INT})
    assert "gate values 'fax' are not values of public.customer.channel" in msg


# ---------------------------------------------------------------- refused or warned


@pytest.mark.parametrize("src, dst, refused", [
    (vc(100), vc(50), False),  # too long: strict mode rejects the row, loudly
    (BIGINT, INT, False),  # out of range: rejected, loudly
    (dec(10, 4), dec(10, 2), True),  # rounded silently: refused
    (C("float", bits=64), dec(12, 2), True),  # rounded silently: refused
    (C("datetime", precision=6), C("datetime", precision=0), True),  # fraction cut silently: refused
    (C("datetime"), C("date"), True),  # time of day dropped silently: refused
    (dec(10, 2), INT, True),  # fraction rounded away silently: refused
    (dec(18, 0), INT, False),  # a whole number out of range: rejected, loudly
])
def test_silent_losses_are_refused_loud_ones_are_warnings(env: Env, src: ColumnInfo, dst: ColumnInfo,
                                                          refused: bool) -> None:
    (finding,) = [f for f in env.check(one_field("~", "crm_to_erp"), {"id": PK, "v": src}, {"id": PK, "v": dst})
                  if not f.ok]
    assert "lossy cast" in finding.what
    assert finding.warning is not refused
    assert bool(failures([finding])) is refused


@pytest.mark.parametrize("clause, column, values", [
    ("`a``b` in ('x','y\"z')", "a`b", ("x", 'y"z')),
    ('("two words")::text = ANY (ARRAY[\'a\'::text, \'b\'::text])', "two words", ("a", "b")),
    ('"q""d" IN (\'it\'\'s\')', 'q"d', ("it's",)),
    ("`naïve ü` = 'é'", "naïve ü", ("é",)),
    ("`select` in ('a')", "select", ("a",)),
])
def test_check_clauses_on_quoted_column_names(clause: str, column: str, values: tuple) -> None:
    assert parse_check(clause) == (column, (values, None))


def test_mariadb_reflection_undoubles_backticks_in_names() -> None:
    """SQLAlchemy's MariaDB reflection leaves `a``b` as 'a``b'; check and preflight read the real name."""
    from sqlalchemy.dialects.mysql.mariadb import MariaDBDialect
    from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

    from replicator.mapping.check.catalog import reflected_name

    assert reflected_name(MariaDBDialect(), "a``b") == "a`b"
    assert reflected_name(MariaDBDialect(), "a````b") == "a``b"
    assert reflected_name(PGDialect_psycopg2(), "a``b") == "a``b"  # PostgreSQL names come back as they are


# ---------------------------------------------------------------- round 8: edges found by probing live servers

from dataclasses import replace  # noqa: E402

from replicator.mapping.check.casts import _loud  # noqa: E402

YEAR = C("int", bits=16, unsigned=True, bounds=(0, 2155), type_name="YEAR")
MY_BOOL = C("bool", bits=8, type_name="TINYINT(1)")
MY_UUID = C("uuid", bits=128, type_name="UUID")
CHAR10 = C("text", length=10, padded=True, type_name="CHAR(10)")
LATIN1 = C("text", length=20, charset="latin1", type_name="VARCHAR(20)")
MY_TEXT = C("text", octets=65535, type_name="TEXT")


@pytest.mark.parametrize("src, dst, verdict, loud", [
    # CHAR(n) reads back without trailing spaces: from a VARCHAR / text, silent (refused)
    (vc(10), CHAR10, LOSSY, False),
    (C("text"), CHAR10, LOSSY, False),
    (CHAR10, CHAR10, FIT, None),
    (C("int", bits=16), CHAR10, FIT, None),  # no integer ends with a space
    # a character set narrower than the source's: the server refuses the row (a warning)
    (vc(20), LATIN1, LOSSY, True),
    (C("text", length=20, charset="ascii"), LATIN1, FIT, None),
    (LATIN1, LATIN1, FIT, None),
    (LATIN1, C("text", length=20, charset="utf8mb3"), FIT, None),
    (vc(20), C("text", length=20, charset="utf8mb3"), LOSSY, True),  # emoji
    (C("enum", enums=("a", "b")), LATIN1, FIT, None),
    (C("enum", enums=("a", "漢")), LATIN1, LOSSY, True),
    (C("date"), LATIN1, FIT, None),
    # MariaDB TINYTEXT / TEXT count bytes
    (C("text"), MY_TEXT, LOSSY, True),
    (vc(16383), MY_TEXT, FIT, None),
    (vc(16384), MY_TEXT, LOSSY, True),
    (C("text", length=65535, charset="latin1"), C("text", octets=65535, charset="latin1"), FIT, None),
    (vc(63), C("text", octets=255, type_name="TINYTEXT"), FIT, None),
    (vc(64), C("text", octets=255, type_name="TINYTEXT"), LOSSY, True),
    # YEAR: 0 and 1901..2155
    (YEAR, C("int", bits=16), FIT, None),
    (C("int", bits=16), YEAR, LOSSY, True),
    (YEAR, vc(4), FIT, None),
    # a MariaDB BOOLEAN is a TINYINT: 2 is a row error in a PostgreSQL boolean
    (MY_BOOL, C("bool"), LOSSY, True),
    (replace(MY_BOOL, bounds=(0, 1)), C("bool"), FIT, None),
    (MY_BOOL, C("int", bits=16), FIT, None),
    (C("bool"), MY_BOOL, FIT, None),
    # a MariaDB UUID travels as 16 bytes: into text, silent garbage or a row error (refused)
    (MY_UUID, vc(36), LOSSY, False),
    (MY_UUID, C("uuid"), FIT, None),
    (C("uuid"), vc(36), FIT, None),
    # jsonb keeps the last of duplicate keys, MariaDB reads the first: a row error
    (C("json", type_name="LONGTEXT"), C("json", type_name="JSONB"), LOSSY, True),
    (C("json", type_name="LONGTEXT"), C("json", type_name="JSON"), FIT, None),
    (C("json", type_name="JSONB"), C("json", type_name="LONGTEXT"), FIT, None),
    # a latin1 ENUM / SET's non-ASCII member names arrive as '' (mysql-replication reads them as UTF-8)
    (C("enum", enums=("é", "a"), charset="latin1"), vc(5), ERROR, None),
    (C("other", enums=("é", "a"), charset="latin1"), vc(5), ERROR, None),
    (C("enum", enums=("b", "a"), charset="latin1"), vc(5), FIT, None),
    (C("enum", enums=("é", "a"), charset="utf8mb3"), vc(5), FIT, None),
    (C("enum", enums=("é", "a")), C("enum", enums=("é", "a")), FIT, None),
    # a PostgreSQL timetz has no MariaDB TIME form
    (C("time", precision=6, timezone=True), C("time", precision=6, bits=24), ERROR, None),
    (C("time", precision=6, timezone=True), C("interval"), ERROR, None),
    # an interval into text is its ISO 8601 text, 56 characters at most; text into an interval is not exact
    (C("interval"), vc(56), FIT, None),
    (C("interval"), C("text", octets=255, charset="utf8mb4"), FIT, None),  # a TINYTEXT: 224 bytes at most
    (C("interval"), vc(55), LOSSY, True),  # a longer one is the server's row error
    (C("text"), C("interval"), LOSSY, False),
    (vc(56), C("interval"), LOSSY, False),
    (C("time", precision=6, bits=24), C("time", precision=6, timezone=True), LOSSY, True),  # -838:59:59
])
def test_cast_edges_found_by_probing(src: ColumnInfo, dst: ColumnInfo, verdict: str, loud: bool | None) -> None:
    got = _cast(src, dst)
    assert got[0] == verdict, got
    if loud is not None:
        assert _loud(src, dst) is loud, got


def test_column_info_reads_a_boolean_check() -> None:
    col = {"name": "b", "type": mysql.TINYINT(display_width=1), "nullable": True, "default": None}
    assert column_info(col, MY, check=((0, 1), None)).bounds == (0, 1)
    assert column_info(col, MY, check=(None, (0, 1))).bounds == (0, 1)
    assert column_info(col, MY).bounds is None


def test_folded_keys_of_a_mariadb_collation() -> None:
    """Two source keys that a MariaDB key column's collation compares equal are one row there: the upsert of
    the second overwrites the first (a warning naming the collation)."""
    from replicator.mapping.check.casts import folded_keys
    ci = C("text", length=20, collation="utf8mb4_general_ci")
    assert "letter case, accents or trailing spaces" in folded_keys(C("text"), ci)
    assert "only in trailing spaces" in folded_keys(C("text"), C("text", length=20, collation="utf8mb4_bin"))
    assert folded_keys(C("text"), C("text", length=20, collation="utf8mb4_nopad_bin")) is None
    assert folded_keys(C("text"), C("text", length=20)) is None  # PostgreSQL: compares exactly
    assert folded_keys(ci, ci) is None  # the source compares its keys the same way
    assert folded_keys(C("int", bits=32), ci) is None
    assert folded_keys(C("enum", enums=("new", "paid")), ci) is None
    assert folded_keys(C("enum", enums=("new", "NEW")), ci) is not None
    assert folded_keys(C("enum", enums=("e", "é")), ci) is not None
    assert folded_keys(C("enum", enums=("e", "é")), C("text", collation="utf8mb4_bin")) is None
    assert folded_keys(C("text", enums=("a", "a ")), C("text", collation="utf8mb4_bin")) is not None


def test_postgresql_money_is_refused_into_anything_but_text() -> None:
    """money travels as its lc_monetary text ('$12.34'): into a number every value was a row error while check
    said "not checked" (docs/types.md, "Edges found by probing")."""
    from replicator.mapping.check.casts import ERROR, UNKNOWN, _cast
    from replicator.mapping.check.columns import ColumnInfo
    money = ColumnInfo("other", type_name="MONEY")
    verdict, why = _cast(money, ColumnInfo("decimal", precision=15, scale=2, type_name="DECIMAL(15,2)"))
    assert verdict == ERROR and "lc_monetary text" in why and "no decimal" in why
    assert _cast(money, ColumnInfo("float", bits=64))[0] == ERROR
    assert _cast(money, ColumnInfo("text", length=40))[0] == UNKNOWN  # the text PostgreSQL shows: a warning
    assert _cast(ColumnInfo("other", type_name="BIT(3)"), ColumnInfo("decimal"))[0] == UNKNOWN  # as before


def test_json_into_bounded_text_warns_that_the_whole_document_arrives_and_names_json_get(env: Env) -> None:
    # Odoo's translatable jsonb names onto ERPNext's varchar(140): the length was the only thing said
    findings = env.check(one_field(), {"id": PK, "v": C("json", type_name="JSONB")}, {"id": PK, "v": vc(140)})
    (warned,) = [f for f in findings if not f.ok]
    assert warned.warning and "the document's text arrives whole" in warned.what
    assert "`transform: [{json_get: en_US}]`" in warned.what, warned.what
    # with the transform, the transform decides what arrives: nothing to say
    assert [f for f in env.check(one_field("{transform: [{json_get: en_US}]}"),
                                 {"id": PK, "v": C("json", type_name="JSONB")}, {"id": PK, "v": vc(140)})
            if not f.ok] == []


def _contacts(template: str) -> str:
    return f"""\
mappings:
  customers:
    direction: crm_to_erp
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [name], generate: {{name: {template}}}}}
    link: {{crosswalk: true}}
    fields:
      first: {{erp: first_name}}
      code: ~
"""


def test_a_made_key_that_may_not_fit_its_column_warns_with_its_widest_form(env: Env) -> None:
    # ERPNext's tabContact.name is varchar(140): "{first}-{uuid}" over a 140-character first_name makes 177
    crm = {"id": PK, "first": vc(140), "code": vc(10)}
    erp = {"name": vc(140), "first_name": vc(140), "code": vc(10)}
    (msg,) = env.failures(_contacts('{template: "{first}-{uuid}"}'), crm, erp)
    assert ("erp: m.yaml:3: mappings.customers.erp.generate: name = '{first}-{uuid}' makes keys of up to 177 "
            "characters, erpdb.customers.name holds 140: a longer key is a row error when the row is created") in msg
    # what fits says nothing: a uuid, a template over a narrow column
    assert env.failures(_contacts("uuid"), crm, erp) == []
    assert env.failures(_contacts('{template: "C-{code}-{uuid}"}'), crm, erp) == []  # 2 + 10 + 1 + 36
    # a uuid into char(32) does not fit
    (msg,) = env.failures(_contacts("uuid"), crm, {**erp, "name": vc(32)})
    assert "name = uuid makes keys of up to 36 characters" in msg


def test_a_nullable_column_into_a_not_null_one_warns_that_a_null_is_a_row_error(env: Env) -> None:
    # Frappe: every Currency column is NOT NULL DEFAULT 0; Odoo's price_subtotal is a nullable numeric
    src, dst = dec(None, None), dec(21, 9, nullable=False, has_default=True)
    (msg,) = env.failures(one_field("{lossy: allow}"), {"id": PK, "v": src}, {"id": PK, "v": dst})
    assert ("m.yaml:8: mappings.customers.fields.v: crm:public.customer.v may be NULL, erp:erpdb.customers.v is "
            "NOT NULL (crm_to_erp): a NULL is a row error") in msg, msg
    assert "add `default: <value>` to the field" in msg
    # a field that decides what a NULL becomes, or a source that has none, says nothing
    assert env.failures(one_field("{lossy: allow, default: 0}"), {"id": PK, "v": src}, {"id": PK, "v": dst}) == []
    assert env.failures(one_field("{lossy: allow}"), {"id": PK, "v": dec(None, None, nullable=False)},
                        {"id": PK, "v": dst}) == []


def test_a_filter_that_refuses_null_keeps_the_warning_away(env: Env) -> None:
    # Twenty's person.companyId is nullable, Akaunting's contact_persons.contact_id NOT NULL; the mapping's filter
    # {companyId: {is_null: false}} never sends a person without a company, yet `check` warned of its NULL
    src, dst = C("int", bits=64), C("int", bits=64, nullable=False)
    for cond in ("{is_null: false}", "{gt: 0}", "7", "{in: [1, 2]}"):
        extra = f"    filter: {{crm_to_erp: {{v: {cond}}}}}\n"
        assert env.failures(one_field(extra=extra), {"id": PK, "v": src}, {"id": PK, "v": dst}) == [], cond
    for cond in ("{is_null: true}", "{ne: 7}", "{not_in: [1]}"):  # NULL passes these: still a warning
        extra = f"    filter: {{crm_to_erp: {{v: {cond}}}}}\n"
        (msg,) = env.failures(one_field(extra=extra), {"id": PK, "v": src}, {"id": PK, "v": dst})
        assert "may be NULL" in msg, (cond, msg)
    # a filter on another column says nothing about this one
    extra = "    filter: {crm_to_erp: {id: {is_null: false}}}\n"
    assert len(env.failures(one_field(extra=extra), {"id": PK, "v": src}, {"id": PK, "v": dst})) == 1


def test_a_value_map_sends_null_on_as_null_so_a_nullable_source_into_not_null_still_warns(env: Env) -> None:
    """SuiteCRM's `deleted` is a nullable tinyint(1); iDempiere's `isactive` a NOT NULL char(1) 'Y'/'N'. Through a
    value map a NULL stays NULL: `check` said nothing and the NULL was a row error at run time."""
    flag, yn = C("int", bits=8), vc(1, nullable=False, has_default=True)
    spec = "{erp: v, map: [{crm: 0, erp: 'Y'}, {crm: 1, erp: 'N'}]}"
    (msg,) = env.failures(one_field(spec), {"id": PK, "v": flag}, {"id": PK, "v": yn})
    assert "crm:public.customer.v may be NULL, erp:erpdb.customers.v is NOT NULL (crm_to_erp)" in msg, msg
    assert "add `default: <value>` to the field (the value a NULL becomes, after its value map; " \
           "`default: {crm_to_erp: <value>}` for this direction only)" in msg, msg
    # a default after the map decides it
    assert env.failures(one_field(spec[:-1] + ", default: 'Y'}"), {"id": PK, "v": flag}, {"id": PK, "v": yn}) == []


def test_a_default_for_one_direction_of_a_two_way_field(env: Env) -> None:
    """One `default:` serves both directions, so a two-way Y/N field could not say what SuiteCRM's NULL
    `deleted` becomes in iDempiere: 'Y' was checked (and would be written) into the tinyint too."""
    flag, yn = C("int", bits=8), vc(1, nullable=False, has_default=True)
    both = "{erp: v, map: [{crm: 0, erp: 'Y'}, {crm: 1, erp: 'N'}], default: 'Y'}"
    msgs = env.failures(one_field(both, direction="both"), {"id": PK, "v": flag}, {"id": PK, "v": yn})
    assert any("default into crm:public.customer.v (erp_to_crm)" in m for m in msgs), msgs
    one_way = "{erp: v, map: [{crm: 0, erp: 'Y'}, {crm: 1, erp: 'N'}], default: {crm_to_erp: 'Y'}}"
    assert [m for m in env.failures(one_field(one_way, direction="both"), {"id": PK, "v": flag},
                                    {"id": PK, "v": yn}) if "default" in m] == []
    flows = {f.stream: f for f in env.load(one_field(one_way, direction="both")).mappings[0].flows}
    (to_erp,) = [p for p in flows["crm_to_erp"].plans if p.name == "v"]
    (to_crm,) = [p for p in flows["erp_to_crm"].plans if p.name == "v"]
    assert to_erp.convert is not None and to_erp.convert(None, {}) == "Y" and to_erp.convert(1, {}) == "N"
    assert to_crm.convert is not None and to_crm.convert(None, {}) is None and to_crm.convert("Y", {}) == 0
    from replicator.errors import ConfigError
    # a direction the mapping does not have is named
    with pytest.raises(ConfigError, match="default direction 'crm_to_idempiere' is not one of this mapping's: "
                                          "crm_to_erp and erp_to_crm"):
        env.load(one_field("{default: {crm_to_idempiere: 'Y'}}", direction="both"))
    # a plain mapping value (a JSON default) is not taken for directions
    assert env.load(one_field("{default: {a: 1}}")).mappings[0].flows[0].plans[1].convert(None, {}) == {"a": 1}


@pytest.mark.parametrize("src, dst, verdict", [
    # MariaDB 10.11's UUID refuses a 7th byte 80-ff with a 9th byte 01-80, which a PostgreSQL uuid holds
    (C("uuid", type_name="UUID"), C("uuid", bits=128, type_name="UUID"), LOSSY),
    (C("uuid", bits=128, type_name="UUID"), C("uuid", type_name="UUID"), FIT),
    (C("uuid", type_name="UUID"), C("uuid", type_name="UUID"), FIT),
    # PostgreSQL's json keeps a lone surrogate escape, which MariaDB's json_valid refuses; jsonb refused it itself
    (C("json", type_name="JSON"), C("json", type_name="LONGTEXT"), LOSSY),
    (C("json", type_name="JSONB"), C("json", type_name="LONGTEXT"), FIT),
    (C("json", type_name="JSON"), C("json", type_name="JSON"), FIT),
])
def test_values_mariadb_refuses_that_postgresql_holds_warn(src: ColumnInfo, dst: ColumnInfo, verdict: str) -> None:
    got = _cast(src, dst)
    assert got[0] == verdict, got
    if verdict == LOSSY:
        assert _loud(src, dst), "a warning (a row error per value), not refused"


def test_a_key_of_espocrm_width_is_made_by_hex_and_a_uuid_warning_names_it(env: Env) -> None:
    # EspoCRM keys every row by VARCHAR(17), 17 hex digits its application makes: a uuid (36) cannot go there,
    # and the warning's only fix was "widen the column", which EspoCRM's schema rebuild undoes
    crm = {"id": PK, "first": vc(140), "code": vc(10)}
    erp = {"name": vc(17), "first_name": vc(140), "code": vc(10)}
    (msg,) = env.failures(_contacts("uuid"), crm, erp)
    assert "name = uuid makes keys of up to 36 characters" in msg and "generate: {name: {hex: 17}}" in msg, msg
    assert env.failures(_contacts("{hex: 17}"), crm, erp) == []
    (msg,) = env.failures(_contacts("{hex: 20}"), crm, erp)
    assert "name = {hex: 20} makes keys of up to 20 characters" in msg, msg


def test_hex_keys_have_the_length_asked_and_differ() -> None:
    from replicator.errors import ConfigError, Where
    from replicator.mapping.keygen import compile_generate

    (gen,) = compile_generate({"id": {"hex": 17}}, ("id",), set(), Where("m.yaml", 3, "generate"))
    made = {gen.make({}) for _ in range(1000)}
    assert len(made) == 1000 and all(len(k) == 17 and set(k) <= set("0123456789abcdef") for k in made)
    for bad in (8, 65, "17", True):
        with pytest.raises(ConfigError, match="number of random hex digits, 12 to 64"):
            compile_generate({"id": {"hex": bad}}, ("id",), set(), Where("m.yaml", 3, "generate"))


def test_live_catalogs_hands_an_unreadable_server_to_on_error(tmp_path: Path) -> None:
    """The one loop `check` and the stream's shape guard read catalogs through: a server that cannot be read goes
    to `on_error` (which skips it or raises), a connection not asked about is not read."""
    from replicator.mapping.check.catalog import live_catalogs

    config = make_config(tmp_path, crm_port=1, erp_port=1)  # nothing listens on port 1
    errors: list[tuple[str, str]] = []
    out = live_catalogs(config, {"crm": [CRM]}, lambda conn, exc: errors.append((conn.name, type(exc).__name__)))
    assert out == {} and [name for name, _e in errors] == ["crm"]

    class Stop(Exception):
        pass

    def stop(_conn: object, exc: Exception) -> None:
        raise Stop(str(exc))
    with pytest.raises(Stop):
        live_catalogs(config, {"erp": [ERP]}, stop)


OPTIONAL_FOLD = """\
mappings:
  customers:
    direction: DIRECTION
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id], optional: true}
    fields:
      id: ~
      v: ~
  customer_names:
    direction: both
    crm: {table: customer_group, key: [customer_id]}
    erp: {table: customers, key: [id]}
    fold: {parent: customers, child: crm, by: customer_id, value: group_name, into: name}
"""


@pytest.mark.parametrize("direction", ["both", "crm_to_erp", "erp_to_crm"])
def test_a_fold_into_an_optional_table_its_parent_mapping_does_not_write_from_the_child_side_warns(
        env: Env, direction: str) -> None:
    # optfold15: the stream makes a missing optional parent row whole from the parent mapping's flow; one that
    # flows only the other way has nothing to make it with, a row error at run time: said in advance
    extra = {("crm", TableRef("public", "customer_group")): {"customer_id": PK, "group_name": vc(100)}}
    found = env.check(OPTIONAL_FOLD.replace("DIRECTION", direction), {"id": PK, "v": INT},
                      {"id": PK, "v": INT, "name": vc(100)}, extra=extra)
    warned = [f"{f.side}: {f.what} | fix: {f.fix}" for f in found if f.warning and "optional: true" in f.what]
    if direction == "erp_to_crm":
        (w,) = warned
        assert w.startswith("erp: ") and "erpdb.customers is `optional: true` in mapping customers, which does " \
            "not create its rows from crm: a child row whose parent has no row in erpdb.customers yet has nowhere " \
            "to go, a row error naming table, key and column (crm_to_erp)" in w, w
        assert "let mapping customers write erpdb.customers from crm too" in w
    else:
        assert warned == []
