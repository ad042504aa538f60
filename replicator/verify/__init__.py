"""Both sides compared through the mappings, and repaired."""
