from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.vault_server import start_vault
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.grpc_runtime.channels import RunningServer, open_channel
from tgm.grpc_runtime.tls import TlsFiles
from tgm.services.vault.audit import AuditLog
from tgm.services.vault.crypto import Cipher, Keyring
from tgm.services.vault.grpc.servicer import VaultServicer
from tgm.services.vault.keystore import KeyStore
from tgm.services.vault.policy import Grant, Policy, Verb
from tgm.tools.devstack.certs import IDENTITIES, Identity, ensure_certs

# A test-only identity that may use every verb, so one stub can seal and open.
TESTER = Identity("tester", server=False, client=True)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return ensure_certs(tmp_path_factory.mktemp("certs"), (*IDENTITIES, TESTER))


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def cipher(key: bytes) -> Cipher:
    return Cipher(Keyring({1: key}, primary_version=1))


def everything_for_tester() -> Policy:
    every = [Grant(verb, kind) for verb in (Verb.ENCRYPT, Verb.REWRAP) for kind in SecretKind]
    every += [Grant(Verb.DECRYPT, kind, purpose) for kind in SecretKind for purpose in DecryptPurpose]
    every += [Grant(Verb.ROTATE_KEY), Grant(Verb.KEY_STATUS), Grant(Verb.RETIRE_KEY_VERSION)]
    return Policy({"tester": every})


@pytest.fixture
def serve_vault(certs: dict[str, TlsFiles], tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts in-process mTLS vault servers on free loopback ports; stops them at teardown."""
    started: list[RunningServer] = []

    def _serve(cipher: Cipher, policy: Policy | None = None, keys: KeyStore | None = None) -> RunningServer:
        path = tmp_path / f"audit-{len(started)}.log"
        audit = AuditLog(
            path, fsync=False, key=os.urandom(32), anchor_path=path.with_suffix(".anchor"), anchor_may_be_missing=True
        )
        keys = keys or KeyStore.create(tmp_path / f"keyring-{len(started)}.json", None)  # for the operator verbs
        servicer = VaultServicer(cipher=cipher, policy=policy or everything_for_tester(), keys=keys, audit=audit)
        started.append(start_vault(servicer, "127.0.0.1:0", certs["vault"]))
        return started[-1]

    yield _serve
    for running in started:
        running.stop(grace_seconds=0)


@pytest.fixture
def vault_server(cipher: Cipher, serve_vault: Callable[..., RunningServer]) -> RunningServer:
    return serve_vault(cipher)


@pytest.fixture
def connect(certs: dict[str, TlsFiles]) -> Iterator[Callable[[RunningServer, str], grpc.Channel]]:
    """connect(server, identity) → an mTLS channel presenting that identity's certificate."""
    opened: list[grpc.Channel] = []

    def _connect(server: RunningServer, identity: str = "tester") -> grpc.Channel:
        opened.append(open_channel(f"127.0.0.1:{server.port}", tls=certs[identity], server_name="vault"))
        return opened[-1]

    yield _connect
    for channel in opened:
        channel.close()


@pytest.fixture
def vault_channel(vault_server: RunningServer, connect: Callable[[RunningServer, str], grpc.Channel]) -> grpc.Channel:
    return connect(vault_server, "tester")
