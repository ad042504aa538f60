"""cli: configuration errors exit 78 with one line naming file:line: key, never a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.cli import main
from replicator.errors import EXIT_CONFIG

GOOD = """\
connections:
  crm:
    kind: postgresql
    database: crm
    user: u
  erp:
    kind: mariadb
    database: erp
    user: u
mappings: maps
"""

MAPPING = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str) -> None:
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["check", "setup", "run"])
def test_unknown_key_exits_78_naming_file_line_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    command: str) -> None:
    bad = tmp_path / "replicator.yaml"
    bad.write_text(GOOD.replace("    database: erp\n", "    database: erp\n    prot: 3306\n"))
    code, out, err = run(capsys, command, "--config", str(bad))
    assert code == EXIT_CONFIG == 78
    assert out == ""
    assert err == (
        f"replicator: configuration error: {bad}:9: connections.erp.prot: unknown key 'prot' (known: database, "
        "host, kind, port, server_id, ssl_ca, ssl_verify_identity, state_schema, user)\n"
    )
    assert_one_line(err)


def test_literal_password_is_refused_without_echoing_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "replicator.yaml"
    bad.write_text(GOOD.replace("    database: crm\n", "    database: crm\n    password: Hunter2-xyz\n"))
    code, _, err = run(capsys, "check", "-c", str(bad))
    assert code == 78
    assert "Hunter2-xyz" not in err
    assert err == (
        f"replicator: configuration error: {bad}:5: connections.crm.password: passwords are not written in the "
        "configuration file (fix: use password_file, password_env or password_credential)\n"
    )


def test_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "replicator.yaml"
    bad.write_text(GOOD + "batch: {max_rows: 5\n")
    code, _, err = run(capsys, "check", "--config", str(bad))
    assert code == 78
    assert err == (
        f"replicator: configuration error: {bad}:12: <syntax>: YAML error: expected ',' or '}}', "
        "but got '<stream end>'\n"
    )


def test_python_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "replicator.yaml"
    marker = tmp_path / "pwned"
    bad.write_text(GOOD.replace("mappings: maps", f"mappings: !!python/object/apply:os.system ['touch {marker}']"))
    code, _, err = run(capsys, "check", "--config", str(bad))
    assert code == 78
    assert err == (
        f"replicator: configuration error: {bad}:10: <syntax>: YAML error: tags such as !!python/... are not "
        "allowed; plain YAML only\n"
    )
    assert not marker.exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "check", "--config", str(missing))
    assert code == 78
    assert out == ""
    assert err == f"replicator: configuration error: cannot read {missing}: No such file or directory\n"


def test_config_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "--config", str(tmp_path))
    assert code == 78
    assert err == f"replicator: configuration error: cannot read {tmp_path}: Is a directory\n"


def test_default_config_path_is_relative_to_cwd(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check")
    assert code == 78
    assert err == "replicator: configuration error: cannot read replicator.yaml: No such file or directory\n"


def test_bad_mapping_exits_78_naming_the_mapping_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "replicator.yaml"
    conf.write_text(GOOD)
    (tmp_path / "maps").mkdir()
    mapping = tmp_path / "maps" / "customers.yaml"
    mapping.write_text(MAPPING.replace("direction: both", "direction: sideways"))
    code, _, err = run(capsys, "check", "--config", str(conf))
    assert code == 78
    assert err == (
        f"replicator: configuration error: {mapping}:3: mappings.customers.direction: 'sideways' is not one of "
        "both, crm_to_erp, erp_to_crm\n"
    )


def test_missing_mapping_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "replicator.yaml"
    conf.write_text(GOOD)
    code, _, err = run(capsys, "check", "--config", str(conf))
    assert code == 78
    assert err == (
        f"replicator: configuration error: {conf}: mappings: mapping directory {tmp_path / 'maps'} does not exist\n"
    )


def test_setup_print_sql_needs_no_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "replicator.yaml"
    conf.write_text(GOOD)
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "customers.yaml").write_text(MAPPING)
    code, out, err = run(capsys, "setup", "--config", str(conf), "--print-sql")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "-- on crm (postgresql://u@127.0.0.1:5432/crm), as an owner of the mapped tables"
    assert 'CREATE PUBLICATION "replicator" FOR TABLE "public"."customer";' in lines
    assert "SELECT pg_create_logical_replication_slot('replicator', 'pgoutput');" in lines
    assert "-- on erp (mariadb://u@127.0.0.1:3306/erp), as an owner of the mapped tables" in lines


def test_usage_error_is_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("error", [
    "pymysql", "psycopg2", "sqlalchemy"])
def test_a_database_error_no_layer_turned_into_ours_is_one_line_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: str) -> None:
    """A server lost in the middle of a command (a restart during `verify` or `sync`): the driver's words on one
    line and exit 1. The start-up checks turned one such error into a traceback (CI, round 14)."""
    import psycopg2
    import pymysql
    import sqlalchemy

    from replicator import cli

    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    raised = {"pymysql": lost,
              "psycopg2": psycopg2.OperationalError("server closed the connection unexpectedly"),
              "sqlalchemy": sqlalchemy.exc.OperationalError("SHOW CREATE TABLE `t`", {}, lost)}[error]

    def fails(*_args: object) -> int:
        raise raised
    monkeypatch.setattr(cli, "_check", fails)
    conf = tmp_path / "replicator.yaml"
    conf.write_text(GOOD)
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "customers.yaml").write_text(MAPPING)
    code, out, err = run(capsys, "check", "--config", str(conf))
    assert code == 1 and out == ""
    words = "server closed the connection unexpectedly" if error == "psycopg2" else \
        "(2013) Lost connection to MySQL server during query"
    assert err == f"replicator: database error: {words}; the command did not finish\n"
    assert_one_line(err)
