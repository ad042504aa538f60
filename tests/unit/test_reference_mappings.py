"""The reference mappings (mappings/*.yaml) load and fit the reference schemas (demo/schema/*.sql).

No servers: the configuration is demo/replicator.yaml (copied next to dummy password files, since
the real ones are written by scripts/demo), and the schemas are read from the CREATE TABLE
statements of the SQL files.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from replicator.config import Config, load
from replicator.mapping.model import MappingSet, load_mappings

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ["01-customer-mining.yaml", "02-customer-master.yaml", "03-erp-driven-by-crm.yaml",
         "04-order-management.yaml", "05-marketing.yaml", "06-customer-satisfaction.yaml"]
TABLE_CONSTRAINTS = {"PRIMARY", "UNIQUE", "KEY", "INDEX", "CONSTRAINT", "FOREIGN", "CHECK", "FULLTEXT", "SPATIAL",
                     "EXCLUDE"}


@dataclass
class Column:
    name: str
    required: bool  # NOT NULL without a default: every insert must give a value


@dataclass
class Table:
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()


def _split_top_level(body: str) -> list[str]:
    """Split a CREATE TABLE body on commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in body:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _body(sql: str, start: int) -> str:
    """The text between the parenthesis opening at `start` and its match."""
    depth, quote = 0, ""
    for i in range(start, len(sql)):
        ch = sql[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return sql[start + 1:i]
    raise AssertionError(f"unbalanced parentheses after offset {start}")


def _ident(text: str) -> str:
    return text.strip().strip('`"')


def parse_schema(path: Path, default_schema: str) -> dict[tuple[str, str], Table]:
    """(schema, table) -> Table for every CREATE TABLE in an SQL file (comments removed)."""
    sql = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    tables: dict[tuple[str, str], Table] = {}
    # a name may be quoted and hold spaces (ERPNext's `tabSales Order`)
    pattern = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:`[^`]+`|\"[^\"]+\"|[\w.])+)\s*\(",
                         re.IGNORECASE)
    for m in pattern.finditer(sql):
        schema, _, name = _ident(m.group(1)).rpartition(".")
        table = Table()
        for part in _split_top_level(_body(sql, m.end() - 1)):
            words = part.split()
            upper = part.upper()
            if words[0].upper() in TABLE_CONSTRAINTS:
                pk = re.match(r"(?:CONSTRAINT\s+\S+\s+)?PRIMARY\s+KEY\s*\(([^)]*)\)", part, re.IGNORECASE)
                if pk:
                    table.primary_key = tuple(_ident(c) for c in pk.group(1).split(","))
                continue
            col = _ident(words[0])
            generated = "AUTO_INCREMENT" in upper or "GENERATED" in upper or "SERIAL" in upper
            required = "NOT NULL" in upper and " DEFAULT " not in f" {upper} " and not generated
            table.columns[col] = Column(col, required)
            if "PRIMARY KEY" in upper:
                table.primary_key = (col,)
        assert table.primary_key, f"{path.name}: table {name} has no primary key"
        tables[(schema or default_schema, name)] = table
    return tables


def written_columns(flow: object) -> set[str]:
    """The target columns a flow writes, as the loader computed them (`plans` since the richer mapping
    language, `pairs` before it)."""
    plans = getattr(flow, "plans", None)
    if plans is not None:
        return {p.target for p in plans}
    return {dst for _src, dst in flow.pairs}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """demo/replicator.yaml, loaded from a copy of the demo layout with dummy password files."""
    base = tmp_path_factory.mktemp("demo-layout")
    (base / "demo").mkdir()
    shutil.copy(ROOT / "demo" / "replicator.yaml", base / "demo" / "replicator.yaml")
    (base / "demo-data").mkdir()
    for name in ("crm.password", "erp.password"):
        (base / "demo-data" / name).write_text("not-a-real-password\n")
    (base / "mappings").symlink_to(ROOT / "mappings", target_is_directory=True)
    return load(base / "demo" / "replicator.yaml")


@pytest.fixture(scope="module")
def mappings(config: Config) -> MappingSet:
    return load_mappings(config)


@pytest.fixture(scope="module")
def schemas(config: Config) -> dict[str, dict[tuple[str, str], Table]]:
    return {
        "crm": parse_schema(ROOT / "demo" / "schema" / "crm.sql", "public"),
        "erp": parse_schema(ROOT / "demo" / "schema" / "erp.sql", config.side("erp").database),
    }


def test_one_file_per_flow() -> None:
    files = sorted(p.name for p in (ROOT / "mappings").iterdir() if p.suffix in (".yaml", ".yml"))
    assert files == FLOWS
    for name in FLOWS:
        first = (ROOT / "mappings" / name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Flow "), f"{name}: the header comment says which flow it is"
        assert "waiting for" not in (ROOT / "mappings" / name).read_text(encoding="utf-8").lower(), \
            f"{name}: the shipped flows use the language as it is"


def test_demo_config_points_at_the_reference_mappings(config: Config) -> None:
    assert [c.name for c in config.connections] == ["crm", "erp"]
    assert config.side("crm").kind == "postgresql" and config.side("erp").kind == "mariadb"
    assert config.mappings_dir.resolve() == (ROOT / "mappings").resolve()


def test_every_file_loads(mappings: MappingSet) -> None:
    names = {m.name for m in mappings.mappings}
    assert names == {"order_margins", "customers", "contacts", "products", "bom_lines", "quotes",
                     "quote_lines", "product_costs", "customer_profitability", "complaints",
                     "service_records"}
    for m in mappings.mappings:
        assert m.flows, f"{m.name} flows nowhere"


def test_tables_columns_and_keys_exist(mappings: MappingSet, schemas: dict) -> None:
    problems = []
    for m in mappings.mappings:
        for side in ("crm", "erp"):
            e = m.endpoint(side)
            table = schemas[side].get((e.table.schema, e.table.name))
            if table is None:
                problems.append(f"{m.name}: {side} table {e.table} is not in demo/schema/{side}.sql")
                continue
            for f in m.fields:
                if f.column(side) is not None and f.column(side) not in table.columns:
                    problems.append(f"{m.name}: field {f.name}: {side} column {e.table}.{f.column(side)} does not exist")
            if set(e.key) != set(table.primary_key):
                problems.append(f"{m.name}: {side} key {list(e.key)} is not the primary key "
                                f"{list(table.primary_key)} of {e.table}")
    assert not problems, "\n".join(problems)


def test_every_flow_fills_the_required_columns_of_its_target(mappings: MappingSet, schemas: dict) -> None:
    """A flow upserts only the columns it carries; PostgreSQL and MariaDB check NOT NULL on the row to
    insert before ON CONFLICT / ON DUPLICATE KEY turns it into an update. So every NOT NULL column
    without a default must be carried by every flow that writes the table, or the first partial
    update (an `owner:` field, an unchanged TOAST value) stops the stream. A flow that never creates
    rows (`created_by` names the other side) only updates linked rows: it is exempt."""
    problems = []
    for m in mappings.mappings:
        for flow in m.flows:
            if flow.created_by not in (None, flow.source.side):
                continue
            target = flow.target
            table = schemas[target.side][(target.table.schema, target.table.name)]
            written = written_columns(flow)
            for col in table.columns.values():
                if col.required and col.name not in written:
                    problems.append(f"{m.name} ({flow.source.side} -> {target.side}): {target.table}.{col.name} "
                                    f"is NOT NULL without a default but not written by this flow")
    assert not problems, "\n".join(problems)


def test_directions_per_flow(mappings: MappingSet) -> None:
    direction = {m.name: sorted(f"{f.source.side}_to_{f.target.side}" for f in m.flows) for m in mappings.mappings}
    both = ["crm_to_erp", "erp_to_crm"]
    assert direction["order_margins"] == ["erp_to_crm"]
    assert direction["customers"] == both and direction["contacts"] == both
    assert direction["products"] == ["crm_to_erp"] and direction["bom_lines"] == ["crm_to_erp"]
    assert direction["quotes"] == both and direction["quote_lines"] == both
    assert direction["product_costs"] == ["erp_to_crm"] and direction["customer_profitability"] == ["erp_to_crm"]
    assert direction["complaints"] == both and direction["service_records"] == both


def test_customer_master_ownership(mappings: MappingSet) -> None:
    customers = next(m for m in mappings.mappings if m.name == "customers")
    owner = {f.name: f.owner for f in customers.fields}
    for name in ("credit_limit", "payment_terms", "credit_blocked", "credit_currency"):
        assert owner[name] == "erp", name
    shared = ("customer_no", "account_name", "vat_id", "street", "postal_code", "city", "country_code", "email",
              "phone")
    for name in shared:
        assert owner[name] is None, name
    # each side numbers its accounts: linked by the account number and the crosswalk (issue 12), and
    # still checked for conflicts (a linked two-way update is checked like an unlinked one)
    assert customers.link.natural == ("customer_no",) and customers.link.crosswalk
    assert all(f.two_way for f in customers.flows)
    to_crm = next(f for f in customers.flows if f.target.side == "crm")
    assert to_crm.conflicts is not None and to_crm.conflicts.default.rule == "latest"
    # created on either side: the ERP->CRM direction carries the whole account, not only the money side;
    # the key is the target's own (never written)
    assert written_columns(to_crm) == {"customer_no", "account_name", "vat_id", "street", "postal_code", "city",
                                       "country_code", "email", "phone", "credit_limit", "credit_currency",
                                       "payment_terms", "credit_blocked"}


def test_order_management_is_the_quote_through_a_gate(mappings: MappingSet) -> None:
    quotes = next(m for m in mappings.mappings if m.name == "quotes")
    to_erp = next(f for f in quotes.flows if f.target.side == "erp")
    to_crm = next(f for f in quotes.flows if f.target.side == "crm")
    assert to_erp.gate == ("status", ("confirmed",)) and quotes.link.crosswalk
    assert to_erp.source.table.name == "quote" and to_erp.target.table.name == "sales_orders"
    assert to_crm.created_by == "crm"  # the ERP never creates quotes
    status = to_crm.plan("order_status")
    assert status is not None and status.convert is not None and status.convert("RL", {}) == "released"
    lines = next(m for m in mappings.mappings if m.name == "quote_lines")
    assert lines.flows[0].parent == ("quotes", "quote_id")


def test_foreign_keys_are_translated_through_the_links(mappings: MappingSet) -> None:
    refs = {(m.name, f.name): f.references for m in mappings.mappings for f in m.fields if f.references}
    assert refs[("order_margins", "sales_order_id")] == "quotes"
    assert refs[("product_costs", "item_id")] == "products"
    assert refs[("quote_lines", "product_id")] == "products"
    assert refs[("bom_lines", "component_product_id")] == "products"
    # every account id is translated through flow 2's link (each side numbers its accounts)
    for name in ("contacts", "quotes", "customer_profitability", "complaints", "service_records"):
        assert refs[(name, "customer_id")] == "customers", name
    for m in mappings.mappings:  # two-way mappings edited on both sides keep the conflict check
        if m.name in ("customers", "complaints", "service_records"):
            assert all(f.two_way for f in m.flows), m.name


def test_parser_sees_constraints_and_defaults() -> None:
    tables = parse_schema(ROOT / "demo" / "schema" / "erp.sql", "erp")
    customers = tables[("erp", "customers")]
    assert customers.primary_key == ("id",)
    assert not customers.columns["id"].required  # AUTO_INCREMENT
    assert not customers.columns["credit_limit"].required  # DEFAULT
    assert customers.columns["name"].required
    assert "customers_customer_no" not in customers.columns
    assert tables[("erp", "customer_profitability")].primary_key == ("customer_id", "fiscal_year")
    crm = parse_schema(ROOT / "demo" / "schema" / "crm.sql", "public")
    assert crm[("crm", "customer")].primary_key == ("id",)
    assert "CHECK" not in crm[("crm", "product")].columns and "UNIQUE" not in crm[("crm", "product")].columns


def test_edi_orders_are_left_out_of_flows_1_and_4(mappings: MappingSet) -> None:
    """Orders the ERP takes itself (EDI) have no quote: a filter on each row's origin keeps the order, its
    lines and its post-calculation from being parked for a quote that never comes (issue 12)."""
    for name in ("quotes", "quote_lines", "order_margins"):
        m = next(m for m in mappings.mappings if m.name == name)
        to_crm = next(f for f in m.flows if f.source.side == "erp")
        assert to_crm.filter is not None, name
        assert to_crm.filter({"origin": "CRM"}) and not to_crm.filter({"origin": "EDI"}), name
        assert all(f.filter is None for f in m.flows if f.source.side == "crm"), name
