"""``python -m replicator.testing.devservers``: see cli.main."""
from replicator.testing.devservers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
