"""`optional: true` on an endpoint (mapping/model.py Endpoint.optional): the rows of a 1:1 table its application
creates lazily. How the stream and verify treat a missing row is tested on real servers by
tests/integration/test_walkthrough.py (SuiteCRM's accounts_cstm); here the language."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.errors import ConfigError
from tests.unit.test_mapping_check import Env

TEXT = """\
mappings:
  customer_custom:
    direction: both
    crm: {{table: accounts_cstm, key: [id]{optional}}}
    erp: {{table: customers, key: [id]}}
    fields:
      id: ~
      code: ~
"""


def test_optional_is_read_per_endpoint_and_off_by_default(tmp_path: Path) -> None:
    env = Env(tmp_path)
    m = env.load(TEXT.format(optional=", optional: true")).by_name["customer_custom"]
    assert m.endpoint("crm").optional and not m.endpoint("erp").optional
    flows = {f.stream: f for f in m.flows}
    assert flows["erp_to_crm"].target.optional and flows["crm_to_erp"].source.optional
    assert not env.load(TEXT.format(optional="")).by_name["customer_custom"].endpoint("crm").optional


def test_a_wrong_value_names_file_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        Env(tmp_path).load(TEXT.format(optional=", optional: sometimes"))
    assert "m.yaml:4" in str(e.value) and "optional" in str(e.value), str(e.value)


def test_column_types_are_never_read_inside_a_tagged_transaction(tmp_path: Path) -> None:
    """Reading them ends the transaction, the loop tag with it: `dlq retry` read them after begin(), and what it
    wrote came back as an edit of the other side (test_walkthrough.py shows it no longer does)."""
    from replicator.appliers import make_applier
    from replicator.changes import TableRef
    from tests.unit.test_mapping_check import make_config

    config = make_config(tmp_path)
    for side in ("crm", "erp"):
        db = make_applier(config.side(side), "x_to_" + side, "")
        db.tagged = True  # as begin() leaves it
        with pytest.raises(RuntimeError, match="inside a tagged transaction"):
            db.load_types([TableRef("s", "t")])
