"""TokenVault adapter: `GrpcTokenVault`. The in-memory fake for tests is `tests/support/fake_vault.py`."""

from tgm.vault_client.client import GrpcTokenVault

__all__ = ["GrpcTokenVault"]
