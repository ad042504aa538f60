"""docs/walkthrough-civicrm-metasfresh.md without servers: its mapping files load against its two connections,
and the name both ways keeps its own conflict rule although one-way copies read it on each side
(tests/integration/test_walkthrough_civicrm_metasfresh.py runs the page for real)."""
from __future__ import annotations

from pathlib import Path

from replicator.config import Account, Batching, Config, Connection, Secret
from replicator.mapping.model import ConflictRule
from tests.unit.test_walkthrough_doc import ROOT, blocks, page_mappings

PAGE = ROOT / "docs" / "walkthrough-civicrm-metasfresh.md"


def test_the_page_mappings_load(tmp_path: Path) -> None:
    names = set(blocks(PAGE))
    assert {"civicrm.sql", "metasfresh.sql", "metasfresh-keys.sql", "metasfresh-seed.sql", "civicrm-seed.sql"} <= names
    acc = Account("u", Secret(""))
    config = Config(tmp_path / "replicator.yaml",
                    (Connection("civicrm", "mariadb", "h", 3306, "civicrm", acc, acc),
                     Connection("metasfresh", "postgresql", "h", 5432, "metasfresh", acc, acc)),
                    tmp_path / "maps", Batching())
    mset = page_mappings(PAGE, config)
    assert sorted(m.name for m in mset.mappings) == [
        "contact_email", "contact_phone", "contacts", "organisation_vat", "organisations", "products"]
    orgs = mset.by_name["organisations"]
    assert orgs.flow("civicrm").conflicts.rule("name") == ConflictRule("latest")
    assert orgs.flow("metasfresh").conflicts.rule("organization_name") == ConflictRule("latest")
    assert orgs.flow("metasfresh").conflicts.rule("display_name") == ConflictRule("priority", side="metasfresh")
