"""One direction wired: the pipeline, its channel, systemd notification."""
