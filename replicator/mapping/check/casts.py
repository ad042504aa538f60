"""The cast table: rules for a cast from the source column to the target column of one field plan ("fit": the value
always fits; "lossy": a warning when the target refuses a value that does not fit (`_loud`), else refused
unless the field says `lossy: allow`, then an ok finding records it; "error": refused even with
`lossy: allow`, the cast cannot work; "unknown": not checked, a warning counted in check's summary).

`TABLE` below is the table, as data: for each source kind (row) and target kind (column) a verdict
("fit", "lossy", "error") or the letter of a rule that looks at both types. docs/types.md shows the
same table (tests/unit/test_type_contract_doc.py compares the two, and `_cast` with the table).
`special_values` adds what the table cannot see: PostgreSQL values MariaDB has no form for.

- R: fits when the target's range holds the source's (bits and signedness: BIGINT UNSIGNED into a
  signed BIGINT, or any signed integer into an UNSIGNED one, is lossy). R': a decimal into an
  integer fits when its scale is 0 and its integer digits fit the range.
- D: fits when the target decimal has at least the source's integer digits (precision - scale)
  and scale (an unbounded PostgreSQL `numeric` holds anything; an unbounded source into a bounded
  target is lossy); a signed source into a MariaDB `DECIMAL UNSIGNED` is lossy. A bool needs one
  integer digit.
- M: an integer into a float fits when the float's mantissa holds it (up to 16 bits into REAL /
  FLOAT, up to 32 bits into DOUBLE). P: a decimal into a float fits up to 6 (REAL) / 15 (DOUBLE)
  digits. B: DOUBLE into REAL / FLOAT is lossy.
- W: fits when the target text is unbounded or at least as long as the longest text of the
  source (integer: digits and sign; decimal(p, s): p + 2; float: 24; bool: 5; date: 10; datetime:
  26, 32 with a time zone; time: 15; uuid: 36; enum: its longest value; interval: 56, PostgreSQL's
  ISO 8601 text; json: unbounded only).
  For bytes, W means a uuid into BINARY / VARBINARY of at least 16 bytes.
- L: fits when the target is unbounded or at least as long as the source; an unbounded source
  into a bounded target is lossy. Into a MariaDB BINARY(n) only a BINARY(n) fits: a shorter value
  is padded with zero bytes (lossy, refused). Lengths are characters (VARCHAR/CHAR) or bytes (VARBINARY).
  MariaDB TINYTEXT, TEXT and MEDIUMTEXT hold 255 / 65,535 / 16,777,215 bytes (`octets`): a source whose
  longest value may take more bytes in the target's character set is lossy (a warning, strict mode
  refuses it); LONGTEXT counts as unbounded. Into a CHAR(n) (`padded`) only a CHAR fits: it is read
  back without trailing spaces (lossy, refused). A MariaDB target character set narrower than the
  source's (`charset`: latin1, utf8mb3...) is lossy (a warning: strict mode refuses the character).
- S: an enum into an enum fits when every source value is a target value.
- F: fits unless the target keeps fewer fractional-second digits (PostgreSQL default 6, MariaDB
  default 0: DATETIME(6) is needed for microseconds); a MariaDB TIME (-838:59:59..838:59:59) into a
  PostgreSQL time (a time of day) is lossy (a warning: such values are row errors); a PostgreSQL timetz
  into a MariaDB TIME or an interval is an error (the offset has no place). T: a time zone on
  either side is fine
  (values are UTC; timestamptz into a naive DATETIME is stored as UTC); a MariaDB TIMESTAMP
  (1970..2038) target is lossy for a date or any other datetime source.
- U: bytes into a uuid fit from BINARY(16) only. A MariaDB UUID (bits 128, 16 bytes on the stream) into
  text is lossy and refused, as an INET6 is.
- Beyond the letters: a MariaDB TINYINT(1) bool (bits 8) into a PostgreSQL boolean is lossy (a warning:
  2 is a row error) unless a CHECK bounds it to 0..1; MariaDB JSON into a jsonb is lossy (a warning: a
  duplicate key is a row error, jsonb keeps the last where MariaDB reads the first).
- CHECK domains: a CHECK that restricts one column to a list (`c IN (...)`, `c = v`) or an integer
  range (`BETWEEN`, `>=`/`<=`/`>`/`<`), on the column, the table or a PostgreSQL domain, is read
  into the ColumnInfo. A text column with a list is treated as an enum (S, value maps, gates); a
  text target with a list accepts only an enum / listed source within it (otherwise lossy); an
  integer range replaces the type's range in R, R', D and W, on either side.
- I: a MariaDB TIME into a PostgreSQL interval fits. V: an interval into a TIME is converted when it
  has no years or months and lies within -838:59:59.999999..838:59:59.999999, else a row error
  (lossy, a warning); into a TIME with fewer than 6 fractional digits it is rounded (lossy, refused).
  Text (or an enum) into an interval is lossy and refused: PostgreSQL rounds and normalises what it
  reads without a word (W covers the other way: an interval into text is its exact ISO 8601 text).
- N: a MariaDB INET6 / INET4 (16 / 4 bytes on the stream) into a PostgreSQL inet or cidr fits
  (converted to the address); a PostgreSQL inet into a MariaDB INET6 / INET4 is lossy (a netmask
  or an address of the other family is refused by the server); an INET6 into bytes fits when they
  hold 16 bytes; bytes into an inet are lossy (only 4 or 16 bytes are an address; a row error).
  Into text (W) a PostgreSQL inet needs 43 characters; a MariaDB INET6 is bytes on the stream: lossy.
- A: a PostgreSQL array of integers, numerics, booleans, text or uuids into a MariaDB JSON column
  fits (a JSON array, nested for more dimensions, NULL as null); of floats it is lossy (NaN and
  infinity have no JSON form: a row error); of anything else an error. Array into array: same
  element kind. Into text (W): the array's PostgreSQL text, unbounded.
- MariaDB `TINYINT(1)` (what `BOOLEAN` creates there) is a bool; a MariaDB JSON column (a LONGTEXT
  with a `json_valid` check) is json; YEAR an integer of 0..2155. Other types (SET, BIT, money, ...) are "other": casts
  from or to them are not checked, a warning counted in `check`'s summary. But PostgreSQL money into anything but
  text is an error (`money`): it travels as its lc_monetary text ('$12.34').
"""
from __future__ import annotations

