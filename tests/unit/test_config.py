"""config: the daemon's configuration file, validated once, every error naming file, line and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.config import Account, Batching, Config, Connection, Secret, Timeouts, load
from replicator.errors import ConfigError

PG_PASSWORD = "pg-s3cret-Zq9"
MARIA_PASSWORD = "maria-s3cret-Xy7"
CAPTURE_PASSWORD = "capture-s3cret-Wv5"

FULL = """\
connections:
  crm:
    kind: postgresql
    host: pg.example.org
    port: 5433
    database: crm
    user: repl_apply
    password_file: secrets/crm.pw
    capture_user: repl_capture
    capture_password_env: CRM_CAPTURE_PW
    state_schema: repl_state
    slot: crm_slot
    publication: crm_pub
    sslmode: verify-full
    sslrootcert: /etc/ssl/ca.pem
  erp:
    kind: mariadb
    host: db.example.org
    database: erp
    user: repl
    password_env: ERP_PW
    server_id: 777
    ssl_ca: /etc/ssl/maria-ca.pem
    ssl_verify_identity: true
mappings: maps.d
batch:
  max_rows: 100
  max_ms: 50
  chunk_rows: 10
  queue_rows: 4
metrics:
  address: 0.0.0.0
  port: 9999
reconnect:
  initial_seconds: 1
  max_seconds: 60.5
heartbeat_seconds: 5
"""

MINIMAL = """\
connections:
  crm:
    kind: postgresql
    database: crm
    user: u
  erp:
    kind: mariadb
    database: erp
    user: u
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_PW", MARIA_PASSWORD)
    monkeypatch.setenv("CRM_CAPTURE_PW", CAPTURE_PASSWORD)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "replicator.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value


def msg(tmp_path: Path, text: str) -> str:
    """The error text with the config path shortened to `F`."""
    return str(load_error(tmp_path, text)).replace(str(tmp_path / "replicator.yaml"), "F")


def with_crm(extra: str) -> str:
    """MINIMAL with extra lines (already indented 4) in the crm connection."""
    return MINIMAL.replace("    user: u\n  erp:", f"    user: u\n{extra}  erp:")


@pytest.fixture
def full(tmp_path: Path) -> Config:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "crm.pw").write_text(PG_PASSWORD + "\n")
    return load(write(tmp_path, FULL))


def test_full_config(full: Config, tmp_path: Path) -> None:
    crm, erp = full.connections
    assert full.file == tmp_path / "replicator.yaml"
    assert crm == Connection(
        name="crm", kind="postgresql", host="pg.example.org", port=5433, database="crm",
        apply=Account("repl_apply", Secret(PG_PASSWORD)),
        capture=Account("repl_capture", Secret(CAPTURE_PASSWORD)),
        state_schema="repl_state", slot="crm_slot", publication="crm_pub",
        sslmode="verify-full", sslrootcert="/etc/ssl/ca.pem",
    )
    assert erp == Connection(
        name="erp", kind="mariadb", host="db.example.org", port=3306, database="erp",
        apply=Account("repl", Secret(MARIA_PASSWORD)), capture=Account("repl", Secret(MARIA_PASSWORD)),
        server_id=777, ssl_ca="/etc/ssl/maria-ca.pem", ssl_verify_identity=True,
    )
    assert full.mappings_dir == (tmp_path / "maps.d").resolve()
    assert full.batching == Batching(max_rows=100, max_ms=50, chunk_rows=10, queue_rows=4)
    assert full.metrics_address == "0.0.0.0"
    assert full.metrics_port == 9999
    assert full.reconnect_initial_seconds == 1.0
    assert full.reconnect_max_seconds == 60.5
    assert full.heartbeat_seconds == 5.0
    assert full.side("erp") is erp
    assert crm.describe() == "postgresql://repl_apply@pg.example.org:5433/crm"
    with pytest.raises(KeyError):
        full.side("nope")


