"""Development tools: the fake shop and the demo. Only the demo (and tests) import them."""
