"""MariaDB zero dates (docs/types.md, "Zero dates"): the `zero_date` option (mapping/model.py), the router's
decision (a row error naming table, key and column unless the field says `zero_date: null`; nothing for a
filtered-out row or an unmapped column), the decoders naming the columns (rowcompile.marked), and `check`'s
warning (mapping/check/zerodates.py)."""
from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from replicator.changes import Op, RowChange, TableRef, ZeroDatedRow, zero_dated
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.check.zerodates import SAMPLE_ROWS, FlaggedRow, StoredDates, zero_dates_allowed
from replicator.mapping.router import route, route_all, route_flow, target_values
from replicator.sources.rowcompile import compile_table
from replicator.sources.rowdecode import RowDecoder
from tests.unit.mapsets import config, error, load  # noqa: F401 (config: the fixture)
from tests.unit.test_mapping_check import PK, C, Env

ERP = TableRef("erpdb", "deals")

TEXT = """\
mappings:
  deals:
    direction: erp_to_crm
    on_error: quarantine
    {mapping_option}
    filter: {{erp_to_crm: {{kind: {{ne: skip}}}}}}
    crm: {{table: deal, key: [id]}}
    erp: {{table: deals, key: [id]}}
    fields:
      id: ~
      closed: {closed}
      created: {{zero_date: null}}
"""


def mset_of(config: Config, closed: str = "~", mapping_option: str = "") -> object:
    return load(config, TEXT, closed=closed, mapping_option=mapping_option)


def insert(row: dict, zero: tuple[str, ...]) -> RowChange:
    return RowChange(ERP, Op.INSERT, None, zero_dated(row, zero))


ROW = {"id": 7, "closed": None, "created": None, "other": None, "kind": "keep"}


# ---------------------------------------------------------------- the option

def test_the_option_is_read_per_field_and_per_mapping(config: Config) -> None:
    flow = mset_of(config).mappings[0].flows[0]
    assert {p.name: p.zero_null for p in flow.plans} == {"id": False, "closed": False, "created": True}
    assert flow.zero_refused == {"id", "closed"}
    flow = mset_of(config, mapping_option="zero_date: null").mappings[0].flows[0]
    assert all(p.zero_null for p in flow.plans) and flow.zero_refused == frozenset()
    # a field's `zero_date: error` overrides its mapping's null
    flow = mset_of(config, "{zero_date: error}", "zero_date: null").mappings[0].flows[0]
    assert flow.zero_refused == {"closed"}


@pytest.mark.parametrize("value", ["'null'", "true", "0", "[null]", "none"])
def test_a_wrong_value_names_file_line_and_key(config: Config, value: str) -> None:
    msg = error(config, TEXT, closed=f"{{zero_date: {value}}}", mapping_option="")
    assert msg.startswith("m.yaml:11: mappings.deals.fields.closed.zero_date: zero_date is null"), msg
    assert "or error (the default: a row error)" in msg


def test_a_wrong_mapping_value_names_its_line(config: Config) -> None:
    msg = error(config, TEXT, closed="~", mapping_option="zero_date: NULL-ish")
    assert msg.startswith("m.yaml:5: mappings.deals.zero_date: zero_date is null"), msg


# ---------------------------------------------------------------- the router's decision

def test_a_zero_date_in_a_refused_column_is_a_row_error_naming_table_key_and_column(config: Config) -> None:
    mset = mset_of(config)
    change = insert(dict(ROW), ("closed",))
    for call in (lambda: route(mset, "erp", change), lambda: route_all(mset, "erp", [change]),
                 lambda: route_flow(mset.mappings[0].flows[0], change, stream=True)):
        with pytest.raises(RowError) as info:
            call()
        assert (info.value.table, info.value.key, info.value.column) == ("erpdb.deals", (7,), "closed")
        assert "mapping deals, field closed: the value is a MariaDB zero date" in str(info.value)
        assert "zero_date: null" in str(info.value)


