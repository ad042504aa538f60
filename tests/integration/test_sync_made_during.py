"""The first copy and rows another mapping's copy makes during it: an account mapping and a 1:1 extension
mapping onto the same CRM table. The ERP's account exists only there, with its extension row; the CRM (the first
side) is copied first, before the account's counterpart exists, and the accounts mapping's ERP copy creates it.
The extension mapping's ERP copy (the second side) must still fill the new account's extension fields (they were
NULL: the first side held no value), whichever side is first, while a value both sides hold keeps the first side's
(sync.first_side) -- and `verify` agrees."""
from __future__ import annotations

from typing import Callable

import pytest

from tests.integration.harness import Pair
from tests.integration.test_sync import wait_synced

PG = """
CREATE TABLE account (id serial PRIMARY KEY, name text NOT NULL, segment text);
"""
MY = """
CREATE TABLE company (rowid INT AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(100) NOT NULL) ENGINE=InnoDB;
CREATE TABLE company_extra (rowid INT AUTO_INCREMENT PRIMARY KEY, fk_object INT NOT NULL, segment VARCHAR(50),
                            UNIQUE KEY uk_extra (fk_object)) ENGINE=InnoDB;
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: company, key: [rowid]}
    link: {crosswalk: true, natural: [name]}
    delete: {erp_to_crm: propagate}
    fields:
      name: {erp: nom}
  customer_extra:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: company_extra, key: [fk_object], optional: true}
    created_by: crm
    delete: ignore
    fields:
      id: {erp: fk_object, references: customers}
      segment: ~
"""


@pytest.mark.parametrize("first_side,by", [("crm", "sync"), ("erp", "sync"), ("crm", "daemon")])
def test_a_row_made_by_another_mappings_copy_gets_its_extension_whichever_side_is_first(
        make_pair: Callable[..., Pair], first_side: str, by: str) -> None:
    pair = make_pair(PG, MY, MAPPINGS, f"sync: {{first_side: {first_side}}}\n", setup=False)
    # Acme on both sides (linked by name), each with a segment: the first side's wins; Oro-only Zeta; ERP-only
    # Initech with its extension row, Globex without one
    pair.pg_query("INSERT INTO account (name, segment) VALUES ('Acme', 'crm-acme'), ('Zeta', 'crm-zeta')")
    pair.my_query("INSERT INTO company (nom) VALUES ('Acme'), ('Initech'), ('Globex')")
    pair.my_query("INSERT INTO company_extra (fk_object, segment) SELECT rowid, CONCAT('erp-', LOWER(nom)) "
                  "FROM company WHERE nom IN ('Acme', 'Initech')")
    pair.setup()
    if by == "sync":
        pair.cli("sync")
    else:  # the daemon's first start (sync.on_first_run)
        pair.start()
        wait_synced(pair, {(s, m) for s in ("crm_to_erp", "erp_to_crm") for m in ("customers", "customer_extra")})
        pair.stop()
    acme = "crm-acme" if first_side == "crm" else "erp-acme"
    assert pair.pg_query("SELECT name, segment FROM account ORDER BY name") == [
        ("Acme", acme), ("Globex", None), ("Initech", "erp-initech"), ("Zeta", "crm-zeta")]
    assert pair.my_query("SELECT c.nom, x.segment FROM company c LEFT JOIN company_extra x ON x.fk_object = c.rowid "
                         "ORDER BY c.nom") == [
        ("Acme", acme), ("Globex", None), ("Initech", "erp-initech"), ("Zeta", "crm-zeta")]
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


SHARED_PG = """
CREATE TABLE account (id int PRIMARY KEY, name text NOT NULL, segment text);
"""
SHARED_MY = """
CREATE TABLE company (rowid INT PRIMARY KEY, nom VARCHAR(100) NOT NULL) ENGINE=InnoDB;
CREATE TABLE company_extra (fk_object INT PRIMARY KEY, segment VARCHAR(50)) ENGINE=InnoDB;
"""
SHARED_MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: company, key: [rowid]}
    delete: {erp_to_crm: propagate}
    fields:
      id: {erp: rowid}
      name: {erp: nom}
  customer_extra:
    direction: both
    crm: {table: account, key: [id]}
    erp: {table: company_extra, key: [fk_object], optional: true}
    created_by: crm
    delete: ignore
    fields:
      id: {erp: fk_object}
      segment: ~
"""


@pytest.mark.parametrize("first_side", ["crm", "erp"])
def test_the_same_with_shared_keys(make_pair: Callable[..., Pair], first_side: str) -> None:
    """Shared keys: plain batched writes instead of the crosswalk's row-by-row ones. With the ERP first, the
    extension mapping is copied after the accounts mapping of its direction (it creates no account)."""
    pair = make_pair(SHARED_PG, SHARED_MY, SHARED_MAPPINGS, f"sync: {{first_side: {first_side}}}\n", setup=False)
    pair.pg_query("INSERT INTO account VALUES (1, 'Acme', 'crm-acme'), (4, 'Zeta', 'crm-zeta')")
    pair.my_query("INSERT INTO company VALUES (1, 'Acme'), (2, 'Initech'), (3, 'Globex')")
    pair.my_query("INSERT INTO company_extra VALUES (1, 'erp-acme'), (2, 'erp-initech')")
    pair.setup()
    pair.cli("sync")
    acme = "crm-acme" if first_side == "crm" else "erp-acme"
    assert pair.pg_query("SELECT id, segment FROM account ORDER BY id") == [
        (1, acme), (2, "erp-initech"), (3, None), (4, "crm-zeta")]
    assert pair.my_query("SELECT fk_object, segment FROM company_extra ORDER BY fk_object") == [
        (1, acme), (2, "erp-initech"), (4, "crm-zeta")]
    verify = pair.cli("verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