import unicodedata
from dataclasses import replace

from replicator.mapping.check.columns import ColumnInfo, bytes_per_char

# ---------------------------------------------------------------- casts

FIT, LOSSY, ERROR, UNKNOWN = "fit", "lossy", "error", "unknown"

# The cast table (module docstring: the rules behind the letters). Rows: source kind; columns: target kind.
TARGETS = ("int", "decimal", "float", "text", "enum", "bool", "date", "datetime", "time", "interval", "json",
           "bytes", "uuid", "inet", "array")
_ROWS = """
int       R     D     M     W     error lossy error error error error error error error error error
decimal   R'    D     P     W     error lossy error error error error error error error error error
float     lossy lossy B     W     error lossy error error error error error error error error error
text      lossy lossy lossy L     lossy lossy lossy lossy lossy lossy lossy lossy lossy lossy lossy
enum      lossy lossy lossy W     S     lossy lossy lossy lossy lossy lossy lossy lossy lossy lossy
bool      fit   D     fit   W     error fit   error error error error error error error error error
date      error error error W     error error fit   T     error error error error error error error
datetime  error error error W     error error lossy F,T   lossy error error error error error error
time      error error error W     error error error error F     I     error error error error error
interval  error error error W     error error error error V     fit   error error error error error
json      error error error W     error error error error error error fit   error error error error
bytes     error error error lossy error error error error error error lossy L     U     N     error
uuid      error error error W     error error error error error error error W     fit   error error
inet      error error error W     error error error error error error error N     error N     error
array     error error error W     error error error error error error A     error error error A
"""
TABLE: dict[str, dict[str, str]] = {
    row.split()[0]: dict(zip(TARGETS, row.split()[1:])) for row in _ROWS.strip().splitlines()}


