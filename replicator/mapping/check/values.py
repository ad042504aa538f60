"""Values the mapping spells out (constants, defaults, map values) against a target column."""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal, InvalidOperation
from typing import Any

from replicator.mapping.check.casts import _int_digits, _int_range
from replicator.mapping.check.columns import ColumnInfo

# ---------------------------------------------------------------- values spelled out in the mapping


def _value_problem(value: Any, t: ColumnInfo) -> str | None:
    """Why `value` can never be stored in a column of type `t`, or None."""
    if value is None:
        return None
    k = t.kind
    if k == "enum":
        if isinstance(value, bool) or str(value) not in t.enums:
            return f"{value!r} is not a value of {t.describe()}"
        return None
    if k == "text" and t.enums and not (isinstance(value, str) and value in t.enums):
        return f"{value!r} is not allowed by the CHECK of {t.describe()}"
    if k == "text":
        text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if t.length is not None and len(text) > t.length:
            return f"{value!r} is {len(text)} characters, the column holds {t.length}"
        return None
    if k in ("int", "decimal", "float"):
        if isinstance(value, bool):
            return None
        try:
            number = Decimal(str(value).strip()) if isinstance(value, (str, int, float)) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            return f"{value!r} is not a number"
        if k == "int":
            lo, hi = _int_range(t)
            if number != number.to_integral_value():
                return f"{value!r} is not a whole number"
            if not lo <= number <= hi:
                return f"{value!r} is outside {t.describe()} ({lo}..{hi})"
        if k == "decimal":
            if t.unsigned and number < 0:
                return f"{value!r} is negative, the column is UNSIGNED"
            digits = _int_digits(t)
            if digits is not None and abs(number) >= Decimal(10) ** digits:
                return f"{value!r} has more than {digits} integer digits ({t.describe()})"
        return None
    if k in ("date", "datetime") and isinstance(value, str):
        try:
            (_dt.date if k == "date" else _dt.datetime).fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a {k}"
    return None