def test_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL))
    crm, erp = config.connections
    assert (crm.host, crm.port, crm.slot, crm.publication, crm.sslmode, crm.state_schema) == (
        "127.0.0.1", 5432, "replicator", "replicator", "prefer", "replicator")
    assert (erp.port, erp.server_id, erp.ssl_ca, erp.ssl_verify_identity) == (3306, 4242, None, False)
    assert crm.apply == Account("u", Secret(""))  # no password source: peer/trust authentication
    assert crm.capture is crm.apply
    assert config.mappings_dir == (tmp_path / "mappings").resolve()
    assert config.batching == Batching()
    assert (config.metrics_address, config.metrics_port, config.heartbeat_seconds) == ("127.0.0.1", 9187, 30.0)


def test_absolute_mappings_dir_is_kept(tmp_path: Path) -> None:
    assert load(write(tmp_path, MINIMAL + "mappings: /srv/maps\n")).mappings_dir == Path("/srv/maps")


# ---------------------------------------------------------------- secrets


def test_secret_never_in_repr_of_config(full: Config) -> None:
    text = repr(full) + str(full) + repr(full.connections) + str(full.connections[0].apply)
    for secret in (PG_PASSWORD, MARIA_PASSWORD, CAPTURE_PASSWORD):
        assert secret not in text
    assert "Secret(***)" in repr(full)
    assert f"{full.connections[0].apply.password}" == "Secret(***)"
    assert full.connections[0].apply.password.value == PG_PASSWORD


def test_literal_password_refused_without_echoing_it(tmp_path: Path) -> None:
    err = load_error(tmp_path, with_crm(f"    password: {PG_PASSWORD}\n"))
    assert PG_PASSWORD not in str(err)
    assert str(err).replace(str(tmp_path / "replicator.yaml"), "F") == (
        "F:6: connections.crm.password: passwords are not written in the configuration file "
        "(fix: use password_file, password_env or password_credential)"
    )


def test_literal_capture_password_refused(tmp_path: Path) -> None:
    text = with_crm(f"    capture_user: cap\n    capture_password: {CAPTURE_PASSWORD}\n")
    err = load_error(tmp_path, text)
    assert CAPTURE_PASSWORD not in str(err)
    assert str(err).replace(str(tmp_path / "replicator.yaml"), "F") == (
        "F:7: connections.crm.capture_password: passwords are not written in the configuration file "
        "(fix: use capture_password_file, capture_password_env or capture_password_credential)"
    )


def test_secret_not_in_errors_raised_after_reading_it(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PG_PASSWORD)
    err = load_error(tmp_path, with_crm("    password_file: pw\n    port: 99999999999999999999\n    bogus: 1\n"))
    assert PG_PASSWORD not in str(err) and PG_PASSWORD not in repr(err)
    err = load_error(tmp_path, MINIMAL.replace("    user: u\n  erp:", "    user: u\n    password_file: pw\n  erp:")
                     + "metrics: {port: -1}\n")
    assert PG_PASSWORD not in str(err)


# ---------------------------------------------------------------- password sources


def test_password_file_relative_to_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "crm.pw").write_text(PG_PASSWORD + "\r\n")
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    path = conf_dir / "replicator.yaml"
    path.write_text(with_crm("    password_file: crm.pw\n"))
    assert load(path).connections[0].apply.password == Secret(PG_PASSWORD)  # line end stripped


def test_password_file_absolute(tmp_path: Path) -> None:
    pw = tmp_path / "abs.pw"
    pw.write_text(PG_PASSWORD)
    assert load(write(tmp_path, with_crm(f"    password_file: {pw}\n"))).connections[0].apply.password.value == PG_PASSWORD


def test_password_file_missing(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    password_file: nope.pw\n")) == (
        f"F:6: connections.crm.password_file: cannot read password file {tmp_path / 'nope.pw'}: No such file or directory"
    )


def test_password_env(tmp_path: Path) -> None:
    config = load(write(tmp_path, with_crm("    password_env: ERP_PW\n")))
    assert config.connections[0].apply.password.value == MARIA_PASSWORD


def test_password_env_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR_FOR_TEST", raising=False)
    assert msg(tmp_path, with_crm("    password_env: NO_SUCH_VAR_FOR_TEST\n")) == (
        "F:6: connections.crm.password_env: environment variable NO_SUCH_VAR_FOR_TEST is not set"
    )


