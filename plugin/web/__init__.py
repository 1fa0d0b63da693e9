"""The web front doors (admin, support API, install): authenticate, (de)serialise, call a service."""
