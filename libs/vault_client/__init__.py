"""TokenVault adapters: `GrpcTokenVault` (the real one) and `InMemoryTokenVault` (a fake for tests)."""

from libs.vault_client.client import GrpcTokenVault
from libs.vault_client.memory import InMemoryTokenVault

__all__ = ["GrpcTokenVault", "InMemoryTokenVault"]
