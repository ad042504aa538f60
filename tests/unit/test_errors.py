"""Driver errors are classified by SQLSTATE / errno, never by message text (issue 8).

No server here has another language installed (`locale -a`: C and POSIX only, and PostgreSQL's
lc_messages needs an OS locale), so the errors are built the way psycopg2 and PyMySQL hand them
over -- the psycopg2.errors class of the SQLSTATE with its `pgcode`, PyMySQL's (errno, text) --
with German and French message texts: a classification that read the text would get them wrong.
"""
from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.errors
import pymysql
import pytest

from replicator import connect
from replicator.appliers.mariadb import MariaDBApplier
from replicator.appliers.postgres import PostgresApplier
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from replicator.connect import ACCESS, CONFLICT, CONNECTION, MISSING, OTHER, ROW, TIMEOUT
from replicator.errors import ConfigError, RetriableError, RowError


def pg_error(code: str, text: str) -> psycopg2.Error:
    """A psycopg2 error as the server sends it: the SQLSTATE's class, carrying its pgcode."""
    base = psycopg2.errors.lookup(code)
    return type(base.__name__, (base,), {"pgcode": code})(text)


def my_error(cls: type, code: int, text: str) -> pymysql.MySQLError:
    return cls(code, text)


@pytest.mark.parametrize("code, text, expected", [
    ("55P03", "FEHLER:  konnte Sperre für Zeile in Relation »kunde« nicht setzen", TIMEOUT),
    ("57014", "FEHLER:  storniere Anfrage wegen Zeitüberschreitung der Anweisung", TIMEOUT),
    ("40P01", "FEHLER:  Verklemmung (Deadlock) entdeckt", CONFLICT),
    ("40001", "ERREUR:  n'a pas pu sérialiser un accès à cause d'une mise à jour en parallèle", CONFLICT),
    ("57P01", "FATAL:  Verbindung wird abgebrochen aufgrund von Anweisung des Administrators", CONNECTION),
    ("08006", "Verbindung verloren", CONNECTION),
    ("53300", "FATAL:  tut mir leid, schon zu viele Verbindungen", CONNECTION),
    ("28P01", "FATAL:  Passwort-Authentifizierung für Benutzer »x« fehlgeschlagen", ACCESS),
    ("42501", "FEHLER:  keine Berechtigung für Tabelle kunde", ACCESS),
    ("3D000", "FATAL:  Datenbank »crm« existiert nicht", ACCESS),
    ("42P01", "FEHLER:  Relation »kunde« existiert nicht", MISSING),
    ("23505", "FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint", ROW),
    ("22001", "FEHLER:  Wert zu lang für Typ character varying(5)", ROW),
    ("22P02", "FEHLER:  ungültige Eingabesyntax für Typ integer", ROW),
    ("42703", "FEHLER:  Spalte »x« existiert nicht", ROW),
    ("P0001", "FEHLER:  vom Trigger abgelehnt", ROW),
    ("25P02", "FEHLER:  aktuelle Transaktion wurde abgebrochen", OTHER),
])
def test_postgresql_errors_by_sqlstate(code: str, text: str, expected: str) -> None:
    assert connect.pg_error_class(pg_error(code, text)) == expected


def test_postgresql_errors_without_sqlstate_by_class() -> None:
    # libpq could not connect or the socket broke: psycopg2 has no SQLSTATE to give
    assert connect.pg_error_class(psycopg2.OperationalError("Server beendete die Verbindung unerwartet")) == CONNECTION
    assert connect.pg_error_class(psycopg2.InterfaceError("connection already closed")) == CONNECTION
    assert connect.pg_error_class(psycopg2.DatabaseError("?")) == OTHER
    assert connect.pg_error_class(ValueError("no driver error")) == OTHER


@pytest.mark.parametrize("cls, code, expected", [
    (pymysql.OperationalError, 1205, TIMEOUT),  # Zeitüberschreitung beim Warten auf Sperre
    (pymysql.OperationalError, 1969, TIMEOUT),  # max_statement_time
    (pymysql.OperationalError, 1213, CONFLICT),
    (pymysql.OperationalError, 2013, CONNECTION),
    (pymysql.OperationalError, 2006, CONNECTION),
    (pymysql.OperationalError, 1927, CONNECTION),
    (pymysql.InternalError, 4031, CONNECTION),
    (pymysql.OperationalError, 1045, ACCESS),
    (pymysql.OperationalError, 1142, ACCESS),
    (pymysql.ProgrammingError, 1146, MISSING),
    (pymysql.IntegrityError, 1062, ROW),
    (pymysql.DataError, 1406, ROW),
    (pymysql.OperationalError, 1366, ROW),
    (pymysql.InternalError, 4025, ROW),
])
def test_mariadb_errors_by_errno(cls: type, code: int, expected: str) -> None:
    assert connect.my_error_class(my_error(cls, code, "Meldung in einer anderen Sprache")) == expected


