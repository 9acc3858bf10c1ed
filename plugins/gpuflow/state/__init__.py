"""State shared by every run and worker: the failover memory (and later the cost ledger)."""
