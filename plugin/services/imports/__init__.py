"""Switching to us: import members' balances and history from another loyalty app's CSV export, exactly once."""
