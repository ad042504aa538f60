"""Keys the application generates (docs/mappings.md, "Keys the application makes").

Many CRMs key rows by strings their application makes (a UUID, or a path of fixed segments and a UUID)
rather than by an identity column. When replicator creates such a row through a crosswalk it makes the
key the same way, once, just before the insert; the key goes into the crosswalk in the same target
transaction as the row (replicator.mapping.links), so a crash never leaves an unlinked copy and a
retried transaction makes a fresh key for a row that was never committed.

Forms, per key column of an endpoint (`generate: {id: ...}`):
- `default`: the column's DEFAULT, evaluated by the database (a function `check` does not recognise as
  a per-row default, such as a trigger-free `DEFAULT (make_key())`); the column must have a DEFAULT.
- `uuid`: a fresh random UUID, as text (`8c1d…-…`).
- `{template: "contact/{entity}/{uuid}"}`: constants, `{field}` values of the row being created (in
  target terms) and `{uuid}` (a fresh UUID). A field that is NULL is a row error, never an empty segment.
- `{hex: 17}`: that many random lower-case hex digits (EspoCRM's `VARCHAR(17)` ids, which a 36-character UUID
  does not fit: docs/walkthrough-espocrm-tryton.md).
"""
from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from replicator.errors import ConfigError, Where



@dataclass(frozen=True)
class KeyGen:
    """How one key column is made when replicator creates a row."""

    column: str
    kind: str  # default | uuid | template | hex
    template: str = ""
    fields: tuple[str, ...] = ()  # field names the template reads (not `uuid`)
    length: int = 0  # hex: how many digits

    @property
    def by_database(self) -> bool:
        return self.kind == "default"

    def make(self, values: Mapping[str, Any]) -> str:
        """The key for a new row; `values` maps the template's field names to their target values."""
        if self.kind == "uuid":
            return str(uuid.uuid4())
        if self.kind == "hex":
            return secrets.token_hex((self.length + 1) // 2)[:self.length]
        if self.kind != "template":
            raise ValueError(f"{self.kind} keys are made by the database")
        parts = {"uuid": str(uuid.uuid4())}
        for name in self.fields:
            value = values.get(name)
            if value is None:
                raise KeyError(name)
            parts[name] = str(value)
        return self.template.format_map(parts)


def compile_generate(spec: Any, key: tuple[str, ...], fields: set[str], where: Where) -> tuple[KeyGen, ...]:
    """`generate: {column: default | uuid | {template: "..."} | {hex: N}}` of an endpoint."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError("generate maps key columns to default, uuid, {template: \"...\"} or {hex: N}", where)
    out = []
    for column, form in spec.items():
        if column not in key:
            raise ConfigError(f"generate: {column!r} is not a key column of this table (key: {list(key)})", where)
        if form in ("default", "uuid"):
            out.append(KeyGen(str(column), str(form)))
            continue
        if isinstance(form, Mapping) and set(form) == {"hex"}:
            n = form["hex"]
            if isinstance(n, bool) or not isinstance(n, int) or not 12 <= n <= 64:
                raise ConfigError(f"generate.{column}.hex is the number of random hex digits, 12 to 64 (fewer "
                                  f"would repeat): got {n!r}", where)
            out.append(KeyGen(str(column), "hex", length=n))
            continue
        if not (isinstance(form, Mapping) and set(form) == {"template"} and isinstance(form["template"], str)):
            raise ConfigError(f"generate.{column} is default, uuid, {{template: \"prefix/{{field}}/{{uuid}}\"}} or "
                              f"{{hex: N}}", where)
        template = form["template"]
        try:
            names = [n for _, n, _, _ in string.Formatter().parse(template) if n is not None]
        except ValueError as exc:
            raise ConfigError(f"generate.{column}.template: {exc}", where) from None
        bad = [n for n in names if n != "uuid" and n not in fields]
        if bad or any(not n for n in names):
            raise ConfigError(f"generate.{column}.template: {{{bad[0] if bad else ''}}} is neither a field of the "
                              f"mapping nor {{uuid}}", where)
        if "uuid" not in names and not any(n in fields for n in names):
            raise ConfigError(f"generate.{column}.template makes the same key for every row: add {{uuid}} or a "
                              f"field", where)
        out.append(KeyGen(str(column), "template", template, tuple(n for n in dict.fromkeys(names) if n != "uuid")))
    return tuple(out)
