"""Only src/tgm/services/vault can load key material: no other settings class in tgm has a field for it (issue 4).

Discovers the settings instead of listing them: every module under src/tgm/ (stubs aside) that mentions
BaseSettings is imported, and every BaseSettings subclass defined there is checked — a new service's settings
are covered without anyone remembering to add them here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
VAULT_SETTINGS = "tgm.services.vault.settings.VaultSettings"
KEY_MATERIAL = re.compile(r"key|encryption|^vault_", re.IGNORECASE)  # *key*, *keyring*, ENCRYPTION_*, VAULT_*
NOT_VAULT_KEYS = {
    # An address, not key material: how a client reaches the vault.
    "vault_addr",
    # DESIGN.md §4: the dispatcher's HMAC key for signing its own inline-keyboard callback data. It protects
    # callback integrity inside the dispatcher, never seals or opens a vault secret, and is explicitly not a
    # vault key — allow-listed by name, for the dispatcher only.
    "DispatcherSettings.callback_signing_key",
    "DispatcherSettings.callback_signing_key_previous",  # the same key's predecessors during a rotation
    # Issue 11, item 5: the HMAC key that tags the updates the gateway stores in Redis and the dispatchers verify.
    # An integrity key shared by those two only; it never seals or opens a vault secret.
    "GatewaySettings.envelope_signing_key",
    "DispatcherSettings.envelope_signing_key",
}


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _all_settings() -> dict[str, type[BaseSettings]]:
    src = REPO / "src"
    files = sorted((src / "tgm").rglob("*.py"))
    assert files, "src/tgm moved? (docs/adr/005-package-layout.md)"
    for path in files:
        if "BaseSettings" in path.read_text(encoding="utf-8"):
            importlib.import_module(".".join(path.relative_to(src).with_suffix("").parts))
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for cls in _subclasses(BaseSettings)
        if cls.__module__.startswith("tgm.")
    }


def _names(cls: type[BaseSettings]) -> dict[str, str]:
    """field name → every name it can be set by (the field name, its alias and validation alias)."""
    names: dict[str, str] = {}
    for field_name, info in cls.model_fields.items():
        aliases = [field_name, info.alias, info.validation_alias]
        names[field_name] = " ".join(str(alias) for alias in aliases if alias)
    return names


def test_only_the_vault_settings_have_key_material_fields() -> None:
    found = _all_settings()
    assert VAULT_SETTINGS in found
    assert {
        "tgm.services.gateway.settings.GatewaySettings",
        "tgm.services.dispatcher.settings.DispatcherSettings",
    } <= set(found)
    vault_fields = _names(found[VAULT_SETTINGS])
    assert {"encryption_key", "vault_keyring_file"} <= {name for name in vault_fields if KEY_MATERIAL.search(name)}
    offenders = [
        f"{qualified}.{field_name}"
        for qualified, cls in found.items()
        if qualified != VAULT_SETTINGS
        for field_name, spelled in _names(cls).items()
        if KEY_MATERIAL.search(spelled)
        and field_name not in NOT_VAULT_KEYS
        and f"{cls.__qualname__}.{field_name}" not in NOT_VAULT_KEYS
    ]
    assert offenders == []


def test_the_check_would_catch_a_key_field() -> None:
    class LeakySettings(BaseSettings):
        vault_keyring_file: str = ""
        some_encryption_key: str = ""
        vault_addr: str = ""

    flagged = {name for name, spelled in _names(LeakySettings).items() if KEY_MATERIAL.search(spelled)}
    assert flagged - NOT_VAULT_KEYS == {"vault_keyring_file", "some_encryption_key"}
