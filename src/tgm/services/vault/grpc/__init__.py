"""gRPC adapter of the vault."""