def test_verify_and_explain_value_the_row_the_same_way(config: Config) -> None:
    flow = mset_of(config).mappings[0].flows[0]
    row = zero_dated(dict(ROW), ("closed",))
    with pytest.raises(RowError, match="column closed"):
        target_values(flow, RowChange(ERP, Op.INSERT, None, row), row)


@pytest.mark.parametrize("zero, row", [
    (("created",), ROW),  # its field says zero_date: null
    (("other",), ROW),  # a column no field carries
    (("closed",), {**ROW, "kind": "skip"}),  # a row the filter leaves out
])
def test_what_is_not_refused(config: Config, zero: tuple[str, ...], row: dict) -> None:
    mset = mset_of(config)
    routed = route_all(mset, "erp", [insert(dict(row), zero), insert({**ROW, "id": 8}, ())])
    assert [tc.key for tc in routed] == ([(7,), (8,)] if row["kind"] != "skip" else [(8,)])
    assert all(tc.values.get("closed", None) is None for tc in routed)


def test_a_delete_reads_only_the_key(config: Config) -> None:
    mset = mset_of(config)
    change = RowChange(ERP, Op.DELETE, zero_dated(dict(ROW), ("closed",)), None)
    assert [tc.op for tc in route(mset, "erp", change)] == [Op.DELETE]


def test_an_update_into_a_zero_date_is_refused(config: Config) -> None:
    mset = mset_of(config)
    change = RowChange(ERP, Op.UPDATE, {**ROW, "closed": "2024-01-01"}, zero_dated(dict(ROW), ("closed",)))
    with pytest.raises(RowError, match="column closed"):
        route_all(mset, "erp", [change])


def test_a_zero_dated_row_is_a_dict_equal_to_its_values_and_copies_keep_the_columns() -> None:
    import copy
    import pickle
    row = zero_dated({"a": None, "b": 1}, ("a", "a"))
    assert row == {"a": None, "b": 1} and isinstance(row, ZeroDatedRow) and row.zero_dates == ("a",)
    assert pickle.loads(pickle.dumps(row)).zero_dates == ("a",) and copy.copy(row).zero_dates == ("a",)
    plain = {"a": 1}
    assert zero_dated(plain, ()) is plain


# ---------------------------------------------------------------- the decoders name the columns

def _col(name: str, t: int, **kw: object) -> SimpleNamespace:
    return SimpleNamespace(name=name, type=t, unsigned=False, **kw)


COLUMNS = [_col("id", FIELD_TYPE.LONG), _col("d", FIELD_TYPE.DATE), _col("ts", FIELD_TYPE.TIMESTAMP2, fsp=0)]


def _row(i: int, ymd: tuple[int, int, int], ts: int) -> bytes:
    y, m, d = ymd
    return b"\x00" + struct.pack("<i", i) + (d | m << 5 | y << 9).to_bytes(3, "little") + struct.pack(">i", ts)


def test_lean_decoding_names_the_zero_dated_columns_of_each_image_and_only_pays_when_it_counts_some() -> None:
    rd = RowDecoder(utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True, exact_values=True)
    dec = compile_table(COLUMNS, utc_timestamps=True, sets_as_text="definition", zero_timestamps_as_none=True,
                        exact_values=True)
    assert dec is not None
    body = _row(1, (2024, 1, 2), 1_700_000_000) + _row(2, (0, 0, 0), 0) + _row(3, (2024, 0, 5), 5)
    got = rd.decode_lean(dec, "write", 3, b"\xff", None, body)
    assert got is not None
    pairs, zero = got
    assert zero == 3
    assert [getattr(a, "zero_dates", None) for _, a in pairs] == [None, ("d", "ts"), ("d",)]
    assert [getattr(a, "zero_texts", None) for _, a in pairs] == [
        None, {"d": "0000-00-00", "ts": "0000-00-00 00:00:00"}, {"d": "2024-00-05"}]
    assert [a["d"] for _, a in pairs][1:] == [None, None]
    clean = _row(1, (2024, 1, 2), 1_700_000_000)
    got = rd.decode_lean(dec, "write", 3, b"\xff", None, clean)
    assert got is not None and got[1] == 0 and type(got[0][0][1]) is dict
    # an update: each image names its own
    upd = rd.decode_lean(dec, "update", 3, b"\xff", b"\xff", _row(1, (0, 0, 0), 5) + _row(1, (2024, 1, 2), 5))
    assert upd is not None
    (before, after), = upd[0]
    assert before.zero_dates == ("d",) and type(after) is dict


