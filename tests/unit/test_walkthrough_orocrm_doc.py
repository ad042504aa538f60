"""docs/walkthrough-orocrm-dolibarr.md without servers: its mapping files load against its two connections
(tests/integration/test_walkthrough_orocrm_dolibarr.py runs the page for real)."""
from __future__ import annotations

from pathlib import Path

from replicator.config import Account, Batching, Config, Connection, Secret
from tests.unit.test_walkthrough_doc import ROOT, blocks, page_mappings

PAGE = ROOT / "docs" / "walkthrough-orocrm-dolibarr.md"


def test_the_page_mappings_load(tmp_path: Path) -> None:
    names = set(blocks(PAGE))
    assert {"oro.sql", "dolibarr.sql", "oro-seed.sql", "dolibarr-seed.sql", "replicator-extra.yaml"} <= names
    acc = Account("u", Secret(""))
    config = Config(tmp_path / "replicator.yaml", (Connection("oro", "postgresql", "h", 5432, "oro", acc, acc),
                                                   Connection("dolibarr", "mariadb", "h", 3306, "dolibarr", acc, acc)),
                    tmp_path / "maps", Batching())
    mset = page_mappings(PAGE, config)
    assert sorted(m.name for m in mset.mappings) == [
        "commerce_customers", "contact_account", "contact_email", "contacts", "customer_extra", "customers",
        "order_lines", "orders", "products", "units"]
    orders = mset.by_name["orders"]
    assert orders.flows[0].gate == ("fk_statut", (1,))
