"""Verbatim copies of replaced hot-path code, kept as the slow reference its fast successor is
differentially tested against (tests/unit/test_wal_differential.py). Not imported by the daemon."""