# ---------------------------------------------------------------- check

NO_ZERO = "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO"


@pytest.mark.parametrize("mode, allowed", [
    ("", True), ("STRICT_TRANS_TABLES", True), ("NO_ZERO_DATE,NO_ZERO_IN_DATE", True),
    ("STRICT_ALL_TABLES,NO_ZERO_DATE", True), (NO_ZERO, False),
    ("strict_all_tables,no_zero_date,no_zero_in_date", False),
])
def test_which_sql_modes_allow_zero_dates(mode: str, allowed: bool) -> None:
    assert zero_dates_allowed(mode) is allowed


CHECK_TEXT = """\
mappings:
  customers:
    direction: {direction}
    crm: {{table: customer, key: [id]}}
    erp: {{table: customers, key: [id]}}
    fields:
      id: ~
      since: ~
      seen: {{zero_date: null}}
      name: ~
"""


def zero_warnings(env: Env, mode: str | None, direction: str = "erp_to_crm") -> list[str]:
    cols = {"id": PK, "since": C("date"), "seen": C("datetime", bits=32), "name": C("text")}
    return [f"{f.side}: {f.what} | fix: {f.fix}".replace(str(env.config.mappings_dir) + "/", "")
            for f in env.check(CHECK_TEXT.format(direction=direction), dict(cols), dict(cols),
                               sql_modes=None if mode is None else {"erp": mode})
            if f.warning and "zero date" in f.what]


