"""The shopper's side: signed App Proxy endpoints, the widget's files and the Shopify theme app extension."""
