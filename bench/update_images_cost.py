#!/usr/bin/env python3
"""Micro-benchmark: the compiled binlog decoder on one UPDATE row of bench/run.py's table (bench_item: id bigint,
qty int, name varchar(100), amount decimal(12,2), changed_at datetime(6), note text of 100 bytes, seq bigint),
with the after image sharing the before image's unchanged values (rowcompile's share_unchanged, the default)
and without (both images decoded in full). No server: the rows body is built here as MariaDB writes it.

Scenarios: bench/run.py's burst update (qty, amount, changed_at, seq changed; id, name, note not), one
column changed (seq), and a no-op update (every column the same). Prints CPU microseconds per row (best of
--repeat), and the bytes tracemalloc counts for 1,000 decoded update pairs (what a queue of them keeps alive,
as the commit clock's does for a two-way table).

    python bench/update_images_cost.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import struct
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymysqlreplication.column import Column  # noqa: E402
from pymysqlreplication.constants import FIELD_TYPE as T  # noqa: E402

from replicator.sources.rowcompile import compile_table  # noqa: E402


def col(type_: int, name: str, **meta: Any) -> Column:
    base = dict(type=type_, name=name, unsigned=False, is_primary=False, charset_id=None, character_set_name=None,
                collation_name=None, enum_values=None, set_values=None, visibility=False)
    base.update(meta)
    return Column(**base)


COLUMNS = [col(T.LONGLONG, "id"), col(T.LONG, "qty"),
           col(T.VARCHAR, "name", max_length=400, character_set_name="utf8mb4"),
           col(T.NEWDECIMAL, "amount", precision=12, decimals=2), col(T.DATETIME2, "changed_at", fsp=6),
           col(T.BLOB, "note", length_size=2, character_set_name="utf8mb4"), col(T.LONGLONG, "seq")]


def image(qty: int, cents: int, us: int, seq: int) -> bytes:
    name, note = b"item 1234", b"note 1234 ".ljust(100, b"x")
    whole, frac = divmod(cents, 100)
    hi, lo = divmod(whole, 10 ** 9)  # DECIMAL(12,2): 1 leading digit (1 byte), 9 digits (4 bytes), 2 (1 byte)
    dec = bytearray(struct.pack(">b", hi) + struct.pack(">i", lo) + struct.pack(">b", frac))
    dec[0] ^= 0x80  # the sign bit, set for a non-negative value
    ym = 2026 * 13 + 1
    packed = (1 << 39) | (ym << 22) | (7 << 17) | (10 << 12) | (5 << 6) | 3
    dt = ((packed << 24) | us).to_bytes(8, "big")
    return (b"\x00" + struct.pack("<q", 1234) + struct.pack("<i", qty) + struct.pack("<H", len(name)) + name
            + bytes(dec) + dt + struct.pack("<H", len(note)) + note + struct.pack("<q", seq))


SCENARIOS = {
    "bench/run.py's update (4 of 7 columns changed)": image(6, 1235, 500001, 77),
    "one column changed (seq)": image(5, 1234, 500000, 77),
    "no column changed": image(5, 1234, 500000, 76),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rows", type=int, default=20_000)
    args = p.parse_args()
    before = image(5, 1234, 500000, 76)
    for label, after in SCENARIOS.items():
        body = before + after
        out = []
        for share in (False, True):
            dec = compile_table(COLUMNS, exact_values=True, utc_timestamps=True, share_unchanged=share)
            assert dec is not None
            update = dec.kinds["update"]
            pairs, _, end = update(body)
            assert end == len(body)
            best = float("inf")
            for _ in range(args.repeat):
                started = time.process_time()
                for _ in range(args.rows):
                    update(body)
                best = min(best, time.process_time() - started)
            tracemalloc.start()
            kept = [update(body)[0] for _ in range(1000)]
            size = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            del kept
            out.append((best * 1e6 / args.rows, size / 1000, pairs))
        assert out[0][2] == out[1][2]
        print(f"{label}: full {out[0][0]:.2f} us, {out[0][1]:.0f} B; shared {out[1][0]:.2f} us, "
              f"{out[1][1]:.0f} B a row")


if __name__ == "__main__":
    main()
