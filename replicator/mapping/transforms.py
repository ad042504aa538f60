"""Field transforms, value maps and row filters of the mapping language (docs/mappings.md).

Compiled once from YAML into plain closures; nothing is evaluated from text. Compile errors are
ConfigError naming file, line and key; a value a transform cannot handle at run time is a
TransformError naming the transform and the value's type (the caller makes it a row error).

Matching rule (value maps; filter ops eq, ne, in, not_in): values match when equal as YAML gives
them: text to text, numbers by numeric value (Decimal('1') matches 1 and 1.0), booleans to booleans.
Failing that, a boolean matches the number 1 or 0 (MariaDB tinyint(1) arrives as 0/1), and text
matches a number or boolean whose str() it equals, either way round ('1' matches 1, 1 matches '1',
'True' matches true), as binlog and pgoutput may deliver either. '01' does not match 1.
"""
from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from replicator.errors import ConfigError, Where

Transform = Callable[[Any, Mapping[str, Any]], Any]  # (value, source_row) -> value
ValueFn = Callable[[Any], Any]
Predicate = Callable[[Mapping[str, Any]], bool]

KNOWN_OPS = ("eq", "ne", "in", "not_in", "is_null", "gt", "ge", "lt", "le")
_NULL_AWARE = ("empty_if_null", "concat")  # every other transform passes None through unchanged
_NUMBERS = (int, float, Decimal)
_SCALARS = (str, int, float, date)  # what YAML gives for a code or a bound (bool is an int)


class TransformError(ValueError):
    """A value a transform cannot handle; names the transform and the value's type, never the row."""

    def __init__(self, transform: str, message: str):
        self.transform = transform
        super().__init__(f"transform {transform}: {message}")


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else (
        "null" if value is None else f"{type(value).__name__} {value!r}")


def _item(where: Where, node: Any, index: int) -> Where:
    lines = getattr(node, "item_lines", None) or []
    line = lines[index] if index < len(lines) else getattr(node, "line", None)
    return Where(where.file, line or where.line, f"{where.key}[{index}]")


def _key(where: Where, node: Any, key: str) -> Where:
    line = (getattr(node, "key_lines", None) or {}).get(key) or getattr(node, "line", None)
    return Where(where.file, line or where.line, f"{where.key}.{key}" if where.key else key)


def _need(ok: bool, what: str, value: Any, where: Where, hint: str | None = None) -> None:
    if not ok:
        raise ConfigError(f"{what}, got {_kind(value)}", where, hint)


def _whole(arg: Any, where: Where, name: str, minimum: int | None = None) -> int:
    ok = isinstance(arg, int) and not isinstance(arg, bool) and (minimum is None or arg >= minimum)
    _need(ok, f"{name} needs a whole number" + (f" >= {minimum}" if minimum is not None else ""), arg, where)
    return int(arg)


def _text(arg: Any, where: Where, name: str) -> str:
    _need(isinstance(arg, str) and arg != "", f"{name} needs non-empty text", arg, where)
    return str(arg)


def _options(arg: Any, where: Where, name: str, required: str, *optional: str) -> Any:
    known = ", ".join((required, *optional))
    _need(isinstance(arg, dict), f"{name} needs a mapping with {known}", arg, where)
    for key in arg:
        if key not in (required, *optional):
            raise ConfigError(f"unknown key {key!r} for {name} (known: {known})", _key(where, arg, key))
    if required not in arg:
        raise ConfigError(f"{name} needs {required!r}", where)
    return arg


# ---------------------------------------------------------------- transforms


def _on_text(name: str, fn: Callable[[str], Any]) -> Transform:
    def step(value: Any, row: Mapping[str, Any]) -> Any:
        if not isinstance(value, str):
            raise TransformError(name, f"expects text, got {type(value).__name__}")
        return fn(value)
    return step


_BARE_STEPS: dict[str, Transform] = {
    "trim": _on_text("trim", str.strip),
    "lower": _on_text("lower", str.lower),
    "upper": _on_text("upper", str.upper),
    "null_if_empty": lambda value, row: None if isinstance(value, str) and value == "" else value,
    "empty_if_null": lambda value, row: "" if value is None else value,
}


