"""SQL identifier quoting: one function per dialect, used by every module that writes a name into SQL.

Names come from the catalog or the user's mappings and may hold anything (quotes, dots, %), so every
name in a statement goes through these. A statement run with parameters (psycopg2, PyMySQL) reads a
single % as a placeholder: `for_params` doubles it, once, after quoting.

`unquote_ident` reads a name back out of SQL text (a trigger's body, a DDL statement in the binlog).
"""
from __future__ import annotations


def pg_ident(*parts: str) -> str:
    """PostgreSQL: each part in double quotes, a double quote inside doubled; parts joined by dots."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def my_ident(*parts: str) -> str:
    """MariaDB/MySQL: each part in backticks, a backtick inside doubled; parts joined by dots."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in parts)


def quote_ident(kind: str, *parts: str) -> str:
    """The quoting of the database `kind` ("postgresql" or "mariadb")."""
    return pg_ident(*parts) if kind == "postgresql" else my_ident(*parts)


def for_params(quoted: str) -> str:
    """A quoted name for a statement run with parameters: % doubled (the drivers' placeholder)."""
    return quoted.replace("%", "%%")


def unquote_ident(name: str, dialect: str, *, ansi_quotes: bool = False) -> str:
    """One name as SQL text writes it (one part, quoted or not) as the server reads it; `quote_ident`'s inverse.

    `dialect` is a connection's kind, "postgresql" or "mariadb". PostgreSQL: `"x"`, a `""` inside is one double
    quote; an unquoted name is folded to lower case, A-Z only, as PostgreSQL folds it in a UTF8 database.
    MariaDB: `` `x` ``, a doubled backtick inside is one; an unquoted name keeps its case. To MariaDB a `"x"` is a
    string literal unless the statement ran under sql_mode ANSI_QUOTES: the caller says which it assumes
    (`ansi_quotes`); without it a `"x"` comes back as it is, quotes and all, and so names no table.
    A quoted name that does not close, or has a lone quote inside, raises ValueError.
    """
    if dialect not in ("postgresql", "mariadb"):
        raise ValueError(f"unknown SQL dialect {dialect!r} (postgresql or mariadb)")
    name = name.strip()
    quotes = '"' if dialect == "postgresql" else ("`\"" if ansi_quotes else "`")
    q = name[:1]
    if q and q in quotes:
        inner = name[1:-1]
        if len(name) < 2 or name[-1] != q or inner.replace(q + q, "").count(q):
            raise ValueError(f"malformed quoted name {name!r}")
        return inner.replace(q + q, q)
    if dialect == "postgresql":
        return name.translate(_ASCII_LOWER)
    return name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