def test_password_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "crm-password").write_text(PG_PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = load(write(tmp_path, with_crm("    password_credential: crm-password\n")))
    assert config.connections[0].apply.password.value == PG_PASSWORD


def test_password_credential_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert msg(tmp_path, with_crm("    password_credential: nope\n")) == (
        f"F:6: connections.crm.password_credential: cannot read password file {tmp_path / 'nope'}: "
        "No such file or directory"
    )


def test_password_credential_without_credentials_directory(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    password_credential: crm-password\n")) == (
        "F:6: connections.crm.password_credential: CREDENTIALS_DIRECTORY is not set "
        "(use LoadCredential= in the systemd unit)"
    )


def test_only_one_password_source(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    password_file: a\n    password_env: ERP_PW\n")) == (
        "F:7: connections.crm.password_env: give only one password source"
    )


def test_only_one_capture_password_source(tmp_path: Path) -> None:
    text = with_crm("    capture_user: c\n    capture_password_env: ERP_PW\n    capture_password_credential: x\n")
    assert msg(tmp_path, text) == "F:8: connections.crm.capture_password_credential: give only one password source"


# ---------------------------------------------------------------- structure errors


def test_missing_connections(tmp_path: Path) -> None:
    assert msg(tmp_path, "mappings: m\n") == "F:1: connections: required section is missing"


def test_empty_file(tmp_path: Path) -> None:
    assert msg(tmp_path, "") == "F: connections: required section is missing"


def test_connections_not_a_mapping(tmp_path: Path) -> None:
    assert msg(tmp_path, "connections:\n  - crm\n") == "F:2: connections: expected a mapping, got a list"


def test_one_connection(tmp_path: Path) -> None:
    text = "connections:\n  crm: {kind: postgresql, database: a, user: u}\n"
    assert msg(tmp_path, text) == "F:2: connections: exactly two connections are needed, found 1"


def test_three_connections(tmp_path: Path) -> None:
    text = MINIMAL + "  wms:\n    kind: mariadb\n    database: w\n    user: u\n"
    assert msg(tmp_path, text) == "F:2: connections: exactly two connections are needed, found 3"


def test_no_connections(tmp_path: Path) -> None:
    assert msg(tmp_path, "connections: {}\n") == "F:1: connections: exactly two connections are needed, found 0"


def test_duplicate_connection_names(tmp_path: Path) -> None:
    text = MINIMAL.replace("  erp:", "  crm:")
    assert msg(tmp_path, text) == "F:6: connections.crm: duplicate key 'crm' (first on line 2)"


def test_bad_connection_name(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL.replace("  erp:", "  ERP-1:")) == (
        "F:6: connections.ERP-1: connection names are lower-case letters, digits and _ "
        "(they name the sides in mappings)"
    )


def test_wrong_kind(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL.replace("kind: mariadb", "kind: oracle")) == (
        "F:7: connections.erp.kind: 'oracle' is not one of postgresql, mariadb"
    )


def test_missing_kind(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL.replace("    kind: mariadb\n", "")) == (
        "F:7: connections.erp.kind: required key is missing"
    )


def test_missing_database(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL.replace("    database: crm\n", "")) == (
        "F:3: connections.crm.database: required key is missing"
    )


def test_unknown_key_in_connection(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    prot: 5432\n")) == (
        "F:6: connections.crm.prot: unknown key 'prot' (known: database, host, kind, port, publication, slot, "
        "sslmode, sslrootcert, state_schema, user)"
    )


def test_postgres_only_key_on_mariadb_is_unknown(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "    slot: s\n") == (
        "F:10: connections.erp.slot: unknown key 'slot' (known: database, host, kind, port, server_id, ssl_ca, "
        "ssl_verify_identity, state_schema, user)"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "mapings: m\n") == (
        "F:10: mapings: unknown key 'mapings' (known: batch, conflicts, connections, ha, heartbeat_seconds, "
        "mappings, metrics, on_error, reconnect, sync, timeouts, verify)"
    )


def test_unknown_key_in_batch(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "batch:\n  max_row: 5\n") == (
        "F:11: batch.max_row: unknown key 'max_row' (known: chunk_rows, max_ms, max_rows, queue_rows)"
    )


def test_port_is_not_a_boolean(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    port: true\n")) == "F:6: connections.crm.port: expected an integer, got a boolean"
    assert msg(tmp_path, with_crm("    port: yes\n")) == (
        "F:6: connections.crm.port: `yes` would be read as the boolean true (YAML 1.1): write true for a boolean, "
        "or quote it ('yes') for the text")


def test_port_is_not_text(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    port: '5432'\n")) == (
        "F:6: connections.crm.port: expected an integer, got str '5432'"
    )


@pytest.mark.parametrize("port", [0, 65536])
def test_connection_port_out_of_range(tmp_path: Path, port: int) -> None:
    """BUG: connections.<name>.port is never range-checked (only metrics.port is); a bad port
    then surfaces as a connection failure that is retried forever instead of a config error."""
    assert msg(tmp_path, with_crm(f"    port: {port}\n")) == (
        "F:6: connections.crm.port: port must be between 1 and 65535"
    )


@pytest.mark.parametrize("port", [65536, -1])
def test_metrics_port_out_of_range(tmp_path: Path, port: int) -> None:
    assert msg(tmp_path, MINIMAL + f"metrics:\n  port: {port}\n") == (
        "F:11: metrics.port: port must be between 0 and 65535"
    )


@pytest.mark.parametrize("value", [0, -5])
def test_batch_values_must_be_positive(tmp_path: Path, value: int) -> None:
    assert msg(tmp_path, MINIMAL + f"batch:\n  chunk_rows: {value}\n") == (
        "F:11: batch.chunk_rows: must be a positive integer"
    )


@pytest.mark.parametrize("server_id", [0, 4294967296])
def test_server_id_range(tmp_path: Path, server_id: int) -> None:
    assert msg(tmp_path, MINIMAL + f"    server_id: {server_id}\n") == (
        "F:10: connections.erp.server_id: server_id must be between 1 and 4294967295"
    )


def test_bad_sslmode(tmp_path: Path) -> None:
    assert msg(tmp_path, with_crm("    sslmode: strict\n")) == (
        "F:6: connections.crm.sslmode: 'strict' is not one of disable, allow, prefer, require, verify-ca, verify-full"
    )


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "batch: {max_rows: 5\n") == (
        "F:11: <syntax>: YAML error: expected ',' or '}', but got '<stream end>'"
    )


def test_python_tag_in_config_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = MINIMAL + f"mappings: !!python/object/apply:os.system ['touch {marker}']\n"
    assert msg(tmp_path, text) == "F:10: <syntax>: YAML error: tags such as !!python/... are not allowed; plain YAML only"
    assert not marker.exists()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "absent.yaml")
    assert str(info.value) == f"cannot read {tmp_path / 'absent.yaml'}: No such file or directory"


