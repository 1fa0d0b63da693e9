"""Background jobs: one registry of job functions and one dispatcher (RQ, or inline without Redis)."""
