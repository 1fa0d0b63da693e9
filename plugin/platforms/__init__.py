"""One adapter per shop platform: signature checks, payload parsing into neutral events, Admin API client."""