def test_mariadb_errors_without_errno_are_a_lost_connection() -> None:
    assert connect.my_error_class(pymysql.InterfaceError(0, "")) == CONNECTION
    assert connect.my_error_class(pymysql.OperationalError("socket")) == CONNECTION
    assert connect.my_error_class(ConnectionResetError()) == CONNECTION
    assert connect.my_error_class(KeyError("x")) == OTHER


# ---------------------------------------------------------------- where the classes are used

def _conn(kind: str) -> Connection:
    acc = Account("u", Secret("pw"))
    return Connection("crm" if kind == "postgresql" else "erp", kind, "127.0.0.1", 1, "db", acc, acc)


def test_pg_connect_stops_on_a_refused_login_by_sqlstate_and_retries_an_unreachable_server(monkeypatch) -> None:
    def refuse(**_kw: Any) -> Any:
        raise pg_error("28P01", "FATAL:  Passwort-Authentifizierung für Benutzer »u« fehlgeschlagen")
    monkeypatch.setattr(psycopg2, "connect", refuse)
    with pytest.raises(ConfigError):
        connect.pg_connect(_conn("postgresql"), _conn("postgresql").apply)

    def unreachable(**_kw: Any) -> Any:
        raise psycopg2.OperationalError("Verbindung zum Server auf »127.0.0.1«, Port 1 fehlgeschlagen")
    monkeypatch.setattr(psycopg2, "connect", unreachable)
    with pytest.raises(RetriableError):
        connect.pg_connect(_conn("postgresql"), _conn("postgresql").apply)


