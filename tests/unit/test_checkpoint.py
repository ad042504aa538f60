"""checkpoint: fail closed when the source no longer holds what the target's checkpoint needs."""
from __future__ import annotations

import pytest

from replicator.changes import LSN, BinlogPosition
from replicator.checkpoint import check_binlog, check_slot, is_applied, mariadb_ddl, postgres_ddl
from replicator.errors import CheckpointError, FatalError, SourceLostError

# ---------------------------------------------------------------- check_slot


def test_missing_slot() -> None:
    with pytest.raises(SourceLostError) as info:
        check_slot("crm_slot", None, LSN.parse("0/10"))
    assert str(info.value) == (
        "replication slot 'crm_slot' does not exist. It was dropped or never created; the changes it held are "
        "gone. Do not simply recreate it: `replicator setup --reset` creates it and starts from now; then "
        "re-sync the mapped tables with `replicator sync`"
    )
    assert isinstance(info.value, FatalError)
    assert info.value.kind == "source_lost"


def test_lost_slot() -> None:
    with pytest.raises(SourceLostError) as info:
        check_slot("crm_slot", ("0/16B3748", "lost"), LSN.parse("0/16B3748"))
    assert str(info.value) == (
        "replication slot 'crm_slot' was invalidated (wal_status=lost, max_slot_wal_keep_size exceeded); the WAL "
        "after 0/16B3748 is gone. `replicator setup --reset` drops and recreates it; then re-sync the mapped "
        "tables with `replicator sync`"
    )


def test_lost_slot_is_fatal_even_without_a_checkpoint() -> None:
    with pytest.raises(SourceLostError):
        check_slot("s", (None, "lost"), None)


def test_no_checkpoint() -> None:
    with pytest.raises(CheckpointError) as info:
        check_slot("crm_slot", ("0/16B3748", "reserved"), None)
    assert str(info.value) == (
        "no checkpoint for this stream in the target (slot 'crm_slot' is at 0/16B3748). Run `replicator setup` "
        "to record the starting position"
    )
    assert info.value.kind == "checkpoint"


def test_checkpoint_older_than_slot() -> None:
    with pytest.raises(CheckpointError) as info:
        check_slot("crm_slot", ("1/00000020", "reserved"), LSN.parse("0/FFFFFFF0"))
    assert str(info.value) == (
        "the target's checkpoint 0/FFFFFFF0 is older than slot 'crm_slot' (1/20): changes between them were "
        "confirmed to PostgreSQL but are not in the target (a restored backup of the target?). Reset the "
        "checkpoint with `replicator setup --reset`, then re-sync the mapped tables with `replicator sync`"
    )


@pytest.mark.parametrize("status", ["reserved", "extended", "unreserved"])
def test_checkpoint_equal_to_slot(status: str) -> None:
    cp = LSN.parse("0/16B3748")
    assert check_slot("s", ("0/16B3748", status), cp) == cp


def test_checkpoint_ahead_of_slot_is_normal() -> None:
    # the slot is confirmed only after the commit; a crash in between leaves it behind: fine
    cp = LSN.parse("2/0")
    assert check_slot("s", ("1/FFFFFFFF", "reserved"), cp) is cp


def test_slot_without_confirmed_position() -> None:
    cp = LSN.parse("0/1")
    assert check_slot("s", (None, "reserved"), cp) is cp


# ---------------------------------------------------------------- check_binlog


def test_binlog_no_checkpoint() -> None:
    with pytest.raises(CheckpointError) as info:
        check_binlog(None, ["mariadb-bin.000001"])
    assert str(info.value) == (
        "no checkpoint for this stream in the target. Run `replicator setup` to record the starting binlog position"
    )