def _loud(s: "ColumnInfo", t: "ColumnInfo") -> bool:
    """A lossy cast the target refuses value by value (strict SQL mode, PostgreSQL): longer text,
    an integer out of range, a value outside a CHECK or enum domain, text that does not parse.
    Silent ones (a smaller decimal scale or fractional-second precision, a float rounded into a
    decimal, a datetime cut to a date) stay refused unless the field says `lossy: allow`."""
    if s.kind == "float" or t.kind == "float" and s.kind != "text":
        return False
    if t.kind == "decimal" and s.kind != "text":
        # more integer digits than the target holds: both servers refuse the value (out of range);
        # more decimal places: rounded without a word
        return s.kind != "decimal" or not _fewer_places(s, t)
    if s.kind == "interval" and t.kind == "time" and (t.precision or 0) < 6:
        return False  # fractional seconds rounded
    if s.kind in ("text", "enum") and t.kind == "interval":
        return False  # PostgreSQL reads '0.0000005 seconds' as 0, '1 day' and 'P1D' as one value, silently
    if s.kind == "inet" and t.kind == "inet":
        return False  # an IPv4 address or a netmask from PostgreSQL into an INET6
    if s.kind in ("uuid", "inet") and s.bits and t.kind == "text":
        return False  # 16 bytes that happen to be UTF-8 would be stored as text, without a word
    if t.kind == "text" and t.padded and s.kind == "text" and not s.padded:
        return False  # a CHAR(n) drops trailing spaces without a word
    if s.kind == "bytes" and t.kind == "bytes" and t.precision is not None and s.precision != t.precision:
        return False  # a BINARY(n) pads a shorter value with zero bytes, without a word
    if t.kind == "date" and s.kind == "datetime":
        return False
    if t.kind == "int" and s.kind == "decimal" and (s.scale or 0) > 0:
        return False  # both servers round 1.5 into an integer column without complaint
    if t.kind in ("datetime", "time") and s.kind == t.kind and (t.precision or 0) < (s.precision or 0):
        return False  # fractional seconds rounded; a TIMESTAMP's 1970..2038 range is checked by the server
    return True


_BMP_CHARSETS = frozenset({"utf8mb3", "utf8", "ucs2"})  # every character but those past U+FFFF (emoji)


def _narrower_charset(s: ColumnInfo, t: ColumnInfo) -> str | None:
    """Why a text target's MariaDB character set may not hold a character of the source (strict mode refuses
    the row: a warning), or None. Numbers, dates, uuids and addresses render in ASCII."""
    if t.charset is None or t.charset == s.charset or s.charset == "ascii":
        return None
    if s.kind == "enum":
        if all(v.isascii() for v in s.enums):
            return None
    elif s.kind not in ("text", "json", "array"):
        return None
    if t.charset in _BMP_CHARSETS and s.charset is not None and (
            s.charset in _BMP_CHARSETS or bytes_per_char(s.charset) == 1):
        return None  # a single-byte set or the BMP into the BMP
    return (f"{t.describe()} is in character set {t.charset}: a character it has not (emoji, other scripts) is "
            f"refused; utf8mb4 holds them all")


def _garbled_members(s: ColumnInfo) -> str | None:
    """Why a MariaDB ENUM / SET source cannot arrive as it is, or None: the binlog reader (mysql-replication)
    reads the member names in the table map as UTF-8, so in another character set a member that is not
    ASCII comes out as '' (a latin1 ENUM('é') value arrived as '', a SET('é','ü') one as ',')."""
    if s.kind not in ("enum", "other") or s.charset is None or s.charset in _BMP_CHARSETS:
        return None
    bad = [v for v in s.enums if not v.isascii()]
    if not bad:
        return None
    return (f"{s.describe()} is in character set {s.charset}: the binlog reader reads member names as UTF-8, so "
            f"{', '.join(map(repr, bad[:3]))} would arrive as ''; convert the column to utf8mb4 (ALTER TABLE ... "
            f"MODIFY ... CHARACTER SET utf8mb4)")


