"""Wiring: settings → key store → cipher → audit log → servicer. The only place adapters are chosen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dependency_injector import containers, providers

from tgm.services.vault.audit import AuditLog, log_has_keyed_lines
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.grpc.servicer import VaultServicer
from tgm.services.vault.keystore import KeyStore, lock_keyring
from tgm.services.vault.policy import CertificateCallerResolver, default_policy
from tgm.services.vault.settings import VaultSettings, env_key, load_settings

_HELD_LOCKS: list[int] = []  # keyring lock descriptors, held until the process exits


def key_store_from_settings(settings: VaultSettings) -> KeyStore:
    if settings.vault_keyring_file is not None:
        _HELD_LOCKS.append(lock_keyring(settings.vault_keyring_file))  # a second vault on this keyring stops here
    return KeyStore.open(
        settings.vault_keyring_file, env_key(settings), rotation_period=timedelta(days=settings.vault_rotation_days)
    )


def audit_anchor_path(settings: VaultSettings) -> Path:
    if settings.vault_audit_anchor_file is not None:
        return settings.vault_audit_anchor_file
    if settings.vault_keyring_file is not None:
        return settings.vault_keyring_file.with_name("audit.anchor")
    return settings.vault_audit_file.with_name(settings.vault_audit_file.name + ".anchor")


def audit_from_settings(settings: VaultSettings, keys: KeyStore, *, new_keyring: bool = False) -> AuditLog:
    """The keyed, anchored audit log. An anchor may be missing only when the audit key is new (`init` just made
    the keyring, or a keyring made before keyed audit logs gets its key now), or, without a keyring file, when the
    log holds no keyed line yet."""
    created = keys.ensure_audit_key() or new_keyring
    key = keys.audit_key
    assert key is not None  # ensured above
    anchor = audit_anchor_path(settings)
    if settings.vault_keyring_file is None:
        may_be_missing = not log_has_keyed_lines(settings.vault_audit_file)
    else:
        may_be_missing = created
    return AuditLog(
        settings.vault_audit_file,
        fsync=settings.vault_audit_fsync,
        key=key,
        anchor_path=anchor,
        anchor_may_be_missing=may_be_missing,
    )


class VaultContainer(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    keys = providers.Singleton(key_store_from_settings, settings)
    cipher = providers.Singleton(Cipher, keys)
    audit = providers.Singleton(audit_from_settings, settings, keys)
    policy = providers.Singleton(default_policy)
    callers = providers.Singleton(CertificateCallerResolver)
    servicer = providers.Singleton(VaultServicer, cipher=cipher, policy=policy, callers=callers, keys=keys, audit=audit)
