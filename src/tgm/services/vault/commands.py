"""The vault's commands: `serve`, and the offline verbs that touch the keyring or the audit log (README.md).

Their command line — arguments, output, exit codes — is tgm.apps.cli.vault, outside the vault (issue 11); the key
bytes they use stay here: they return text to print (`new_key`: the one key an operator asks for) or raise
`Refused` with a message that names variables, paths and versions, never a key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from tgm.config.production import production_refusal
from tgm.grpc_runtime.serving import serve_until_signalled
from tgm.grpc_runtime.tls import TlsConfigError, mutual_tls_from_env
from tgm.host.files import has_content
from tgm.observability.logging import log_extra
from tgm.observability.metrics import VAULT_KEY_ROTATION_DUE
from tgm.services.vault import audit
from tgm.services.vault.container import VaultContainer, audit_anchor_path, audit_from_settings
from tgm.services.vault.crypto import KEY_BYTES
from tgm.services.vault.grpc.servicer import SERVICE_NAME
from tgm.services.vault.keystore import KeyStore, KeyStoreError, lock_keyring
from tgm.services.vault.settings import VaultConfigError, VaultSettings, encode_key, env_key, load_settings
from tgm.vault.v1 import vault_pb2_grpc

log = logging.getLogger(__name__)

EXIT_CONFIG_ERROR = 2


class Refused(Exception):
    """An offline command that cannot be done (bad settings, a keyring a vault holds, what the key store refuses)."""


def serve(container: VaultContainer | None = None) -> int:
    """Runs the vault until SIGTERM/SIGINT; the exit code: 2 refused (settings, production, no keyring, TLS), 1 cannot
    listen."""
    container = container or VaultContainer()
    try:
        settings = container.settings()
        refusal = production_refusal("tgm.services.vault", settings)
        if refusal:
            log.error(refusal)
            return EXIT_CONFIG_ERROR
        keys = container.keys()
        servicer = container.servicer()
        tls = mutual_tls_from_env("vault")
    except (VaultConfigError, TlsConfigError, ValueError) as exc:
        log.error("vault cannot start: %s", exc)
        return EXIT_CONFIG_ERROR
    audit_log, status = container.audit(), keys.status()
    VAULT_KEY_ROTATION_DUE.set_function(lambda: float(keys.status().rotation_due))
    log.info("vault audit log resumed", **log_extra(audit_seq=audit_log.head.seq, audit_hash=audit_log.head.hash))
    if status.rotation_due:
        log.warning("vault primary key is older than the rotation period: run `tgm keys rotate`, then `tgm rewrap`")
    return serve_until_signalled(
        "vault",
        lambda server: vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer, server),
        SERVICE_NAME,
        settings.vault_listen,
        tls,
        logger=log,
        metrics=(settings.metrics_host, settings.metrics_port),
        readiness=lambda: {"audit_log": audit_log.broken is None},
        details={
            "key_versions": list(keys.current().versions),
            "primary_key_version": status.primary_version,
            "audit_file": str(settings.vault_audit_file),
        },
    )


def _offline(act: Callable[[VaultSettings, Path], str]) -> str:
    """Runs a keyring verb under the keyring's lock (a running vault holds it: never write under it); returns what
    `act` did, or raises Refused (no keyring path, a vault holding it, bad settings, what `act` refused)."""
    try:
        settings = load_settings()
        path = settings.keyring_file()
        lock = lock_keyring(path)
        try:
            return act(settings, path)
        finally:
            os.close(lock)
    except (VaultConfigError, KeyStoreError, OSError, audit.AuditLogTampered) as exc:
        raise Refused(str(exc)) from None


def existing_keyring() -> Path | None:
    """VAULT_KEYRING_FILE when it is set and the file exists (unlocked: `init --once` beside a running vault)."""
    try:
        path = load_settings().vault_keyring_file
    except VaultConfigError:
        return None
    return path if path is not None and path.exists() else None


def init_keyring() -> str:
    """Creates VAULT_KEYRING_FILE from ENCRYPTION_KEY (or a fresh random key); refuses when one exists, and when the
    audit log shows a vault ran here (its keyring was lost: restore it from backup, never make it anew)."""

    def create(settings: VaultSettings, path: Path) -> str:
        if not path.exists() and has_content(settings.vault_audit_file):
            raise VaultConfigError(
                f"no keyring at VAULT_KEYRING_FILE {path} but the audit log {settings.vault_audit_file} has lines: "
                "a vault ran here; restore its keyring from backup instead of creating a new one"
            )
        bootstrap = env_key(settings)
        store = KeyStore.create(path, bootstrap)
        version = store.status().primary_version
        # The first audit line, under the new keyring's audit key: it writes the anchor every start checks.
        line = audit_from_settings(settings, store, new_keyring=True).append(
            {"verb": "InitKeyring", "caller": "local-operator", "key_version": version, "outcome": "ok"}
        )
        source = "ENCRYPTION_KEY" if bootstrap else "a fresh random key"
        return f"keyring created at {path}: key version {version} from {source} (audit seq {line.seq})"

    return _offline(create)


def destroy_key_version(version: int) -> str:
    """Removes retired key version `version`'s bytes from VAULT_KEYRING_FILE for good (the vault stopped: it holds
    the keyring's lock while it runs) and records it in the audit log."""

    def destroy(settings: VaultSettings, path: Path) -> str:
        store = KeyStore.open(path, None)  # the file only: ENCRYPTION_KEY plays no part here
        store.destroy(version)
        line = audit_from_settings(settings, store).append(
            {"verb": "DestroyKeyVersion", "caller": "local-operator", "key_version": version, "outcome": "ok"}
        )
        return f"key version {version} destroyed (audit seq {line.seq}); unset ENCRYPTION_KEY if it held that key"

    return _offline(destroy)


def new_key() -> str:
    """A fresh random key in the form ENCRYPTION_KEY takes."""
    return encode_key(os.urandom(KEY_BYTES))


def verify_audit_log(path: Path | None, anchor: audit.Anchor | None) -> tuple[Path, audit.Anchor | None, audit.Verdict]:
    """`audit.verify` of `path` (default VAULT_AUDIT_FILE) under the keyring file's audit key, against `anchor`, else
    the anchor file's (which must be the vault's). Returns the log and the anchor checked and the verdict; raises
    Refused (bad settings, no keyring, a file that cannot be read) or AuditLogTampered (the anchor file)."""
    try:
        settings = load_settings()
        path = path or settings.vault_audit_file
        key = KeyStore.open(settings.keyring_file(), None).audit_key  # read only: no lock needed
        if key is None:
            raise VaultConfigError(f"the keyring has no audit key, so its vault's log {path} {audit.without_key(path)}")
        anchor = anchor or audit.read_anchor(audit_anchor_path(settings), key)
        return path, anchor, audit.verify(path, anchor, key=key)
    except (VaultConfigError, OSError) as exc:
        raise Refused(str(exc)) from None
