"""The vault: the only process that holds key material (see shared DESIGN §4)."""