def test_binlog_purged() -> None:
    pos = BinlogPosition("mariadb-bin.000003", 1234, "0-1-77")
    with pytest.raises(SourceLostError) as info:
        check_binlog(pos, ["mariadb-bin.000007", "mariadb-bin.000008"])
    assert str(info.value) == (
        "binlog mariadb-bin.000003 (checkpoint mariadb-bin.000003:1234 (gtid 0-1-77)) is no longer on the "
        "server; the oldest is mariadb-bin.000007. The changes in between are lost: raise expire_logs_days / "
        "binlog_expire_logs_seconds, reset the checkpoint with `replicator setup --reset`, then re-sync the "
        "mapped tables with `replicator sync`"
    )


def test_binlog_none_on_server() -> None:
    with pytest.raises(SourceLostError) as info:
        check_binlog(BinlogPosition("b.000001", 4), [])
    assert "the oldest is none." in str(info.value)


def test_binlog_fine() -> None:
    pos = BinlogPosition("mariadb-bin.000008", 4)
    assert check_binlog(pos, ["mariadb-bin.000007", "mariadb-bin.000008"]) is pos


# ---------------------------------------------------------------- is_applied


def test_is_applied_lsn() -> None:
    cp = LSN.parse("0/100")
    assert is_applied(LSN.parse("0/FF"), cp)
    assert is_applied(LSN.parse("0/100"), cp)
    assert not is_applied(LSN.parse("0/101"), cp)
    assert not is_applied(LSN.parse("0/FF"), None)


def test_is_applied_binlog() -> None:
    cp = BinlogPosition("mariadb-bin.000002", 500, "0-1-10")
    assert is_applied(BinlogPosition("mariadb-bin.000002", 500), cp)  # the gtid does not take part
    assert is_applied(BinlogPosition("mariadb-bin.000001", 9000), cp)
    assert not is_applied(BinlogPosition("mariadb-bin.000002", 501), cp)
    assert not is_applied(BinlogPosition("mariadb-bin.000003", 4), cp)


def test_is_applied_never_across_kinds() -> None:
    assert not is_applied(LSN(1), BinlogPosition("b.000001", 10))
    assert not is_applied(BinlogPosition("b.000001", 1), LSN(10))


def test_is_applied_after_binlog_extension_grows_past_six_digits() -> None:
    """MariaDB names binlogs with "%06lu": after .999999 comes .1000000.

    BUG: BinlogPosition compares the file names as text, so "x.1000000" < "x.999999" and every
    transaction in the new file counts as already applied: silently skipped.
    """
    cp = BinlogPosition("mariadb-bin.999999", 1000)
    assert not is_applied(BinlogPosition("mariadb-bin.1000000", 4), cp)


# ---------------------------------------------------------------- DDL


def test_ddl_uses_the_given_schema() -> None:
    pg = postgres_ddl('"repl"')
    assert pg[0] == 'CREATE SCHEMA IF NOT EXISTS "repl"'
    assert pg[1].startswith('CREATE TABLE IF NOT EXISTS "repl".checkpoint (')
    my = mariadb_ddl("`repl`")
    assert my[0] == "CREATE DATABASE IF NOT EXISTS `repl` CHARACTER SET utf8mb4"
    assert my[1].startswith("CREATE TABLE IF NOT EXISTS `repl`.checkpoint (")
    assert my[1].endswith("ENGINE=InnoDB")


def test_session_lock_names_are_per_installation_on_mariadb_and_fit_its_64_characters() -> None:
    from replicator.checkpoint import session_lock_name
    # PostgreSQL's advisory locks belong to a database: the name stays what it was
    assert session_lock_name("postgresql", "replicator", "erp_to_crm") == "replicator:erp_to_crm"
    # MariaDB's GET_LOCK is server-wide: two installations (state schemas) on one server differ
    a = session_lock_name("mariadb", "replicator", "crm_to_erp")
    b = session_lock_name("mariadb", "replicator_shop2", "crm_to_erp")
    assert a == "replicator:replicator:crm_to_erp" and b != a
    long = session_lock_name("mariadb", "s" * 64, "crm_to_erp")
    assert len(long) <= 64 and long != session_lock_name("mariadb", "s" * 63, "crm_to_erp")