def folded_keys(s: ColumnInfo, t: ColumnInfo) -> str | None:
    """Why key values of `s` that differ may find one row of the MariaDB key column `t`, or None: its collation
    ignores letter case and accents (`_ci`, `_ai`) or trailing spaces (every PAD SPACE collation, `_bin` too;
    only `_nopad_bin` compares exactly). An upsert of the second key then overwrites the first's row."""
    if t.collation is None or t.collation.endswith("_nopad_bin") or s.kind not in ("text", "enum"):
        return None
    if s.collation == t.collation:
        return None  # the source compares its keys the same way: it cannot hold two that are one here
    values = s.enums if s.kind == "enum" or s.enums else None
    if values is not None and len({_folded(v, t.collation) for v in values}) == len(values):
        return None  # the values it may hold stay apart
    how = "only in trailing spaces" if t.collation.endswith("_bin") else \
        "only in letter case, accents or trailing spaces"
    return (f"key values that differ {how} are one row under {t.collation}: the later one overwrites the "
            f"earlier's row")


def _folded(value: str, collation: str) -> str:
    """A value as a PAD SPACE collation compares it (a `_bin` one only drops trailing spaces; others also fold
    letter case and accents, approximated by Unicode case folding without combining marks)."""
    value = value.rstrip(" ")
    if collation.endswith("_bin"):
        return value
    return "".join(c for c in unicodedata.normalize("NFKD", value.casefold()) if not unicodedata.combining(c))


def money(c: ColumnInfo) -> bool:
    """A PostgreSQL money column: pgoutput and psycopg2 give its value as text in the server's lc_monetary
    (currency symbol, thousands separators, the locale's decimal mark), which cannot be read back into a
    number for every locale, so it is refused into anything but text (a warning there: not checked)."""
    return c.kind == "other" and c.type_name.upper() == "MONEY"


def _jsonb(c: ColumnInfo) -> bool:
    return c.type_name.upper().startswith("JSONB")


def _int_range(c: ColumnInfo) -> tuple[int, int]:
    if c.bounds is not None:
        return c.bounds
    bits = c.bits or 64
    return (0, (1 << bits) - 1) if c.unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _ranged(c: ColumnInfo) -> str:
    """An integer type with its range (a CHECK already shows its own)."""
    lo, hi = _int_range(c)
    return c.describe() if c.bounds is not None else f"{c.describe()} ({lo}..{hi})"


# the longest text of a PostgreSQL interval as replicator reads it (every session sets intervalstyle
# iso_8601): 'P-178956969Y-11M-2147483648DT-2562047787H-59M-59.999999S', each field at the end of its
# range (months and days int32, the time int64 microseconds). tests/integration/test_type_contract.py
# has PostgreSQL print it.
INTERVAL_TEXT_WIDTH = 56


def _text_width(c: ColumnInfo) -> int | None:
    """The longest text a value of `c` renders as; None: unbounded."""
    k = c.kind
    if k == "int":
        lo, hi = _int_range(c)
        return max(len(str(lo)), len(str(hi)))
    if k == "decimal":
        return None if c.precision is None else c.precision + 2
    if k == "float":
        return 24
    if k == "bool":
        return 5
    if k == "date":
        return 10
    if k == "datetime":
        return 32 if c.timezone else 26
    if k == "time":
        return 15
    if k == "uuid":
        return 36
    if k == "inet":
        return 43  # an IPv6 address with a netmask
    if k == "interval":
        return INTERVAL_TEXT_WIDTH
    if k == "array":
        return None
    if k == "enum":
        return max((len(v) for v in c.enums), default=0)
    return c.length  # text, bytes; json: None


