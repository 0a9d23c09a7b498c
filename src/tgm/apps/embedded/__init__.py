"""Embedded mode: gateway + dispatcher in one process on an in-process Dramatiq broker (docs/adr/001)."""
