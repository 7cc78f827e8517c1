"""What several test packages share: a test double of the data plane, a reader of the /metrics text."""
