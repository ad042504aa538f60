"""What the table scanner knows of one column (how it is selected, converted and passed back as a
key) and its error, shared by the scanner and the per-database value rules."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from replicator.errors import FatalError


class TableScanError(FatalError):
    """A table, column or value the scanner cannot read exactly as the change stream would deliver it."""

    kind = "scan"

    def __init__(self, message: str, *, table: Any, column: str | None = None, key: Any = None):
        self.table = str(table)
        self.column = column
        self.key = key
        where = f"table {table}"
        if column is not None:
            where += f", column {column}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")


Conv = Optional[Callable[[Any], Any]]


class ScanColumn:
    """How one column is selected, converted to the stream's value, and (for a key) passed back."""

    __slots__ = ("name", "expr", "conv", "param", "cast", "unsupported_key")

    def __init__(self, name: str, expr: str, conv: Conv = None, param: Conv = None, cast: str = "",
                 unsupported_key: str | None = None):
        self.name = name
        self.expr = expr  # SQL select expression
        self.conv = conv  # driver value (not None) -> stream value; None: as is
        self.param = param  # stream value of a key column -> statement parameter; None: as is
        self.cast = cast  # PostgreSQL: type name the parameter is cast to
        self.unsupported_key = unsupported_key  # why this column cannot be a key column


def try_convert(conv: Conv, value: Any) -> Any:
    """A key value for an error message: converted if it can be, else as the driver gave it."""
    if conv is None or value is None:
        return value
    try:
        return conv(value)
    except Exception:
        return value


def compile_rows(names: Sequence[str], convs: Sequence[Conv]) -> Callable[[Sequence[tuple[Any, ...]]], list[Any]]:
    """A function turning driver rows into row dicts: straight-line code, one converter call per column that
    needs one, no per-value type dispatch."""
    ns: dict[str, Any] = {}
    unpack = ", ".join(f"v{i}" for i in range(len(names))) + ("," if len(names) == 1 else "")
    items = []
    for i, (name, conv) in enumerate(zip(names, convs)):
        if conv is None:
            items.append(f"{name!r}: v{i}")
        else:
            ns[f"c{i}"] = conv
            items.append(f"{name!r}: None if v{i} is None else c{i}(v{i})")
    src = ("def convert(rows):\n"
           "    out = []\n"
           "    append = out.append\n"
           "    for r in rows:\n"
           f"        {unpack} = r\n"
           f"        append({{{', '.join(items)}}})\n"
           "    return out\n")
    exec(compile(src, "<tablescan>", "exec"), ns)  # noqa: S102 - names only appear as repr() literals
    convert: Callable[[Sequence[tuple[Any, ...]]], list[Any]] = ns["convert"]
    return convert
