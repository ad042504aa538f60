"""replicator: two-way change-data-capture between PostgreSQL and MariaDB/MySQL."""

__version__ = "0.1.0"