def test_sync_and_verify_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    assert (cfg.sync.on_first_run, cfg.sync.chunk_rows, cfg.sync.first_side) == (True, 5000, None)
    assert (cfg.verify.every_seconds, cfg.verify.chunk_rows, cfg.verify.recheck_seconds) == (0.0, 5000, 5.0)


def test_sync_and_verify_settings(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL + "sync: {on_first_run: false, chunk_rows: 100, first_side: erp}\n"
                                         "verify: {every_seconds: 3600, recheck_seconds: 2}\n"))
    assert (cfg.sync.on_first_run, cfg.sync.chunk_rows, cfg.sync.first_side) == (False, 100, "erp")
    assert (cfg.verify.every_seconds, cfg.verify.recheck_seconds) == (3600.0, 2.0)


def test_sync_first_side_must_be_a_connection(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "sync: {first_side: sap}\n") == (
        "F:10: sync.first_side: 'sap' is not one of crm, erp")


def test_verify_period_cannot_be_negative(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "verify: {every_seconds: -1}\n") == (
        "F:10: verify.every_seconds: must be 0 (never) or more")


def test_timeouts_default_and_reach_both_connections(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    assert [c.timeouts for c in cfg.connections] == [Timeouts(10.0, 60.0, 75.0, 10.0)] * 2
    cfg = load(write(tmp_path, MINIMAL + "timeouts: {lock_seconds: 2, statement_seconds: 30, network_seconds: 40}\n"))
    assert {c.timeouts for c in cfg.connections} == {Timeouts(2.0, 30.0, 40.0, 10.0)}


def test_timeouts_are_checked(tmp_path: Path) -> None:
    assert msg(tmp_path, MINIMAL + "timeouts: {lock_seconds: 0}\n") == (
        "F:10: timeouts.lock_seconds: must be more than 0 seconds")
    assert msg(tmp_path, MINIMAL + "timeouts: {statement_seconds: 80}\n") == (
        "F:10: timeouts.network_seconds: must be more than timeouts.statement_seconds (the server cancels a slow "
        "statement first, and says which)")
    assert "unknown key 'lock'" in msg(tmp_path, MINIMAL + "timeouts: {lock: 1}\n")


def test_conflicts_defaults(tmp_path: Path) -> None:
    c = load(write(tmp_path, MINIMAL)).conflicts
    assert (c.retention_days, c.housekeeping_seconds) == (30.0, 300.0)


def test_conflicts_settings(tmp_path: Path) -> None:
    c = load(write(tmp_path, MINIMAL + "conflicts: {retention_days: 7, housekeeping_seconds: 0}\n")).conflicts
    assert (c.retention_days, c.housekeeping_seconds) == (7.0, 0.0)


@pytest.mark.parametrize("text, error", [
    ("conflicts: {retention_days: 0}\n", "F:10: conflicts.retention_days: must be more than 0 (days)"),
    ("conflicts: {housekeeping_seconds: -5}\n", "F:10: conflicts.housekeeping_seconds: must be 0 (never) or more"),
    ("conflicts: {retention_days: soon}\n", "F:10: conflicts.retention_days: expected a number, got str 'soon'"),
    ("conflicts: {retain: 3}\n", None),
])
def test_conflicts_errors_name_file_line_and_key(tmp_path: Path, text: str, error: str | None) -> None:
    got = msg(tmp_path, MINIMAL + text)
    if error is None:
        assert got.startswith("F:10: conflicts.retain:"), got
    else:
        assert got == error


def _one_server(kind: str, left: str = "", right: str = "", right_host: str = "127.0.0.1") -> str:
    """Two connections of one kind, `suitecrm` on localhost and `idempiere` on `right_host`, same port."""
    return ("connections:\n"
            f"  suitecrm:\n    kind: {kind}\n    host: localhost\n    port: 3310\n    database: crm\n    user: u\n{left}"
            f"  idempiere:\n    kind: {kind}\n    host: {right_host}\n    port: 3310\n    database: erp\n    user: u\n"
            f"{right}")


def test_two_postgresql_databases_of_one_server_need_two_slots(tmp_path: Path) -> None:
    text = msg(tmp_path, _one_server("postgresql"))
    assert text.startswith("F:8: connections.idempiere: connections suitecrm and idempiere are two databases of one "
                           "postgresql server (127.0.0.1:3310) and both use replication slot 'replicator'"), text
    assert "slot: replicator_idempiere" in text, text
    conns = load(write(tmp_path, _one_server("postgresql", right="    slot: erp\n"))).connections
    assert [c.slot for c in conns] == ["replicator", "erp"]
    # another server: the same slot name is its own
    assert load(write(tmp_path, _one_server("postgresql", right_host="db2.example"))).connections[1].slot == "replicator"


def test_two_mariadb_databases_of_one_server_need_two_reader_ids_and_state_schemas(tmp_path: Path) -> None:
    text = msg(tmp_path, _one_server("mariadb"))
    assert "both read its binlog as server_id 4242" in text and "server_id: 4243" in text, text
    text = msg(tmp_path, _one_server("mariadb", right="    server_id: 4243\n"))
    assert "both keep replicator's tables in database 'replicator'" in text, text
    assert "state_schema: replicator_idempiere" in text, text
    conns = load(write(tmp_path, _one_server("mariadb", right="    server_id: 4243\n    state_schema: rs_erp\n"))
                 ).connections
    assert [(c.server_id, c.state_schema) for c in conns] == [(4242, "replicator"), (4243, "rs_erp")]
    assert load(write(tmp_path, _one_server("mariadb", right_host="db2.example"))).connections[1].server_id == 4242
