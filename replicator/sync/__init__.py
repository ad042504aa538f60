"""Existing rows copied inside the stream: the driver and its progress."""
