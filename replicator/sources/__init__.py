"""Sources: readers that turn third-party change streams into `replicator.changes` objects."""
