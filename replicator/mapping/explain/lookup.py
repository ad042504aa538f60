"""Read-only database access for `explain`: sessions whose transactions are rolled back, and the
counterpart lookups of one flow through `links.Linker`'s own read paths."""
from __future__ import annotations

from typing import Any, Sequence, TYPE_CHECKING, cast

from replicator.changes import TableRef
from replicator.config import Connection
from replicator.errors import ConfigError, ReplicatorError
from replicator.mapping.explain.render import _given_key
from replicator.mapping.model import Endpoint, Flow, MappingSet
from replicator.mapping.router import Ref

if TYPE_CHECKING:
    from replicator.appliers.mariadb import MariaDBApplier
    from replicator.appliers.postgres import PostgresApplier


class ReadOnlyDb:
    """One connection with a side's apply account. The session is read-only (PostgreSQL
    default_transaction_read_only, MariaDB SET SESSION TRANSACTION READ ONLY) and every transaction is
    rolled back; the write methods of an applier are not offered at all."""

    def __init__(self, conn: Connection):
        from replicator.appliers import make_applier

        self.conn = conn
        # a concrete applier: its driver connection (`db`) and `_run` are used below
        self.applier = cast("PostgresApplier | MariaDBApplier", make_applier(conn, "explain", ""))
        self.applier.connect()
        try:
            db = self.applier.db
            db.rollback()
            if conn.kind == "postgresql":
                db.set_session(readonly=True)
            else:
                with db.cursor() as cur:
                    cur.execute("SET SESSION TRANSACTION READ ONLY")
        except Exception:
            self.close()
            raise

    # what links.Linker reads through
    def quote_table(self, table: TableRef) -> str:
        return self.applier.quote_table(table)

    def quote_col(self, column: str) -> str:
        return self.applier.quote_col(column)

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.applier.query(sql, params)

    def find_keys(self, table: TableRef, key_cols: Sequence[str], where: dict[str, Any],
                  limit: int = 2, slice_: tuple[tuple[str, Any], ...] = ()) -> list[tuple[Any, ...]]:
        return self.applier.find_keys(table, key_cols, where, limit, slice_)

    def load_types(self, tables: Sequence[TableRef]) -> None:
        self.applier.load_types(tables)

    def read_row(self, endpoint: Endpoint, key: Sequence[Any]) -> dict[str, Any] | None:
        cond = " AND ".join(f"{self.quote_col(c)} = %s" for c in endpoint.key)
        sql = f"SELECT * FROM {self.quote_table(endpoint.table)} WHERE {cond} LIMIT 2"

        def q() -> tuple[list[str], list[tuple[Any, ...]]]:
            with self.applier.db.cursor() as cur:
                cur.execute(sql, list(key))
                return [d[0] for d in cur.description], list(cur.fetchall())
        try:
            names, rows = self.applier._run(q)
        except ReplicatorError:
            raise
        except Exception as exc:
            self.rollback()
            if self.applier.is_row_error(exc):
                raise ConfigError(f"cannot read {endpoint.side} {endpoint.table} where "
                                  f"{_given_key(endpoint.key, key)}: {self.applier.describe_error(exc)}") from None
            raise
        self.rollback()
        if len(rows) > 1:
            raise ConfigError(f"{_given_key(endpoint.key, key)} matches more than one row of {endpoint.side} "
                              f"{endpoint.table}: the mapping's key must be the table's primary key")
        return dict(zip(names, rows[0])) if rows else None

    def execute(self, *_args: Any, **_kw: Any) -> int:
        raise RuntimeError("replicator explain never writes")

    def rollback(self) -> None:
        self.applier.rollback()

    def close(self) -> None:
        self.applier.rollback()
        self.applier.close()


class DbLookup:
    """Counterparts, crosswalk pairs, natural keys and references of one flow, read-only, through
    links.Linker's read paths (its write paths are never called; the connections could not write anyway)."""

    def __init__(self, mset: MappingSet, flow: Flow, target: ReadOnlyDb, source: ReadOnlyDb):
        from replicator.mapping.links import CROSSWALK, Linker

        self.flow = flow
        self.target = target
        self.source = source
        self._source_crosswalk = source.quote_table(TableRef(source.conn.state_schema, CROSSWALK))
        self.linker = Linker(target, mset, flow.stream, flow.source.side, flow.target.side,  # type: ignore[arg-type]
                             target.conn.state_schema, self._source_query)
        self._scope: Any = None

    def outside(self, ref: Ref, source_key: tuple[Any, ...] | None) -> str | None:
        """The mapping whose slice or filter leaves out the row's own record (`ref`), read from the source as the
        stream reads it (mapping/scope.py); None when the change would park."""
        from replicator.mapping.scope import Scope, record_ref

        if source_key is None or not record_ref(self.linker.mset, self.flow, self.flow.source.side, ref.mapping,
                                                ref.value, source_key):
            return None
        if self._scope is None:
            self._scope = Scope(self.linker.mset, self.flow.source.side, self._source_query,
                                getattr(self.source.conn, "kind", None))
        outside: str | None = self._scope.outside(ref.mapping, ref.value)
        return outside

    def pointed_outside(self, ref: Ref) -> str | None:
        """The mapping whose slice or filter leaves out the record a row only points at (an order line's unit in
        Dolibarr's `llx_c_units`, filtered out of `units`): the row parks until the record enters it."""
        from replicator.mapping.scope import Scope

        if self._scope is None:
            self._scope = Scope(self.linker.mset, self.flow.source.side, self._source_query,
                                getattr(self.source.conn, "kind", None))
        outside: str | None = self._scope.outside(ref.mapping, ref.value)
        return outside

    def _source_query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        rows = self.source.query(sql.replace("{crosswalk}", self._source_crosswalk), params)
        self.source.rollback()
        return rows

    def exists(self, endpoint: Endpoint, key: tuple[Any, ...]) -> bool:
        return bool(self.target.find_keys(endpoint.table, endpoint.key, dict(zip(endpoint.key, key)), limit=1))

    def crosswalk(self, mapping: str, skey: tuple[Any, ...]) -> tuple[tuple[Any, ...], str] | None:
        """(target key, where the pair was found), like Linker._crosswalk but saying which database."""
        src, dst = self.flow.source.side, self.flow.target.side
        pair = self.linker.lookup.pair(mapping, skey)
        if pair is None:
            return None
        if pair.in_source:
            return pair.target_key, f"{src}'s crosswalk {self.source.conn.state_schema}.crosswalk"
        return pair.target_key, f"{dst}'s crosswalk {self.target.conn.state_schema}.crosswalk"

    def natural(self, endpoint: Endpoint, cols: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.target.find_keys(endpoint.table, endpoint.key, cols)

    def resolve(self, ref: Ref) -> Any:
        return self.linker._resolve(ref)

    def parked(self, mapping: str, key: str) -> int:
        rows = self.target.query(f"SELECT COUNT(*) FROM {self.linker.parked} WHERE stream = %s AND "
                                 f"waiting_mapping = %s AND waiting_key = %s", [self.flow.stream, mapping, key])
        return int(rows[0][0]) if rows else 0

    def reset(self) -> None:
        self.target.rollback()
        self.source.rollback()


# (config, mapping name, the row's keys) -> the row's recent conflicts as JSON-able dicts, newest first;
# None when no database has a conflicts table. Passed in by the CLI (replicator.admin.conflicts): the
