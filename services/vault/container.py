"""Wiring: settings → keyring → cipher → servicer. The only place adapters are chosen."""

from __future__ import annotations

from dependency_injector import containers, providers

from services.vault.crypto import Cipher
from services.vault.grpc.servicer import VaultServicer
from services.vault.policy import PeerCallerResolver, Policy, default_policy
from services.vault.settings import VaultSettings, keyring_from_settings, load_settings


def policy_from_settings(settings: VaultSettings) -> Policy:
    return default_policy(allow_remote_unauthenticated=settings.vault_unauthenticated_peers == "any")


class VaultContainer(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    keyring = providers.Singleton(keyring_from_settings, settings)
    cipher = providers.Singleton(Cipher, keyring)
    policy = providers.Singleton(policy_from_settings, settings)
    callers = providers.Singleton(PeerCallerResolver)
    servicer = providers.Singleton(VaultServicer, cipher=cipher, policy=policy, callers=callers)