def _fewer_places(s: ColumnInfo, t: ColumnInfo) -> bool:
    """A decimal target keeps fewer decimal places than the decimal source (rounded)."""
    return t.precision is not None and (s.precision is None or (s.scale or 0) > (t.scale or 0))


def _float_places(s: ColumnInfo, t: ColumnInfo) -> str | None:
    """A MariaDB FLOAT(M,D) / DOUBLE(M,D) target rounds every value to D decimal places without a word (and
    refuses one of more than M-D integer digits): lossy for a source with more places, or any float."""
    assert t.scale is not None
    if s.kind == "float" or (s.kind == "decimal" and (s.precision is None or (s.scale or 0) > t.scale)):
        return f"{t.describe()} rounds every value to {t.scale} decimal places"
    return None


def _int_digits(c: ColumnInfo) -> int | None:
    """Integer digits a decimal holds; None: unbounded."""
    if c.precision is None:
        return None
    return c.precision - (c.scale or 0)


def _cast(s: ColumnInfo, t: ColumnInfo) -> tuple[str, str]:
    """(verdict, why) for values of column type `s` written into column type `t`."""
    garbled = _garbled_members(s)
    if garbled:
        return ERROR, garbled
    if s.kind == "text" and s.enums:  # a CHECK (column IN (...)): as an enum
        s = replace(s, kind="enum")
    sk, tk = s.kind, t.kind
    if money(s) and tk != "text" and not money(t):
        return ERROR, (f"PostgreSQL money travels as its lc_monetary text ('$1,234.56', '1.234,56 €'), which is no "
                       f"{tk}: every value would be a row error")
    if sk == "other" or tk == "other":
        return UNKNOWN, "a type this check does not know"
    if tk == "float" and t.scale is not None and sk in ("int", "decimal", "float", "bool"):
        places = _float_places(s, t)
        if places:  # silent: checked first, it decides whether lossy: allow is needed
            return LOSSY, places
    if tk == "text" and t.enums:
        if sk != "enum":
            return LOSSY, f"the target's CHECK allows only {', '.join(map(repr, t.enums))}"
        missing = [v for v in s.enums if v not in t.enums]
        if missing:
            return LOSSY, f"values {', '.join(map(repr, missing))} are not allowed by the target's CHECK"
    if tk == "text":
        if sk == "bytes":
            return LOSSY, "bytes that are not valid UTF-8 text cannot be stored as text"
        if sk == "inet" and s.bits:
            return LOSSY, f"{s.describe()} travels as {s.bits // 8} bytes, which are not text; map it to an inet column"
        if sk == "uuid" and s.bits:
            return LOSSY, f"{s.describe()} travels as its 16 bytes, which are not text; map it to a uuid column"
        if t.padded and sk == "text" and not s.padded:  # silent: checked first
            return LOSSY, (f"{t.describe()} drops trailing spaces ('a ' is read back as 'a'); map it to a VARCHAR, "
                           f"or add `lossy: allow` if no value ends with a space")
        charset = _narrower_charset(s, t)
        if charset:
            return LOSSY, charset
        if sk == "json" and t.length is not None:
            return LOSSY, (f"JSON documents are unbounded, the target holds {t.length} characters; the "
                           f"document's text arrives whole (for one member of an object, such as Odoo's "
                           f"translated names {{\"en_US\": ...}}: `transform: [{{json_get: en_US}}]`)")
        need = _text_width(s)
        if t.octets is not None:  # a MariaDB TINYTEXT / TEXT / MEDIUMTEXT: its limit counts bytes
            if need is None:
                return LOSSY, f"unbounded values into {t.describe()}, which holds {t.octets} bytes"
            if need * bytes_per_char(t.charset) > t.octets:
                return LOSSY, (f"up to {need} characters ({need * bytes_per_char(t.charset)} bytes) into "
                               f"{t.describe()}, which holds {t.octets} bytes")
        if t.length is None:
            return FIT, ""
        if need is None:
            return LOSSY, f"unbounded values into at most {t.length} characters"
        if need > t.length:
            what = "text" if sk == "text" else f"{sk} values"
            return LOSSY, f"{what} of up to {need} characters into at most {t.length}"
        return FIT, ""
    if sk in ("text", "enum"):
        if sk == "enum" and tk == "enum":
            missing = [v for v in s.enums if v not in t.enums]
            if missing:
                return LOSSY, f"values {', '.join(map(repr, missing))} are not values of the target enum"
            return FIT, ""
        if tk == "bytes":
            return LOSSY, "text into bytes: lengths count bytes, and PostgreSQL reads backslashes as bytea escapes"
        if tk == "interval":
            return LOSSY, ("text into an interval is not exact: PostgreSQL reads many spellings of one interval "
                           "('1 day', 'P1D', '24:00:00' is another), rounds fractional seconds past 6 digits and "
                           "turns fractions of months into days ('0.3333333 months' -> 'P9DT23H59M59.9136S'), "
                           "without a word, and writes the value back as ISO 8601 ('P1D'), not as the text was. "
                           "Map the interval one way (PostgreSQL -> text, exact), or add `lossy: allow` if the "
                           "text only ever holds what an interval column wrote (its ISO 8601 text)")
        return LOSSY, f"text into {tk}: a text that is not a valid {tk} is a row error"
    if sk == "int":
        if tk == "int":
            lo, hi = _int_range(s)
            tlo, thi = _int_range(t)
            if lo < tlo or hi > thi:
                why = "negative values do not fit an UNSIGNED column" if lo < 0 <= tlo and hi <= thi else \
                    f"{_ranged(s)} into {_ranged(t)} narrows"
                return LOSSY, why
            return FIT, ""
        if tk == "decimal":
            if t.unsigned and not s.unsigned:
                return LOSSY, "negative values do not fit an UNSIGNED column"
            lo, hi = _int_range(s)
            need = max(len(str(abs(lo))), len(str(hi)))
            have = _int_digits(t)
            if have is not None and have < need:
                return LOSSY, f"integers of up to {need} digits into {have} integer digits"
            return FIT, ""
        if tk == "float":
            mantissa = 24 if t.bits == 32 else 53
            if (s.bits or 64) - (0 if s.unsigned else 1) > mantissa:
                return LOSSY, f"{s.describe()} into {t.describe()} rounds integers beyond 2^{mantissa}"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"an integer cannot become {_a(tk)}"
    if sk == "decimal":
        if tk == "int":
            if s.scale:
                return LOSSY, f"{s.describe()} has {s.scale} decimal places, an integer none"
            tlo, thi = _int_range(t)
            digits = _int_digits(s)
            if digits is None or 10 ** digits - 1 > thi or (not s.unsigned and -(10 ** digits - 1) < tlo):
                return LOSSY, f"{s.describe()} into {_ranged(t)} narrows"
            return FIT, ""
        if tk == "decimal":
            sd, td = _int_digits(s), _int_digits(t)
            narrower = td is not None and (sd is None or sd > td)
            if _fewer_places(s, t):  # silent: checked first, it decides whether lossy: allow is needed
                also = " and fewer integer digits" if narrower else ""
                return LOSSY, f"{s.describe()} into {t.describe()}: fewer decimal places (rounded){also}"
            if t.unsigned and not s.unsigned:
                return LOSSY, "negative values do not fit an UNSIGNED column"
            if narrower:
                return LOSSY, f"{s.describe()} into {t.describe()}: fewer integer digits"
            return FIT, ""
        if tk == "float":
            digits = 6 if t.bits == 32 else 15
            if s.precision is None or s.precision > digits:
                return LOSSY, f"{s.describe()} into {t.describe()} keeps only {digits} significant digits"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"a number cannot become {_a(tk)}"
    if sk == "float":
        if tk in ("int", "decimal"):
            return LOSSY, f"a floating-point number into {t.describe()} is rounded"
        if tk == "float":
            if (s.bits or 64) > (t.bits or 64):
                return LOSSY, f"{s.describe()} into {t.describe()} loses precision"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"a number cannot become {_a(tk)}"
    if sk == "bool":
        if tk == "bool" and s.bits and not t.bits and (s.bounds is None or s.bounds[0] < 0 or s.bounds[1] > 1):
            return LOSSY, (f"{s.describe()} is a TINYINT (-128..127): a value other than 0 and 1 is a row error; "
                           f"a CHECK (column IN (0, 1)) on it makes the pair fit")
        if tk in ("bool", "int", "float"):
            return FIT, ""
        if tk == "decimal":
            have = _int_digits(t)
            return (FIT, "") if have is None or have >= 1 else (LOSSY, f"1 does not fit {t.describe()}")
        return ERROR, f"a boolean cannot become {_a(tk)}"
    if sk == "date":
        if tk in ("date", "datetime"):
            if tk == "datetime" and t.bits == 32:
                return LOSSY, f"{t.describe()} holds 1970..2038 only"
            return FIT, ""
        return ERROR, f"a date cannot become {_a(tk)}"
    if sk == "datetime":
        if tk == "datetime":
            range_ = " (and holds 1970..2038 only)" if t.bits == 32 and s.bits != 32 else ""
            if (t.precision or 0) < (s.precision or 0):  # silent: named first, it is why lossy: allow is needed
                return LOSSY, (f"{t.describe()} keeps {t.precision or 0} fractional-second digits, "
                               f"{s.describe()} {s.precision}{range_}")
            if range_:
                return LOSSY, f"{t.describe()} holds 1970..2038 only"
            return FIT, ""
        if tk == "date":
            return LOSSY, "a datetime into a date loses the time of day"
        if tk == "time":
            return LOSSY, "a datetime into a time loses the date"
        return ERROR, f"a datetime cannot become {_a(tk)}"
    if sk == "time":
        if tk == "interval" and not s.timezone:
            return FIT, ""
        if s.timezone and not t.timezone:
            return ERROR, (f"{s.describe()} carries a UTC offset, which {t.describe()} has no place for (every value "
                           f"would be refused); map it to a text column, or convert with `transform:`")
        if tk == "time":
            if (t.precision or 0) < (s.precision or 0):
                return LOSSY, (f"{t.describe()} keeps {t.precision or 0} fractional-second digits, "
                               f"{s.describe()} {s.precision}")
            if s.bits and not t.bits:
                return LOSSY, (f"{s.describe()} holds -838:59:59..838:59:59, {t.describe()} only a time of day "
                               f"(00:00:00..24:00:00); map it to an interval")
            return FIT, ""
        return ERROR, f"a time cannot become {_a(tk)}"
    if sk == "json":
        if tk == "json":
            if _jsonb(t) and not _jsonb(s):
                return LOSSY, (f"{t.describe()} keeps one of duplicate object keys where MariaDB reads the first: "
                               f"a document with a duplicate key is a row error (a json column keeps the text)")
            if s.type_name.upper() == "JSON" and not t.type_name.upper().startswith("JSON"):
                return LOSSY, ("PostgreSQL's json keeps the text it was given, a lone surrogate escape ('\\ud800') "
                               "too, which MariaDB's JSON (CHECK json_valid) refuses: a row error (jsonb refuses it "
                               "at its own input)")
            return FIT, ""
        return ERROR, f"JSON cannot become {_a(tk)}"
    if sk == "bytes":
        if tk == "bytes":
            if t.precision is not None and s.precision != t.precision:  # silent: checked first
                return LOSSY, f"{t.describe()} pads shorter values with zero bytes"
            if t.length is not None and (s.length is None or s.length > t.length):
                what = "unbounded bytes" if s.length is None else f"bytes of up to {s.length}"
                return LOSSY, f"{what} into at most {t.length} bytes"
            return FIT, ""
        if tk == "json":
            return LOSSY, "bytes that are not a UTF-8 JSON document are a row error"
        if tk == "uuid":
            if s.precision == 16:  # BINARY(16)
                return FIT, ""
            return LOSSY, "only 16-byte values become a uuid"
        if tk == "inet":
            return LOSSY, "only 4- or 16-byte values are an address"
        return ERROR, f"bytes cannot become {_a(tk)}"
    if sk == "uuid":
        if tk == "uuid":
            if t.bits and not s.bits:
                return LOSSY, ("MariaDB's UUID refuses a uuid whose 7th byte is 80-ff (version digit 8-f) while "
                               "its 9th is 01-80 ('ffffffff-ffff-8fff-7fff-ffffffffffff'), which PostgreSQL's uuid "
                               "holds: a row error")
            return FIT, ""
        if tk == "bytes":
            if t.length is not None and t.length < 16:
                return LOSSY, f"a uuid is 16 bytes, the target holds {t.length}"
            return FIT, ""
        return ERROR, f"a uuid cannot become {_a(tk)}"
    if sk == "interval":
        if tk == "interval":
            return FIT, ""
        if tk == "time":
            if (t.precision or 0) < 6:
                return LOSSY, f"{t.describe()} keeps {t.precision or 0} fractional-second digits, an interval 6"
            return LOSSY, ("an interval with years or months, or beyond -838:59:59.999999..838:59:59.999999, "
                           "does not fit a TIME")
        return ERROR, f"an interval cannot become {_a(tk)}"
    if sk == "inet":
        if tk == "inet":
            if s.bits and not t.bits:  # MariaDB INET6 / INET4 into PostgreSQL inet / cidr: converted
                return FIT, ""
            if s.bits != t.bits:
                return LOSSY, (f"{s.describe()} into {t.describe()}: a netmask or an address of the other family "
                               f"does not arrive as it was")
            return FIT, ""
        if tk == "bytes" and s.bits:
            need = s.bits // 8
            if t.length is not None and t.length < need:
                return LOSSY, f"{s.describe()} is {need} bytes, the target holds {t.length}"
            return FIT, ""
        return ERROR, f"an address cannot become {_a(tk)}"
    if sk == "array":
        if tk == "json":
            if s.item in ("int", "decimal", "bool", "text", "uuid"):
                return FIT, ""
            if s.item == "float":
                return LOSSY, "NaN and infinity elements have no JSON form (a row error)"
            return ERROR, f"arrays of {s.item or 'this type'} have no JSON form here; convert with `transform:`"
        if tk == "array":
            if s.item == t.item:
                return FIT, ""
            return LOSSY, f"arrays of {s.item} into arrays of {t.item}"
        return ERROR, f"an array cannot become {_a(tk)}"
    return UNKNOWN, "a type this check does not know"


