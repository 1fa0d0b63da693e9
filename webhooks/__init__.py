"""Webhook intake: verified deliveries go to the inbox; topic handlers turn them into ledger changes."""