def _round(arg: Any, where: Where) -> Transform:
    places = _whole(arg, where, "round", 0)
    exponent = Decimal(1).scaleb(-places)

    def step(value: Any, row: Mapping[str, Any]) -> Any:
        if isinstance(value, bool) or not isinstance(value, _NUMBERS):
            raise TransformError("round", f"expects a number, got {type(value).__name__}")
        exact = value if isinstance(value, Decimal) else Decimal(repr(value))  # a float rounds as written
        if isinstance(value, int) or not exact.is_finite():
            return value
        context = Context(prec=max(28, exact.adjusted() + places + 2), rounding=ROUND_HALF_EVEN)
        result = exact.quantize(exponent, context=context)  # the precision fits: never InvalidOperation
        return result if isinstance(value, Decimal) else float(result)
    return step


def _shift(arg: Any, where: Where) -> Transform:
    """Moves the decimal point: the value times 10**N, exact. Twenty keeps an amount as micros (bigint or numeric
    `amountAmountMicros`, 1.5 is 1500000): `{shift: -6}` gives the amount, `{shift: 6}` the micros back."""
    places = _whole(arg, where, "shift")

    def step(value: Any, row: Mapping[str, Any]) -> Any:
        if isinstance(value, bool) or not isinstance(value, _NUMBERS):
            raise TransformError("shift", f"expects a number, got {type(value).__name__}")
        exact = value if isinstance(value, Decimal) else Decimal(repr(value))  # a float shifts as written
        if not exact.is_finite():
            raise TransformError("shift", f"{value} has no decimal point to move")
        return exact.scaleb(places, context=Context(prec=max(28, len(exact.as_tuple().digits))))  # never rounded
    return step


def _truncate(arg: Any, where: Where) -> Transform:
    length = _whole(arg, where, "truncate", 1)
    return _on_text("truncate", lambda text: text[:length])


def _concat(arg: Any, where: Where) -> Transform:
    options = _options(arg, where, "concat", "fields", "sep")
    fields, sep = options["fields"], options.get("sep", "")
    _need(isinstance(fields, list) and fields != [] and all(isinstance(f, str) and f for f in fields),
          "concat fields must be a non-empty list of column names", fields, _key(where, options, "fields"))
    _need(isinstance(sep, str), "concat sep must be text", sep, _key(where, options, "sep"))

    def step(value: Any, row: Mapping[str, Any]) -> Any:  # the incoming value is ignored
        parts = []
        for name in fields:
            if name not in row:
                raise TransformError("concat", f"the source row has no column {name!r}")
            if isinstance(row[name], (bytes, bytearray, memoryview)):
                raise TransformError("concat", f"column {name!r} holds {type(row[name]).__name__}, not text")
            if row[name] is not None:
                parts.append(str(row[name]))
        return sep.join(parts) if parts else None  # all NULL stays NULL; add empty_if_null for ''
    return step


def _split(arg: Any, where: Where) -> Transform:
    """`parts: N` splits at the first N-1 separators only, so the last part keeps the rest of the text
    ("Wile E. Coyote", parts 2: "Wile" / "E. Coyote"); without it every separator splits and the parts not
    picked are lost, which `check` refuses unless the field says `lossy: allow` (mapping/check/lossy.py)."""
    options = _options(arg, where, "split", "sep", "index", "parts")
    sep = _text(options["sep"], _key(where, options, "sep"), "split sep")
    index = _whole(options.get("index", 0), _key(where, options, "index"), "split index")
    maxsplit = -1
    if "parts" in options:
        parts_at = _key(where, options, "parts")
        count = _whole(options["parts"], parts_at, "split parts", minimum=2)
        _need(-count <= index < count, f"split index must lie in {-count}..{count - 1} for parts {count}", index,
              _key(where, options, "index"))
        maxsplit = count - 1

    def pick(text: str) -> str | None:
        parts = text.split(sep, maxsplit)
        return parts[index] if -len(parts) <= index < len(parts) else None
    return _on_text("split", pick)


def _date_format(arg: Any, where: Where) -> Transform:
    fmt = _text(arg, where, "date_format")

    def step(value: Any, row: Mapping[str, Any]) -> Any:
        if not isinstance(value, (date, time)):
            raise TransformError("date_format", f"expects a date, datetime or time, got {type(value).__name__}")
        return value.strftime(fmt)
    return step


