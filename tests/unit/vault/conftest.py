from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import grpc
import pytest

from services.vault.crypto import Cipher, Keyring
from services.vault.grpc.server import RunningServer, start_server
from services.vault.grpc.servicer import VaultServicer
from services.vault.policy import PeerCallerResolver, Policy, default_policy


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def cipher(key: bytes) -> Cipher:
    return Cipher(Keyring({1: key}, primary_version=1))


def serve_in_process(cipher: Cipher, policy: Policy | None = None) -> RunningServer:
    servicer = VaultServicer(cipher=cipher, policy=policy or default_policy(), callers=PeerCallerResolver())
    return start_server(servicer, "127.0.0.1:0")


@pytest.fixture
def serve_vault() -> Iterator[Callable[..., RunningServer]]:
    """Starts in-process vault servers on free loopback ports; stops them at teardown."""
    started: list[RunningServer] = []

    def _serve(cipher: Cipher, policy: Policy | None = None) -> RunningServer:
        started.append(serve_in_process(cipher, policy))
        return started[-1]

    yield _serve
    for running in started:
        running.stop(grace_seconds=0)


@pytest.fixture
def vault_server(cipher: Cipher, serve_vault: Callable[..., RunningServer]) -> RunningServer:
    return serve_vault(cipher)


@pytest.fixture
def vault_channel(vault_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{vault_server.port}") as channel:
        yield channel
