"""Concurrent edits of one record on both sides: what a conflict is (model), how its winner is
decided (rules), and where it is recorded (store: `<state_schema>.conflicts` in the target, in the
same transaction as the resolution). docs/conflicts.md explains the kinds and rules to users."""