def test_my_connect_passes_the_configured_network_timeouts(monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake(**kw: Any) -> Any:
        seen.update(kw)
        raise pymysql.OperationalError(1045, "Zugriff verweigert")
    monkeypatch.setattr(connect, "MyConnection", fake)
    with pytest.raises(ConfigError):
        connect.my_connect(_conn("mariadb"), _conn("mariadb").apply)
    assert (seen["read_timeout"], seen["write_timeout"], seen["connect_timeout"]) == (75, 75, 10)


class _ScriptedPg(PostgresApplier):
    """A PostgreSQL applier without a server: every upsert runs through `_run` and raises what
    the script says for its key (None: the row goes in)."""

    def __init__(self, script: dict[Any, BaseException | None]):
        super().__init__(_conn("postgresql"), "erp_to_crm")
        self.script = script

    def begin(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def _upsert(self, run: Any, rows: list[TargetChange]) -> int:
        def q() -> int:
            for r in rows:
                exc = self.script.get(r.key[0])
                if exc is not None:
                    raise exc
            return 0
        return self._run(q)


class _ScriptedMy(MariaDBApplier):
    def __init__(self, script: dict[Any, BaseException | None]):
        super().__init__(_conn("mariadb"), "crm_to_erp")
        self.script = script

    def begin(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def _upsert(self, run: Any, rows: list[TargetChange]) -> int:
        def q() -> int:
            for r in rows:
                exc = self.script.get(r.key[0])
                if exc is not None:
                    raise exc
            return 0
        return self._run(q)


def _changes(*keys: int) -> list[TargetChange]:
    return [TargetChange(TableRef("public", "kunde"), Op.INSERT, ("id",), (k,), {"id": k, "name": "x"}) for k in keys]


def test_a_lock_timeout_is_retriable_and_names_the_table() -> None:
    applier = _ScriptedPg({2: pg_error("55P03", "FEHLER:  konnte Sperre nicht setzen")})
    with pytest.raises(RetriableError, match=r"timeout on public\.kunde \(SQLSTATE 55P03\)"):
        applier.apply(_changes(1, 2))
    applier = _ScriptedMy({2: my_error(pymysql.OperationalError, 1205, "Sperrwartezeit überschritten")})
    with pytest.raises(RetriableError, match=r"timeout on public\.kunde: \(1205\)"):
        applier.apply(_changes(1, 2))


def test_a_missing_privilege_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="lacks a privilege"):
        _ScriptedPg({1: pg_error("42501", "FEHLER:  keine Berechtigung")}).apply(_changes(1))


def test_locate_row_error_names_the_row_of_a_data_error() -> None:
    applier = _ScriptedPg({3: pg_error("22001", "FEHLER:  Wert zu lang")})
    batch = pg_error("22001", "FEHLER:  Wert zu lang")
    error = applier.locate_row_error(_changes(1, 2, 3, 4), batch)
    assert isinstance(error, RowError) and error.table == "public.kunde" and error.key == (3,)


@pytest.mark.parametrize("lost", [
    pg_error("57P01", "FATAL:  Verbindung wird abgebrochen"),
    psycopg2.OperationalError("Server beendete die Verbindung unerwartet"),
    psycopg2.InterfaceError("connection already closed"),
])
def test_locate_row_error_keeps_a_lost_connection_retriable(lost: BaseException) -> None:
    """The batch failed on row 3's data; while it is replayed row by row the connection drops (or
    the server shuts down). That must reconnect and resume, not stop the stream with a RowError
    blaming row 2."""
    applier = _ScriptedPg({2: lost, 3: pg_error("22001", "FEHLER:  Wert zu lang")})
    with pytest.raises(RetriableError):
        applier.locate_row_error(_changes(1, 2, 3), pg_error("22001", "FEHLER:  Wert zu lang"))


def test_locate_row_error_keeps_a_lost_mariadb_connection_retriable() -> None:
    applier = _ScriptedMy({2: my_error(pymysql.OperationalError, 2013, "Verbindung verloren"),
                           3: my_error(pymysql.DataError, 1406, "Daten zu lang für Spalte 'name'")})
    with pytest.raises(RetriableError):
        applier.locate_row_error(_changes(1, 2, 3), my_error(pymysql.DataError, 1406, "zu lang"))
    applier = _ScriptedMy({3: my_error(pymysql.DataError, 1406, "Data too long for column 'name' at row 1")})
    error = applier.locate_row_error(_changes(1, 2, 3), my_error(pymysql.DataError, 1406, "zu lang"))
    assert (error.key, error.column) == ((3,), "name")


def test_locate_row_error_lets_an_unexpected_error_through() -> None:
    applier = _ScriptedPg({2: ZeroDivisionError("a bug, not a row")})
    with pytest.raises(ZeroDivisionError):
        applier.locate_row_error(_changes(1, 2), pg_error("22001", "x"))


# ---------------------------------------------------------------- the WAL stream's errors

class _Catalog:
    """pg_replication_slots and pg_publication as the WAL source's diagnosis reads them."""

    def __init__(self, slot: tuple | None, publication: bool) -> None:
        self.answers = [slot, (1,) if publication else None]

    def cursor(self) -> "_Catalog":
        return self

    def __enter__(self) -> "_Catalog":
        return self

    def __exit__(self, *_exc: Any) -> None:
        pass

    def execute(self, *_a: Any) -> None:
        pass

    def fetchone(self) -> Any:
        return self.answers.pop(0)

    def close(self) -> None:
        pass


def _wal(monkeypatch, slot: tuple | None = ("0/100", "reserved"), publication: bool = True) -> Any:
    from replicator.changes import LSN
    from replicator.loopguard import LoopGuard
    from replicator.sources import wal

    monkeypatch.setattr(wal, "pg_connect", lambda *_a, **_k: _Catalog(slot, publication))
    return wal.WalSource(_conn("postgresql"), "crm_to_erp", [], LoopGuard("replicator", "erp_to_crm"), LSN(0x100), 10)


def test_wal_errors_by_sqlstate_and_catalog(monkeypatch) -> None:
    from replicator.errors import FatalError, SourceLostError

    gone = pg_error("42704", "FEHLER:  Replikations-Slot »crm« existiert nicht")
    assert isinstance(_wal(monkeypatch, slot=None)._classify(gone), SourceLostError)
    lost = pg_error("55000", "FEHLER:  kann keine Änderungen mehr vom Replikations-Slot »crm« lesen")
    assert isinstance(_wal(monkeypatch, slot=("0/100", "lost"))._classify(lost), SourceLostError)
    no_pub = pg_error("42704", "FEHLER:  Publikation »replicator« existiert nicht")
    error = _wal(monkeypatch, publication=False)._classify(no_pub)
    assert type(error) is FatalError and "publication 'replicator'" in str(error)
    denied = pg_error("42501", "FEHLER:  keine Berechtigung")
    assert type(_wal(monkeypatch)._classify(denied)) is FatalError
    busy = pg_error("55006", "FEHLER:  Replikations-Slot »crm« ist aktiv für PID 42")
    assert type(_wal(monkeypatch)._classify(busy)) is RetriableError
    shutdown = pg_error("57P01", "FATAL:  Verbindung wird abgebrochen")
    assert type(_wal(monkeypatch)._classify(shutdown)) is RetriableError


@pytest.mark.parametrize("message, column", [
    ("Incorrect string value: '\\xF0\\x9F\\x98\\x80' for column `erp`.`p2m`.`c2` at row 1", "c2"),
    ("Incorrect time value: '12:00:00+05' for column `erp`.`we``ird`.`a``b c` at row 1", "a`b c"),
    ("Incorrect integer value: 'a' for column `t`.`n` at row 1", "n"),
    ("Data too long for column 'name' at row 1", "name"),
    ("Column 'contact_id' cannot be null", "contact_id"),  # 1048: an Akaunting invoice whose customer went
    ("Duplicate entry '1' for key 'PRIMARY'", None),
    # 4025: a column's own CHECK (a JSON column's json_valid) is named `table.column`; a table CHECK names none
    ("CONSTRAINT `p2m.doc` failed for `erp`.`p2m`", "doc"),
    ("CONSTRAINT `chk_total` failed for `erp`.`p2m`", None),
])
def test_mariadb_error_column_reads_both_forms_of_the_column_name(message: str, column: str | None) -> None:
    """MariaDB names the column of a value its type or character set refuses (1366, 1292) qualified and in
    backquotes: the row error names it as it does a 'Data too long for column' one."""
    applier = _ScriptedMy({})
    assert applier.error_column(my_error(pymysql.DataError, 1366, message)) == column


@pytest.mark.parametrize("values, message, column", [
    ({"id": 3, "tags": "a,b", "n": 1}, 'malformed array literal: "a,b"', "tags"),
    ({"id": 3, "mood": "c", "n": 1}, 'ERROR:  invalid input value for enum mood: "c"\nLINE 1: ...', "mood"),
    ({"id": 3, "s": {"y", "x"}}, 'malformed array literal: "x,y"', "s"),  # a MariaDB SET as _text writes it
    ({"id": 3, "a": "x", "b": "x"}, 'invalid input syntax for type integer: "x"', None),  # which one: unknown
    ({"id": 3, "a": "y"}, 'invalid input syntax for type integer: "x"', None),
    ({"id": 3, "a": "x"}, "value too long for type character varying(5)", None),
])
def test_a_postgresql_error_without_a_column_names_the_one_column_whose_value_it_quotes(
        values: dict, message: str, column: str | None) -> None:
    """22P02 and its kin carry no column name, but quote the value: when one column of the failing row holds
    it, the row error names that column (the batch's replay row by row, and a quarantined row)."""
    change = TargetChange(TableRef("public", "kunde"), Op.INSERT, ("id",), (3,), values)
    applier = _ScriptedPg({3: pg_error("22P02", message)})
    error = applier.locate_row_error([change], pg_error("22P02", message))
    assert (error.key, error.column) == ((3,), column)
    assert applier.error_column(pg_error("22P02", message)) is None  # without the row: nothing to match


def test_a_row_error_says_whose_key_it_names() -> None:
    from replicator.errors import RowError
    assert str(RowError("too long", table="erp.t", key=(1,), column="c")) == "table erp.t, key (1,), column c: too long"
    # a linked mapping's change is known by the source row's key: the target row may not exist yet
    linked = RowError("too long", table="erp.llx_societe", key=("5b7e",), column="nom", key_side="crm")
    assert str(linked) == ("table erp.llx_societe, crm key ('5b7e',) (the source row's; the target row's own key "
                           "comes from the link), column nom: too long")
    assert linked.key == ("5b7e",) and linked.key_side == "crm"


def test_row_error_shows_numeric_and_time_keys_as_an_operator_reads_them() -> None:
    """iDempiere keys are numeric(10): repr() named the row `(Decimal('1000000'),)` in every row error and in
    `dlq retry`'s lines (docs/walkthrough-suitecrm-idempiere.md)."""
    import datetime
    import uuid
    from decimal import Decimal

    from replicator.errors import RowError, show_key
    error = RowError("(1366) Incorrect string value", table="crm.aos_products", key=(Decimal("1000000"),),
                     column="name", key_side="idempiere")
    assert str(error).startswith("table crm.aos_products, idempiere key (1000000,) (the source row's;"), str(error)
    assert show_key((Decimal("7.50"), "Doe, John")) == "(7.50, 'Doe, John')"
    assert show_key([datetime.datetime(2024, 3, 1, 10, 0), None, True]) == "['2024-03-01T10:00:00', None, True]"
    assert show_key((uuid.UUID(int=1),)) == "('00000000-0000-0000-0000-000000000001',)"
    assert show_key((1, "a")) == repr((1, "a"))  # ints and text read as before


@pytest.mark.parametrize("code, message, column", [
    (1452, "Cannot add or update a child row: a foreign key constraint fails (`erp`.`fkc`, CONSTRAINT `fkc_p` "
           "FOREIGN KEY (`p`, `q``r`) REFERENCES `fkp` (`id`, `k`))", "p, q`r"),
    (1451, "Cannot delete or update a parent row: a foreign key constraint fails (`erp`.`child`, CONSTRAINT "
           "`child_parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`))", "id"),
    (1062, "Duplicate entry 'a@x' for key 'email'", "email"),  # an unnamed unique index is named after its column
    (1062, "Duplicate entry 'a@x' for key 'uq_mail'", None),  # a named one: only the catalog knows (no server here)
])
def test_mariadb_names_the_column_of_a_key_the_row_breaks(code: int, message: str, column: str | None) -> None:
    """A unique or foreign key the target has and the source does not: the row error names the row's columns
    of that key (the constraint is in the server's words), so a quarantined row says what to fix."""
    change = TargetChange(TableRef("erp", "fkc"), Op.INSERT, ("id",), (5,), {"id": 5, "email": "a@x", "p": 99})
    applier = _ScriptedMy({})
    assert applier.error_column(my_error(pymysql.IntegrityError, code, message), change) == column


def test_a_violated_constraint_is_named_by_its_columns_from_the_catalog_whichever_end_the_row_was() -> None:
    """A foreign key's error names the referencing table's constraint even when the row written was the parent
    (a delete of a row still referenced): the columns are the end the change wrote (load_types read both)."""
    from types import SimpleNamespace

    applier = _ScriptedPg({})
    pet, owner, node = TableRef("public", "pet"), TableRef("public", "owner"), TableRef("public", "node")
    applier._constraints = {("public", "pet", "pet_owner"): ("owner_ref", owner, "id"),
                            ("public", "pet", "pet_tag"): ("lower(tag)", None, None),
                            ("public", "node", "node_up"): ("up", node, "id")}
    fk = SimpleNamespace(schema_name="public", table_name="pet", constraint_name="pet_owner")
    child = TargetChange(pet, Op.INSERT, ("id",), (1,), {"id": 1, "owner_ref": 9})
    parent = TargetChange(owner, Op.DELETE, ("id",), (9,), {"id": 9})
    assert applier._constraint_columns(fk, child) == "owner_ref"
    assert applier._constraint_columns(fk, parent) == "id"
    assert applier._constraint_columns(SimpleNamespace(schema_name="public", table_name="pet",
                                                       constraint_name="pet_tag"), child) == "lower(tag)"
    # a self-reference: a delete is the referenced end, an insert the referencing one
    up = SimpleNamespace(schema_name="public", table_name="node", constraint_name="node_up")
    assert applier._constraint_columns(up, TargetChange(node, Op.DELETE, ("id",), (1,), {"id": 1})) == "id"
    assert applier._constraint_columns(up, TargetChange(node, Op.INSERT, ("id",), (2,), {"id": 2, "up": 5})) == "up"
    # no single change (a linked run): the end this applier writes, when it writes one of them only
    assert applier._constraint_columns(fk, None) is None
    applier._types[owner] = {"id": "integer"}
    assert applier._constraint_columns(fk, None) == "id"
    # a constraint load_types never saw (added since), or no names at all: nothing (the DETAIL text decides)
    assert applier._constraint_columns(SimpleNamespace(schema_name="public", table_name="pet",
                                                       constraint_name="new_one"), child) is None
    assert applier._constraint_columns(SimpleNamespace(schema_name=None, table_name=None, constraint_name=None),
                                       child) is None
