"""The vault's gRPC service on a free port, for tests that hold a VaultServicer (the vault's `serve` starts it the
same way, through tgm.grpc_runtime)."""

from __future__ import annotations

from tgm.grpc_runtime.channels import RunningServer, start_server
from tgm.grpc_runtime.tls import TlsFiles
from tgm.services.vault.grpc.servicer import SERVICE_NAME, VaultServicer
from tgm.vault.v1 import vault_pb2_grpc


def start_vault(servicer: VaultServicer, listen: str, tls: TlsFiles | None) -> RunningServer:
    """mTLS with client certificates required; `tls=None` (plaintext) makes every caller anonymous."""
    return start_server(
        lambda server: vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer, server), SERVICE_NAME, listen, tls
    )
