"""Adapters of the registry: one module per technology."""
