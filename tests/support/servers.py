"""Session fixtures that start real servers for the tests (filled in by the adapters work)."""