def _parser(name: str, as_date: bool) -> Callable[[Any, Where], Transform]:
    def build(arg: Any, where: Where) -> Transform:
        fmt = _text(arg, where, name)
        try:
            datetime.strptime("", fmt)
        except ValueError as exc:  # a mismatch is expected; a bad format is not
            if "directive" in str(exc) or "stray %" in str(exc):
                raise ConfigError(f"bad {name} format {fmt!r}: {exc}", where) from None

        def parse(text: str) -> Any:
            try:
                parsed = datetime.strptime(text, fmt)
            except ValueError:
                raise TransformError(name, f"text of length {len(text)} does not match {fmt!r}") from None
            return parsed.date() if as_date else parsed
        return _on_text(name, parse)
    return build


def _zone(name: str, to_utc: bool) -> Callable[[Any, Where], Transform]:
    """timezone: naive = local time there -> aware UTC. to_timezone: naive = UTC -> naive local time.

    A naive local time is read with fold=0: an ambiguous one (autumn) is the first, summer-time one;
    one in the spring gap gets the offset in force before the gap.
    """
    def build(arg: Any, where: Where) -> Transform:
        key = _text(arg, where, name)
        try:
            zone = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(f"unknown time zone {key!r}", where, "an IANA name like Europe/Berlin or UTC") from None

        def step(value: Any, row: Mapping[str, Any]) -> Any:
            if not isinstance(value, datetime):
                raise TransformError(name, f"expects a datetime, got {type(value).__name__}")
            if value.utcoffset() is None:
                value = value.replace(tzinfo=zone if to_utc else timezone.utc)
            return value.astimezone(timezone.utc) if to_utc else value.astimezone(zone).replace(tzinfo=None)
        return step
    return build


def _json_get(arg: Any, where: Where) -> Transform:
    """One member of a JSON object: Odoo 16+ keeps a translatable name as jsonb {"en_US": "Chair", ...},
    the other side holds the text of one language. A missing member or one that is itself an object or a
    list is a row error, never NULL or a document's text: the value would be silently altered."""
    member = _text(arg, where, "json_get")

    def step(value: Any, row: Mapping[str, Any]) -> Any:
        doc = value
        if isinstance(doc, (bytes, bytearray, memoryview)):
            doc = bytes(doc).decode("utf-8", "replace")
        if isinstance(doc, str):  # jsonb as text (the stream's form) or a MariaDB JSON (longtext)
            try:
                doc = json.loads(doc)
            except ValueError:
                raise TransformError("json_get", f"expects a JSON object, got text of length {len(doc)} "
                                                 f"that is not JSON") from None
        if not isinstance(doc, dict):
            raise TransformError("json_get", f"expects a JSON object, got {type(doc).__name__}")
        if member not in doc:
            raise TransformError("json_get", f"the object has no member {member!r} (it has "
                                             f"{', '.join(map(repr, sorted(doc)[:5])) or 'none'})")
        got = doc[member]
        if isinstance(got, (dict, list)):
            raise TransformError("json_get", f"member {member!r} is a JSON {type(got).__name__}, not a value")
        return got
    return step


_BUILDERS: dict[str, Callable[[Any, Where], Transform]] = {
    "round": _round, "shift": _shift, "truncate": _truncate, "concat": _concat, "split": _split, "date_format": _date_format,
    "parse_date": _parser("parse_date", True), "parse_datetime": _parser("parse_datetime", False),
    "timezone": _zone("timezone", True), "to_timezone": _zone("to_timezone", False), "json_get": _json_get,
}
KNOWN_TRANSFORMS = (*_BARE_STEPS, *_BUILDERS)
_KNOWN = "known transforms: " + ", ".join([*_BARE_STEPS, *(f"{{{name}: ...}}" for name in _BUILDERS)])


def _compile_item(item: Any, where: Where) -> Transform:
    if isinstance(item, str):
        name, step = item, _BARE_STEPS.get(item)
        if item in _BUILDERS:
            raise ConfigError(f"transform {item} needs an argument", where, f"write it as {{{item}: ...}}")
    elif isinstance(item, dict) and len(item) == 1:
        ((name, arg),) = item.items()
        if name in _BARE_STEPS:
            raise ConfigError(f"transform {name} takes no argument", where, f"write it as a bare item: - {name}")
        step = _BUILDERS[name](arg, _key(where, item, name)) if name in _BUILDERS else None
    else:
        got = f"a mapping with keys {', '.join(map(str, item))}" if isinstance(item, dict) else _kind(item)
        raise ConfigError(f"a transform is a name or a mapping with one key, got {got}", where, _KNOWN)
    if step is None:
        raise ConfigError(f"unknown transform {name!r}", where, _KNOWN)
    if name in _NULL_AWARE:
        return step
    return lambda value, row: None if value is None else step(value, row)


