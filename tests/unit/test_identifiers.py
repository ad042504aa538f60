"""replicator.identifiers: the one quoting function per dialect (no servers)."""
from __future__ import annotations

import pytest

from replicator.appliers.mariadb import quote
from replicator.identifiers import for_params, my_ident, pg_ident, quote_ident


@pytest.mark.parametrize("name, pg, my", [
    ("plain", '"plain"', "`plain`"),
    ('say "hi"', '"say ""hi"""', '`say "hi"`'),
    ("back`tick", '"back`tick"', "`back``tick`"),
    ("a.b", '"a.b"', "`a.b`"),  # a dot inside a name stays inside the quotes
    ("Ünïcode ö", '"Ünïcode ö"', "`Ünïcode ö`"),
])
def test_each_dialect_quotes_every_name_and_doubles_its_own_quote(name: str, pg: str, my: str) -> None:
    assert pg_ident(name) == pg
    assert my_ident(name) == my
    assert quote_ident("postgresql", name) == pg
    assert quote_ident("mariadb", name) == my


def test_parts_are_quoted_one_by_one_and_joined_by_dots() -> None:
    assert pg_ident("crm", "my table") == '"crm"."my table"'
    assert my_ident("erp", "t`1") == "`erp`.`t``1`"


def test_a_percent_is_doubled_only_for_statements_with_parameters() -> None:
    assert pg_ident("50%s") == '"50%s"'
    assert for_params(pg_ident("50%s")) == '"50%%s"'
    assert quote("erp", "50%") == "`erp`.`50%%`"  # the MariaDB applier's statements always run with parameters
