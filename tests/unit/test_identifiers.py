"""replicator.identifiers: the one quoting function per dialect (no servers)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.appliers.mariadb import quote
from replicator.identifiers import for_params, my_ident, pg_ident, quote_ident, unquote_ident


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


@given(st.text(), st.sampled_from(["postgresql", "mariadb"]), st.booleans())
def test_a_quoted_name_reads_back_as_itself_in_either_dialect(name: str, dialect: str, ansi: bool) -> None:
    assert unquote_ident(quote_ident(dialect, name), dialect, ansi_quotes=ansi) == name


@pytest.mark.parametrize("text, dialect, name", [
    ('"Mixed""Name"', "postgresql", 'Mixed"Name'),
    ("Stock", "postgresql", "stock"),  # unquoted: folded
    ("ÄRGER_Ü", "postgresql", "Ärger_Ü"),  # A-Z only, as PostgreSQL folds in a UTF8 database
    ('"Stock"', "postgresql", "Stock"),
    ("`x`", "postgresql", "`x`"),  # a backtick quotes nothing in PostgreSQL
    ("  t  ", "postgresql", "t"),
    ("`a``b`", "mariadb", "a`b"),
    ("`a.b`", "mariadb", "a.b"),
    ("Stock", "mariadb", "Stock"),  # MariaDB keeps the case
    ('"x"', "mariadb", '"x"'),  # a string literal without ANSI_QUOTES: names no table
    ("`say \"hi\"`", "mariadb", 'say "hi"'),
])
def test_each_dialect_reads_its_own_quotes_and_folding(text: str, dialect: str, name: str) -> None:
    assert unquote_ident(text, dialect) == name


def test_mariadb_reads_double_quotes_only_under_ansi_quotes() -> None:
    assert unquote_ident('"a""b"', "mariadb", ansi_quotes=True) == 'a"b'
    assert unquote_ident("`a``b`", "mariadb", ansi_quotes=True) == "a`b"
    assert unquote_ident('"a""b"', "mariadb") == '"a""b"'


@pytest.mark.parametrize("text, dialect", [('"abc', "postgresql"), ('"a"b"', "postgresql"), ('"', "postgresql"),
                                           ("`abc", "mariadb"), ("`a`b`", "mariadb"), ("`", "mariadb")])
def test_a_quoted_name_that_does_not_close_is_refused(text: str, dialect: str) -> None:
    with pytest.raises(ValueError, match="malformed quoted name"):
        unquote_ident(text, dialect)


def test_an_unknown_dialect_is_refused_so_that_swapped_arguments_show() -> None:
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        unquote_ident("postgresql", "Stock")
