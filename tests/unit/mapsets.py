"""Mapping sets compiled from YAML text, for unit tests: a config of two fake connections (crm on PostgreSQL,
erp on MariaDB) with an empty mappings folder (the `config` fixture: import it with the functions), a text --
or a template and its values -- loaded as the folder's one file, or the ConfigError it raises."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from replicator.config import Account, Batching, Config, Connection, Secret
from replicator.errors import ConfigError
from replicator.mapping.model import MappingSet, load_mappings


def make_config(tmp_path: Path, host: str = "h", port: int | None = None, crm_db: str = "crmdb") -> Config:
    """`port`: both servers' (None: 5432 and 3306); explain's tests name a port nothing listens on."""
    acc = Account("u", Secret(""))
    crm = Connection("crm", "postgresql", host, port or 5432, crm_db, acc, acc)
    erp = Connection("erp", "mariadb", host, port or 3306, "erpdb", acc, acc)
    return Config(tmp_path / "replicator.yaml", (crm, erp), tmp_path / "maps", Batching())


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "maps").mkdir()
    return make_config(tmp_path)


def write(config: Config, name: str, text: str) -> Path:
    path = config.mappings_dir / name
    path.write_text(text, encoding="utf-8")
    return path


def load(config: Config, text: str, **values: Any) -> MappingSet:
    """`text` as m.yaml, compiled; with `values`, `text` is a template (`{direction}`, braces doubled)."""
    write(config, "m.yaml", text.format(**values) if values else text)
    return load_mappings(config)


def error(config: Config, text: str, name: str = "m.yaml", **values: Any) -> str:
    """The ConfigError `text` (a template with `values`) raises as the file `name`, the folder left out."""
    write(config, name, text.format(**values) if values else text)
    with pytest.raises(ConfigError) as info:
        load_mappings(config)
    return str(info.value).replace(str(config.mappings_dir) + "/", "")
