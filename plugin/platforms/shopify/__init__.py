"""Everything Shopify (platform.py is what the core sees): webhook HMAC and payloads, the Admin API client,
discounts, OAuth, session tokens, tokens, metafields, order sync, webhook subscriptions, App Proxy signatures."""
