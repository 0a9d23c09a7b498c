"""Real gRPC over real mTLS: an in-process vault with a keyring file and an audit file in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.support.vault_server import start_vault
from tgm.grpc_runtime.channels import RunningServer, open_channel
from tgm.grpc_runtime.tls import TlsFiles
from tgm.services.vault.audit import AuditLog
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.grpc.servicer import VaultServicer
from tgm.services.vault.keystore import KeyStore
from tgm.services.vault.policy import default_policy
from tgm.tools.devstack.certs import IDENTITIES, Identity, ensure_certs

# Signed by the tgm CA but not in the policy: authenticated, authorized for nothing.
STRANGER = Identity("stranger", server=False, client=True)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return ensure_certs(tmp_path_factory.mktemp("certs"), (*IDENTITIES, STRANGER))


@pytest.fixture(scope="session")
def foreign_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    """Same identity names, another CA."""
    return ensure_certs(tmp_path_factory.mktemp("foreign-certs"))


@dataclass
class Vault:
    server: RunningServer
    keys: KeyStore
    cipher: Cipher
    audit_file: Path
    keyring_file: Path
    certs: dict[str, TlsFiles]
    channels: list[grpc.Channel]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def channel(self, identity: str) -> grpc.Channel:
        self.channels.append(open_channel(self.target, tls=self.certs[identity], server_name="vault"))
        return self.channels[-1]

    def audit_lines(self) -> list[str]:
        return self.audit_file.read_text().splitlines()


@pytest.fixture
def vault(tmp_path: Path, certs: dict[str, TlsFiles]) -> Iterator[Vault]:
    keyring_file = tmp_path / "keyring.json"
    keys = KeyStore.create(keyring_file, os.urandom(32))
    cipher = Cipher(keys)
    audit_file = tmp_path / "audit.log"
    audit = AuditLog(audit_file, key=os.urandom(32), anchor_path=tmp_path / "audit.anchor", anchor_may_be_missing=True)
    servicer = VaultServicer(cipher, default_policy(), keys=keys, audit=audit)
    running = Vault(
        start_vault(servicer, "127.0.0.1:0", certs["vault"]), keys, cipher, audit_file, keyring_file, certs, []
    )
    yield running
    for channel in running.channels:
        channel.close()
    running.server.stop(grace_seconds=0)
    audit.close()


Connect = Callable[[str], grpc.Channel]
