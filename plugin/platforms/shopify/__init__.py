"""Everything Shopify: webhook HMAC and payloads, the Admin API client, discounts, OAuth, session tokens, App Proxy."""
