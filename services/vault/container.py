"""Wiring: settings → key store → cipher → audit log → servicer. The only place adapters are chosen."""

from __future__ import annotations

from datetime import timedelta

from dependency_injector import containers, providers

from services.vault.audit import AuditLog
from services.vault.crypto import Cipher
from services.vault.grpc.servicer import VaultServicer
from services.vault.keystore import KeyStore, lock_keyring
from services.vault.policy import CertificateCallerResolver, default_policy
from services.vault.settings import VaultSettings, env_keys, load_settings

_HELD_LOCKS: list[int] = []  # keyring lock descriptors, held until the process exits


def key_store_from_settings(settings: VaultSettings) -> KeyStore:
    if settings.vault_keyring_file is not None:
        _HELD_LOCKS.append(lock_keyring(settings.vault_keyring_file))  # a second vault on this keyring stops here
    return KeyStore.open(
        settings.vault_keyring_file, env_keys(settings), rotation_period=timedelta(days=settings.vault_rotation_days)
    )


def audit_from_settings(settings: VaultSettings) -> AuditLog:
    return AuditLog(settings.vault_audit_file, fsync=settings.vault_audit_fsync)


class VaultContainer(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    keys = providers.Singleton(key_store_from_settings, settings)
    cipher = providers.Singleton(Cipher, keys)
    audit = providers.Singleton(audit_from_settings, settings)
    policy = providers.Singleton(default_policy)
    callers = providers.Singleton(CertificateCallerResolver)
    servicer = providers.Singleton(VaultServicer, cipher=cipher, policy=policy, callers=callers, keys=keys, audit=audit)
