"""`replicator dlq list|show` as an operator reads them, without servers: the queue of each database is
stubbed (deadletter.exists/select), the command's output and exit are real."""
from __future__ import annotations

import argparse
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from replicator.admin import dlq
from replicator.changes import Op, TableRef, TargetChange
from replicator.errors import ConfigError
from replicator.mapping.model import MappingSet
from replicator.stream import deadletter
from replicator.stream.deadletter import Entry
from tests.unit.mapsets import make_config

UUID = "5b7e1c4a-0000-4000-8000-000000000004"


def entry(side: str, id_: int, key: Any, table: str = "erp.llx_societe") -> Entry:
    change = TargetChange(TableRef("erp", "llx_societe"), Op.INSERT, ("rowid",), (key,), {"nom": "x"},
                          mapping="customers")
    return Entry(side, id_, datetime(2026, 12, 7, 0, 14, 50), "crm_to_erp", "customers", table, (key,), (key,),
                 "insert", "0/1", None, change, "Data too long for column 'nom'", "row")


class Db:
    def __init__(self, side: str) -> None:
        self.conn = argparse.Namespace(name=side, kind="mariadb", state_schema="replicator")
        self.stream = f"x_to_{side}"

    def rollback(self) -> None:
        pass

    def begin(self) -> None:
        pass

    def commit_untracked(self) -> None:
        pass

    def load_types(self, tables: Any) -> None:
        pass

    def close(self) -> None:
        pass


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queues: dict[str, list[Entry]], *argv: str) -> str:
    monkeypatch.setattr(deadletter, "exists", lambda db: True)
    monkeypatch.setattr(deadletter, "select", lambda db, **kw: list(queues.get(db.conn.name, [])))
    parser = argparse.ArgumentParser()
    dlq.add_arguments(parser)
    out = io.StringIO()
    assert dlq.command(parser.parse_args(list(argv)), make_config(tmp_path), MappingSet([]), out,
                       opener=lambda config, side: Db(side)) == 0  # type: ignore[arg-type,return-value]
    return out.getvalue()


def test_list_lines_long_keys_up_under_their_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(tmp_path, monkeypatch, {"erp": [entry("erp", 1, UUID), entry("erp", 12, 7)]}, "list")
    lines = text.splitlines()
    assert lines[0] == "erp:", text
    header, first, second = lines[1:]
    # before: a 36-character key overflowed its 14-character column and pushed OP and ERROR out of line
    for column in ("OP", "ERROR"):
        at = header.index(column)
        assert first[at - 1] == " " and first[at] != " " and second[at] != " ", text
    assert first.split()[5] == UUID and second.split()[5] == "7", text
    assert "crm:" not in text  # an empty queue is not a section of its own


def test_empty_queues_say_which_databases_were_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: "erp:" and "the dead-letter queue is empty", as if only erp had been read
    assert run(tmp_path, monkeypatch, {}, "list") == "the dead-letter queues of crm and erp are empty\n"
    assert run(tmp_path, monkeypatch, {}, "list", "--key", "42") == "no queued change matches --key 42\n"


@pytest.mark.parametrize("action", ["show", "retry", "skip"])
def test_an_id_that_is_not_queued_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    # before: `dlq show erp:999` printed nothing and exited 0
    with pytest.raises(ConfigError, match=r"no queued change erp:999 \(`replicator dlq list` lists them"):
        run(tmp_path, monkeypatch, {"erp": [entry("erp", 1, UUID)]}, action, "erp:999")
    assert "erp:1" in run(tmp_path, monkeypatch, {"erp": [entry("erp", 1, UUID)]}, "show", "erp:1")


def test_the_example_id_names_this_configurations_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With connections named suitecrm and idempiere, `dlq show suitecrm:1` of an applied change answered
    "as crm:3": an id no side of this configuration has."""
    from dataclasses import replace
    config = make_config(tmp_path)
    config = replace(config, connections=(replace(config.connections[0], name="suitecrm"),
                                          replace(config.connections[1], name="idempiere")))
    monkeypatch.setattr(deadletter, "exists", lambda db: True)
    monkeypatch.setattr(deadletter, "select", lambda db, **kw: [])
    parser = argparse.ArgumentParser()
    dlq.add_arguments(parser)
    for argv in (["show", "suitecrm:1"], ["show"]):
        with pytest.raises(ConfigError) as info:
            dlq.command(parser.parse_args(argv), config, MappingSet([]), io.StringIO(),
                        opener=lambda config, side: Db(side))  # type: ignore[arg-type,return-value]
        assert "(suitecrm:3)" in str(info.value) or "as suitecrm:3)" in str(info.value), str(info.value)
        assert "crm:3" not in str(info.value).replace("suitecrm:3", ""), str(info.value)
