"""loopguard: a reader drops only the tags written by the stream that targets its own database."""
from __future__ import annotations

from replicator.loopguard import CHECKPOINT_TABLE, MESSAGE_PREFIX, LoopGuard, stream_name

# the crm reader must drop what the erp_to_crm applier wrote into crm
CRM_READER = LoopGuard(state_schema="replicator", echo_stream=stream_name("erp", "crm"))


def test_stream_name() -> None:
    assert stream_name("erp", "crm") == "erp_to_crm"
    assert (MESSAGE_PREFIX, CHECKPOINT_TABLE) == ("replicator", "checkpoint")


def test_tag_message_of_the_echo_stream() -> None:
    assert CRM_READER.is_tag_message("replicator", b"erp_to_crm")


def test_tag_message_of_the_other_stream_is_not_an_echo() -> None:
    # crm_to_erp writes into erp, never into crm: a message naming it here is not our echo
    assert not CRM_READER.is_tag_message("replicator", b"crm_to_erp")


def test_other_prefixes_and_contents_are_not_tags() -> None:
    assert not CRM_READER.is_tag_message("other_app", b"erp_to_crm")
    assert not CRM_READER.is_tag_message("Replicator", b"erp_to_crm")
    assert not CRM_READER.is_tag_message("replicator", b"erp_to_crm ")
    assert not CRM_READER.is_tag_message("replicator", b"")
    assert not CRM_READER.is_tag_message("replicator", b"\xff\xfe")  # undecodable: no crash, no match


def test_tag_table() -> None:
    assert CRM_READER.is_tag_table("replicator", "checkpoint")
    assert not CRM_READER.is_tag_table("public", "checkpoint")
    assert not CRM_READER.is_tag_table("replicator", "checkpoints")
    custom = LoopGuard(state_schema="repl_state", echo_stream="crm_to_erp")
    assert custom.is_tag_table("repl_state", "checkpoint")
    assert not custom.is_tag_table("replicator", "checkpoint")


def test_tag_row_only_for_the_echo_stream() -> None:
    erp_reader = LoopGuard(state_schema="replicator", echo_stream=stream_name("crm", "erp"))
    row = {"stream": "crm_to_erp", "position": "{}", "txn_seq": 7}
    assert erp_reader.is_tag_row("replicator", "checkpoint", row)
    assert not erp_reader.is_tag_row("replicator", "checkpoint", {**row, "stream": "erp_to_crm"})
    assert not erp_reader.is_tag_row("other_db", "checkpoint", row)
    assert not erp_reader.is_tag_row("replicator", "customers", row)
    assert not erp_reader.is_tag_row("replicator", "checkpoint", {"position": "{}"})