def test_check_warns_once_per_carried_date_field_when_the_server_allows_zero_dates(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (msg,) = zero_warnings(env, "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO")
    assert msg.startswith("erp: m.yaml:8: mappings.customers.fields.since: field since carries "
                          "erp:erpdb.customers.since (DATE) to PostgreSQL, and erp's global sql_mode "
                          "(STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO) allows zero dates"), msg
    assert "give the field zero_date: null" in msg and "NO_ZERO_DATE,NO_ZERO_IN_DATE to erp's sql_mode" in msg
    assert zero_warnings(env, NO_ZERO) == []  # the server refuses them
    assert zero_warnings(env, None) == []  # not read (unreachable)
    assert zero_warnings(env, "", "crm_to_erp") == []  # into MariaDB: no zero date comes from PostgreSQL
    (both,) = zero_warnings(env, "", "both")  # the MariaDB -> PostgreSQL direction of a two-way mapping
    assert "field since" in both


def test_check_warns_of_a_carried_column_that_already_holds_zero_dates_whatever_the_sql_mode(tmp_path: Path
                                                                                               ) -> None:
    """Rows stored before the server was made strict (or by a session with its own sql_mode): `check` counts them in
    a bounded read (`stored_zero_dates`) and warns of the field that would carry them; not of one that says
    zero_date: null."""
    env = Env(tmp_path)
    cols = {"id": PK, "since": C("date"), "seen": C("datetime", bits=32), "name": C("text")}
    erp = TableRef("erpdb", "customers")
    stored = {("erp", erp): StoredDates(1200, (*[FlaggedRow({}, frozenset({"since"}), frozenset())] * 3,
                                               *[FlaggedRow({}, frozenset({"seen"}), frozenset())] * 7))}
    found = [f"{f.what} | fix: {f.fix}".replace(str(env.config.mappings_dir) + "/", "")
             for f in env.check(CHECK_TEXT.format(direction="erp_to_crm"), dict(cols), dict(cols),
                                sql_modes={"erp": NO_ZERO}, stored_zero=stored) if f.warning and "zero date" in f.what]
    (msg,) = found
    assert msg.startswith("m.yaml:8: mappings.customers.fields.since: field since carries erp:erpdb.customers.since "
                          "(DATE) to PostgreSQL, and the column already holds zero dates (3 in its 1,200 rows)"), msg
    assert "WHERE (MONTH(`since`) = 0 OR DAYOFMONTH(`since`) = 0);" in msg and "give the field zero_date: null" in msg
    big = {("erp", erp): StoredDates(SAMPLE_ROWS, (FlaggedRow({}, frozenset({"since"}), frozenset()),))}
    (msg,) = [f.what for f in env.check(CHECK_TEXT.format(direction="erp_to_crm"), dict(cols), dict(cols),
                                        sql_modes={"erp": ""}, stored_zero=big) if f.warning and "zero date" in f.what]
    assert "(1 in the first 100,000 rows read)" in msg, msg  # one warning, not one more for the sql_mode


def test_stored_dates_are_counted_among_the_rows_a_flow_keeps_zero_and_impossible_apart() -> None:
    """`check` evaluates each flow's filter (its slice included) on the flagged rows the bounded read returned."""
    stored = StoredDates(10, (FlaggedRow({"kind": "deal"}, frozenset({"d"}), frozenset()),
                              FlaggedRow({"kind": "lead"}, frozenset({"d"}), frozenset()),
                              FlaggedRow({"kind": "deal"}, frozenset(), frozenset({"d", "t"}))))
    assert stored.count("d", None) == (2, 1)
    assert stored.count("d", lambda row: row.get("kind") == "deal") == (1, 1)
    assert stored.count("t", lambda row: row.get("kind") == "lead") == (0, 0)


# ---------------------------------------------------------------- explain

def test_explain_says_what_each_field_does_with_a_zero_date(config: Config) -> None:
    from replicator.mapping.explain.explanation import explain
    mset = mset_of(config)
    out = explain(mset, "deals", "erp", zero_dated(dict(ROW), ("closed", "created")))
    rules = {c["field"]: c["rules"] for c in out["columns"]}
    assert "the value is a MariaDB zero date: a row error (give the field zero_date: null to carry it as NULL)" \
        in rules["closed"]
    assert "the value is a MariaDB zero date: arrives as NULL (zero_date: null)" in rules["created"]
    assert "column closed" in {c["field"]: c.get("error", "") for c in out["columns"]}["closed"]
    plain = explain(mset, "deals", "erp", dict(ROW))
    rules = {c["field"]: c["rules"] for c in plain["columns"]}
    assert "a MariaDB zero date (0000-00-00) arrives as NULL (zero_date: null)" in rules["created"]
    assert not any("zero date" in r for r in rules["closed"])


# ---------------------------------------------------------------- the dead-letter queue keeps them named

def test_a_queued_source_row_keeps_its_zero_dates_so_a_retry_refuses_it_again(config: Config) -> None:
    from replicator.codec import dumps_change, loads_change
    from replicator.stream.deadretry import net_change
    change = RowChange(ERP, Op.UPDATE, zero_dated({**ROW}, ("created",)),
                       zero_dated(dict(ROW), ("closed",), {"closed": "2024-00-01"}))
    back = loads_change(dumps_change(change))
    assert back == change and back.after.zero_dates == ("closed",) and back.before.zero_dates == ("created",)
    assert back.after.zero_texts == {"closed": "2024-00-01"} and back.before.zero_texts == {}
    plain = RowChange(ERP, Op.INSERT, None, {"id": 1})
    assert "zero_dates" not in dumps_change(plain) and type(loads_change(dumps_change(plain)).after) is dict
    net = net_change(RowChange(ERP, Op.INSERT, None, dict(ROW)), change)
    assert net is not None and net.after.zero_dates == ("closed",)
    with pytest.raises(RowError, match="column closed: mapping deals, field closed: the value '2024-00-01' is a"):
        route_flow(mset_of(config).mappings[0].flows[0], net)
