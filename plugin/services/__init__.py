"""Services: one function per operation, each owning its transaction; every front door calls these."""