def special_values(s: ColumnInfo, t: ColumnInfo, source_dbms: str, target_dbms: str) -> str | None:
    """Why a cast that fits by the table still has valid source values the target cannot hold, or None:
    PostgreSQL's NaN / ±Infinity numbers and infinite, BC or 5-digit-year dates have no MariaDB form.
    Such a value is a row error naming table, key and column; `check` warns (rule X)."""
    if source_dbms != "postgresql" or target_dbms != "mariadb":
        return None
    if s.kind in ("float", "decimal") and t.kind in ("float", "decimal", "int"):
        what = "NaN and ±Infinity" if s.kind == "float" or s.precision is None else "NaN"
        return f"{what} have no MariaDB form (such a value is a row error)"
    if s.kind in ("date", "datetime") and t.kind in ("date", "datetime"):
        return "infinity, BC dates and years past 9999 have no MariaDB form (such a value is a row error)"
    return None


def _a(kind: str) -> str:
    return {"int": "an integer", "enum": "an enum value", "json": "JSON", "bytes": "bytes", "uuid": "a uuid",
            "date": "a date", "datetime": "a datetime", "time": "a time", "bool": "a boolean",
            "decimal": "a decimal", "float": "a float", "text": "text", "interval": "an interval",
            "inet": "an address", "array": "an array"}.get(kind, kind)
