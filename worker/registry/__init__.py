"""Talking to OCI registries: references, hosts, auth, pull and push."""