def compile_chain(spec: Any, where: Where) -> Transform | None:
    """Compile a `transform:` list (where: that key's location) into one function; None if empty."""
    if spec is None or isinstance(spec, list) and not spec:
        return None
    _need(isinstance(spec, list), "expected a list of transforms", spec, where, _KNOWN)
    steps = tuple(_compile_item(item, _item(where, spec, i)) for i, item in enumerate(spec))

    def chain(value: Any, row: Mapping[str, Any]) -> Any:
        for step in steps:
            value = step(value, row)
        return value
    return chain


# ---------------------------------------------------------------- matching, value maps


def _canon(value: Any) -> tuple[str, Any]:
    """The exact half of the matching rule: equal tuples match."""
    if isinstance(value, bool):
        return "bool", value
    return ("num" if isinstance(value, _NUMBERS) else "str" if isinstance(value, str) else "other"), value


def _loosely(value: Any, key: Any) -> bool:
    """The fallback half of the matching rule (module docstring)."""
    if isinstance(value, str) != isinstance(key, str):
        text, other = (value, key) if isinstance(value, str) else (key, value)
        return isinstance(other, _NUMBERS) and text == str(other)
    if isinstance(value, bool) != isinstance(key, bool):
        return isinstance(value, _NUMBERS) and isinstance(key, _NUMBERS) and value == key
    return False


def _same(value: Any, key: Any) -> bool:
    try:
        return _canon(value) == _canon(key) or _loosely(value, key)
    except (TypeError, ArithmeticError):  # e.g. Decimal('sNaN')
        return False


def _scalar(value: Any, where: Where, what: str, null_hint: str = "use {is_null: true} for NULL") -> None:
    _need(isinstance(value, _SCALARS), f"{what} must be text, a number, true/false or a date", value, where,
          null_hint if value is None else None)


def _policy(unmapped: Any, where: Where) -> Callable[[Any, str, str], Any]:
    if unmapped is None or unmapped == "error":
        def refuse(value: Any, src: str, dst: str) -> Any:
            raise TransformError("map", f"{src}->{dst}: {value!r:.80} ({type(value).__name__}) is not in the map")
        return refuse
    if unmapped == "pass":
        return lambda value, src, dst: value
    _need(isinstance(unmapped, dict) and list(unmapped) == ["default"],
          "unmapped must be error, pass or {default: value}", unmapped, where)
    default = unmapped["default"]
    if default is not None:
        _scalar(default, _key(where, unmapped, "default"), "unmapped default")
    return lambda value, src, dst: default


def compile_value_map(pairs: Any, sides: tuple[str, str], unmapped: Any,
                      where: Where) -> dict[tuple[str, str], ValueFn]:
    """Compile a field's `map:` and `unmapped:` (where: the field's location) into one function per direction.

    A value listed twice on one side makes the direction from that side ambiguous: it is left out.
    """
    fallback = _policy(unmapped, _key(where, unmapped, "unmapped"))
    map_where = _key(where, pairs, "map")
    _need(isinstance(pairs, list) and pairs != [], "map must be a non-empty list of pairs", pairs, map_where,
          f"write - {{{sides[0]}: x, {sides[1]}: y}}")
    for i, item in enumerate(pairs):
        item_where = _item(map_where, pairs, i)
        got = f"keys {', '.join(map(str, item))}" if isinstance(item, dict) else _kind(item)
        if not isinstance(item, dict) or set(item) != set(sides):
            raise ConfigError(f"each pair needs exactly the keys {sides[0]} and {sides[1]}, got {got}", item_where)
        for side in sides:
            _scalar(item[side], _key(item_where, item, side), "a map value", "NULL always maps to NULL")
    result: dict[tuple[str, str], ValueFn] = {}
    for src, dst in (sides, sides[::-1]):
        table = [(item[src], item[dst]) for item in pairs]
        exact = {_canon(key): out for key, out in table}
        if len(exact) == len(table):
            result[(src, dst)] = _lookup(src, dst, exact, table, fallback)
    return result


