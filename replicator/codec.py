"""JSON with types: row values and keys as text, for crosswalk keys and parked changes.

Decimal, dates, times, bytes and UUIDs keep their exact type through a round trip; plain JSON
values stay plain, so a crosswalk key like [42] is readable in SQL.
"""
from __future__ import annotations

import base64
import json
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Callable

from replicator.changes import UNCHANGED, Op, RowChange, TableRef, zero_dated


def _enc(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"$f": repr(value)}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$da": value.isoformat()}
    if isinstance(value, time):
        return {"$t": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, uuid.UUID):
        return {"$u": str(value)}
    if value is UNCHANGED:
        return {"$unchanged": True}
    if isinstance(value, (list, tuple)):
        return [_enc(v) for v in value]
    if isinstance(value, dict):
        return {"$o": {k: _enc(v) for k, v in value.items()}}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _dec(value: Any) -> Any:
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if not isinstance(value, dict):
        return value
    (tag, body), = value.items()
    decoders: dict[str, Callable[[Any], Any]] = {
        "$f": lambda b: float(b), "$d": Decimal, "$dt": datetime.fromisoformat, "$da": date.fromisoformat,
        "$t": time.fromisoformat, "$td": lambda b: timedelta(seconds=b), "$b": base64.b64decode,
        "$u": uuid.UUID, "$unchanged": lambda _b: UNCHANGED,
        "$o": lambda b: {k: _dec(v) for k, v in b.items()},
    }
    return decoders[tag](body)


def dumps_key(key: tuple[Any, ...]) -> str:
    return json.dumps([_enc(v) for v in key], separators=(",", ":"))


def loads_key(text: str) -> tuple[Any, ...]:
    return tuple(_dec(v) for v in json.loads(text))


def dumps_value(value: Any) -> str:
    """One value as JSON text that keeps its type (a conflict's source and target values)."""
    return json.dumps(_enc(value), separators=(",", ":"))


def loads_value(text: str) -> Any:
    return _dec(json.loads(text))


def dumps_change(change: RowChange) -> str:
    d: dict[str, Any] = {
        "table": [change.table.schema, change.table.name], "op": change.op.value,
        "before": None if change.before is None else {k: _enc(v) for k, v in change.before.items()},
        "after": None if change.after is None else {k: _enc(v) for k, v in change.after.items()},
    }
    for image in ("before", "after"):  # a MariaDB zero date (None in the image) stays named: refused on retry
        zero = getattr(getattr(change, image), "zero_dates", None)
        if zero:
            d[f"{image}_zero_dates"] = list(zero)
            d[f"{image}_zero_texts"] = getattr(change, image).zero_texts
    return json.dumps(d, separators=(",", ":"))


def loads_change(text: str) -> RowChange:
    d = json.loads(text)

    def row(image: str) -> dict[str, Any] | None:
        r = d[image]
        return None if r is None else zero_dated({k: _dec(v) for k, v in r.items()},
                                                 d.get(f"{image}_zero_dates") or (), d.get(f"{image}_zero_texts"))
    return RowChange(TableRef(*d["table"]), Op(d["op"]), row("before"), row("after"))
