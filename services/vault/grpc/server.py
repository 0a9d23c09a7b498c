"""The vault's gRPC server: mutual TLS, client certificates required.

`tls=None` (plaintext) is for in-process tests only: every caller is then anonymous and refused.
"""

from __future__ import annotations

from libs.grpc_runtime.channels import RunningServer
from libs.grpc_runtime.channels import start_server as start_grpc_server
from libs.grpc_runtime.tls import TlsFiles
from services.vault.grpc.servicer import SERVICE_NAME, VaultServicer
from tgm.vault.v1 import vault_pb2_grpc


def start_server(servicer: VaultServicer, listen: str, tls: TlsFiles | None) -> RunningServer:
    """Binds `listen` (port 0 picks a free one) and reports SERVING; raises OSError when it cannot."""
    return start_grpc_server(
        lambda server: vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer, server), SERVICE_NAME, listen, tls
    )
