"""The write of a checked update run on a real target: before (branch detect3), the locked read and the
upsert of every field the flow carries; now, the read and an UPDATE of the key and the changed fields
(`Applier._update_rows`, `Run.exists`). The bench's table (bench/run.py: 7 columns, all NOT NULL, 10,000
rows; qty, amount, changed_at and seq change), runs of SIZE rows, the two alternating REPS times in one
process against one server. Prints wall and client (this thread's) CPU microseconds per row, median and min.

    PYTHONPATH=. python bench/checked_write.py mariadb|postgresql SIZE REPS
"""
import pathlib
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from replicator.appliers.base import Run
from replicator.changes import Op, TableRef, TargetChange
from replicator.config import Account, Connection, Secret
from replicator.testing.devservers import MariaDBServer, PostgresServer

kind, size, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = pathlib.Path(tempfile.mkdtemp(prefix="detect3-w-"))
srv = (MariaDBServer if kind == "mariadb" else PostgresServer)(d / "db").start()
name = "erpdb" if kind == "mariadb" else "crmdb"
db = srv.create_database(name)
acc = Account(db.user, Secret(db.password))
if kind == "mariadb":
    from replicator.appliers.mariadb import MariaDBApplier as A
    conn = Connection("erp", "mariadb", db.host, db.port, name, acc, acc, server_id=4244)
    ddl = ("CREATE TABLE bench_item (id BIGINT PRIMARY KEY, qty INT NOT NULL, name VARCHAR(100) NOT NULL, "
           "amount DECIMAL(12,2) NOT NULL, changed_at DATETIME(6) NOT NULL, note TEXT NOT NULL, seq BIGINT NOT NULL)")
    t = TableRef(name, "bench_item")
else:
    from replicator.appliers.postgres import PostgresApplier as A
    conn = Connection("crm", "postgresql", db.host, db.port, name, acc, acc)
    ddl = ("CREATE TABLE bench_item (id bigint PRIMARY KEY, qty integer NOT NULL, name varchar(100) NOT NULL, "
           "amount numeric(12,2) NOT NULL, changed_at timestamptz NOT NULL, note text NOT NULL, seq bigint NOT NULL)")
    t = TableRef("public", "bench_item")
a = A(conn, "x"); a.connect(); a.execute(ddl, []); a.db.commit(); a.load_types([t])
cols = ("id", "qty", "name", "amount", "changed_at", "note", "seq")
def row(i, k):
    ts = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=k)
    return {"id": i, "qty": k, "name": f"item {i}", "amount": Decimal(k) / 100 + Decimal("0.00"),
            "changed_at": ts if kind != "mariadb" else ts.replace(tzinfo=None), "note": f"note {i} ".ljust(100, "x"), "seq": k}
N = 10000
a._upsert(Run(t, Op.INSERT, ("id",), cols, {}), [TargetChange(t, Op.INSERT, ("id",), (i,), row(i, 0)) for i in range(1, N + 1)])
a.db.commit()
changed = ("id", "qty", "amount", "changed_at", "seq")
def one(narrow, k):
    keys = [(i,) for i in range(1 + (k * size) % N, 1 + (k * size) % N + size)]
    keys = [x for x in keys if x[0] <= N]
    read = [c for c in (changed if narrow else cols) if c != "id"]
    got = a.read_rows(t, ("id",), read, keys)
    rows = []
    for r in got:
        v = dict(zip(read, r[1:])); new = row(r[0], k + 1)
        v.update({c: new[c] for c in changed}); v["id"] = r[0]
        rows.append(TargetChange(t, Op.UPDATE, ("id",), (r[0],), v))
    if narrow:
        a._update_rows(Run(t, Op.UPDATE, ("id",), changed, {}, checked=True, exists=True), rows)
    else:
        a._upsert(Run(t, Op.UPDATE, ("id",), cols, {}, checked=True), rows)
    a.db.commit()
    return len(rows)
res = {False: [], True: []}
for k in range(reps):
    for narrow in (False, True):
        w0, c0 = time.perf_counter(), time.thread_time()
        n = one(narrow, 2 * k + narrow)
        res[narrow].append(((time.perf_counter() - w0) * 1e6 / n, (time.thread_time() - c0) * 1e6 / n))
for narrow in (False, True):
    ws = sorted(x[0] for x in res[narrow]); cs = sorted(x[1] for x in res[narrow])
    print(f"{kind} run of {size}: {'narrowed' if narrow else 'whole   '} wall us/row median {ws[len(ws)//2]:.2f} min {ws[0]:.2f}; client CPU us/row median {cs[len(cs)//2]:.2f} min {cs[0]:.2f}")
a.close()
srv.stop()
shutil.rmtree(d, ignore_errors=True)