def _lookup(src: str, dst: str, exact: dict[tuple[str, Any], Any], table: list[tuple[Any, Any]],
            fallback: Callable[[Any, str, str], Any]) -> ValueFn:
    def translate(value: Any) -> Any:
        if value is None:
            return None
        try:
            return exact[_canon(value)]
        except (KeyError, TypeError):  # TypeError: an unhashable value (an array) is not listed
            pass
        for key, out in table:  # the first listed loose match wins
            if _loosely(value, key):
                return out
        return fallback(value, src, dst)
    return translate


# ---------------------------------------------------------------- row filters


def _ordered(op: Callable[[Any, Any], Any], bound: Any) -> Callable[[Any], bool]:
    def compare(value: Any) -> bool:
        other = bound
        if isinstance(value, datetime) and type(bound) is date:  # a YAML date bounds a timestamp at midnight
            other = datetime.combine(bound, time(), value.tzinfo)
        elif isinstance(bound, datetime) and type(value) is date:
            value = datetime.combine(value, time(), bound.tzinfo)
        try:
            return value is not None and bool(op(value, other))
        except (TypeError, ArithmeticError):  # incomparable types, naive vs aware, NaN: no match
            return False
    return compare


def _condition(op: str, arg: Any, where: Where) -> Callable[[Any], bool]:
    if op in ("eq", "ne"):
        _scalar(arg, where, op)
        return (lambda v: _same(v, arg)) if op == "eq" else (lambda v: not _same(v, arg))
    if op in ("in", "not_in"):
        _need(isinstance(arg, list) and arg != [], f"{op} needs a non-empty list", arg, where, f"{{{op}: [a, b]}}")
        for i, item in enumerate(arg):
            _scalar(item, _item(where, arg, i), f"an item of {op}")
        want = op == "in"
        return lambda v: any(_same(v, item) for item in arg) == want
    if op == "is_null":
        _need(isinstance(arg, bool), "is_null needs true or false", arg, where)
        return lambda v: (v is None) == arg
    if op in ("gt", "ge", "lt", "le"):
        _need(not isinstance(arg, bool), f"{op} needs text, a number or a date", arg, where)
        _scalar(arg, where, op)
        return _ordered(getattr(operator, op), arg)
    raise ConfigError(f"unknown filter operator {op!r}", where, f"known: {', '.join(KNOWN_OPS)}")


def compile_predicate(spec: Any, where: Where) -> Predicate | None:
    """Compile a filter {column: {op: arg, ...} | scalar (eq)} (where: its location); None if empty.

    All conditions must hold. A column missing from the row fails; NULL fails every op except ne,
    not_in and is_null: true; values of incomparable types do not match (no exception).
    """
    if spec is None or isinstance(spec, dict) and not spec:
        return None
    _need(isinstance(spec, dict), "a filter is a mapping of column: {op: value}", spec, where,
          f"operators: {', '.join(KNOWN_OPS)}")
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    for column, cond in spec.items():
        column_where = _key(where, spec, column)
        if isinstance(cond, dict) and cond:
            checks.extend((column, _condition(op, arg, _key(column_where, cond, op))) for op, arg in cond.items())
            continue
        hint = "{in: [a, b]}" if isinstance(cond, list) else "{is_null: true}" if cond is None else None
        _need(not isinstance(cond, (dict, list)) and cond is not None, "a condition is {op: value} or a plain value",
              cond, column_where, hint or f"operators: {', '.join(KNOWN_OPS)}")
        checks.append((column, _condition("eq", cond, column_where)))

    def predicate(row: Mapping[str, Any]) -> bool:
        return all(column in row and check(row[column]) for column, check in checks)
    def refutes(row: Mapping[str, Any]) -> bool:
        """A part of a row (an old image that holds only some columns) already fails the filter: a condition on
        a column it holds fails, whatever the columns it lacks hold."""
        return any(column in row and not check(row[column]) for column, check in checks)
    # the columns a NULL makes the filter refuse (`check` does not warn of a NULL such a row never sends)
    predicate.rejects_null = frozenset(column for column, check in checks if not check(None))  # type: ignore[attr-defined]
    predicate.refutes = refutes  # type: ignore[attr-defined]
    return predicate
