"""Builds the vault's gRPC server (used by the CLI and by in-process tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from libs.grpc_runtime.channels import add_server_port, build_server, mark_serving
from libs.grpc_runtime.tls import TlsFiles
from services.vault.grpc.servicer import SERVICE_NAME, VaultServicer
from tgm.vault.v1 import vault_pb2_grpc


@dataclass
class RunningServer:
    server: grpc.Server
    health: Any
    port: int

    def stop(self, grace_seconds: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_seconds).wait()


def start_server(servicer: VaultServicer, listen: str, tls: TlsFiles | None) -> RunningServer:
    """Binds `listen` (port 0 picks a free one) with mTLS — client certificates required — and reports SERVING.

    `tls=None` (plaintext) is for in-process tests only: every caller is then anonymous and refused.
    """
    server, health = build_server()
    vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer, server)
    port = add_server_port(server, listen, tls=tls, require_client_auth=True)
    if port == 0:
        raise OSError(f"vault cannot listen on {listen}")
    server.start()
    mark_serving(health, SERVICE_NAME)
    return RunningServer(server=server, health=health, port=port)
