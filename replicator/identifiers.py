"""SQL identifier quoting: one function per dialect, used by every module that writes a name into SQL.

Names come from the catalog or the user's mappings and may hold anything (quotes, dots, %), so every
name in a statement goes through these. A statement run with parameters (psycopg2, PyMySQL) reads a
single % as a placeholder: `for_params` doubles it, once, after quoting.
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
