"""Wiring: settings → key store → cipher → audit log → servicer. The only place adapters are chosen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dependency_injector import containers, providers

from tgm.host.files import has_content
from tgm.services.vault.audit import AuditLog, AuditLogTampered, without_key
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.grpc.servicer import VaultServicer
from tgm.services.vault.keystore import KeyStore, lock_keyring
from tgm.services.vault.policy import default_policy
from tgm.services.vault.settings import VaultSettings, env_key, load_settings

_HELD_LOCKS: list[int] = []  # keyring lock descriptors, held until the process exits


def key_store_from_settings(settings: VaultSettings) -> KeyStore:
    """The keyring file, locked for this process (a second vault on it stops here); never made here (`init`)."""
    path = settings.keyring_file()
    _HELD_LOCKS.append(lock_keyring(path))
    return KeyStore.open(path, env_key(settings), rotation_period=timedelta(days=settings.vault_rotation_days))


def audit_anchor_path(settings: VaultSettings) -> Path:
    return settings.vault_audit_anchor_file or settings.keyring_file().with_name("audit.anchor")


def audit_from_settings(settings: VaultSettings, keys: KeyStore, *, new_keyring: bool = False) -> AuditLog:
    """The keyed, anchored audit log. An anchor may be missing only when the audit key is new: `init` just made
    the keyring, or a keyring made before keyed audit logs gets its key now (once its unkeyed log was archived)."""
    if keys.audit_key is None and has_content(settings.vault_audit_file):
        # Refused before the key is added: with the key no longer new, no new log could start without an anchor.
        raise AuditLogTampered(f"the audit log {settings.vault_audit_file} {without_key(settings.vault_audit_file)}")
    key, added = keys.ensure_audit_key()
    return AuditLog(
        settings.vault_audit_file,
        fsync=settings.vault_audit_fsync,
        key=key,
        anchor_path=audit_anchor_path(settings),
        anchor_may_be_missing=added or new_keyring,
    )


class VaultContainer(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    keys = providers.Singleton(key_store_from_settings, settings)
    cipher = providers.Singleton(Cipher, keys)
    audit = providers.Singleton(audit_from_settings, settings, keys)
    policy = providers.Singleton(default_policy)
    servicer = providers.Singleton(VaultServicer, cipher=cipher, policy=policy, keys=keys, audit=audit)
