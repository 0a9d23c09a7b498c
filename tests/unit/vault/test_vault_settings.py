from __future__ import annotations

import base64
import json
import os

import pytest

from tgm.services.vault.settings import VaultConfigError, decode_key, env_key, load_settings

_VARS = (
    "ENCRYPTION_KEY",
    "VAULT_KEYS",
    "VAULT_PRIMARY_KEY_VERSION",
    "VAULT_LISTEN",
    "VAULT_ROTATION_DAYS",
    "VAULT_KEYRING_FILE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def _b64(raw: bytes, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("ENCRYPTION_KEY", "base64:" + _b64(key))
    settings = load_settings()
    assert settings.vault_listen == "127.0.0.1:50051"
    assert env_key(settings) == key


def test_without_a_keyring_file_no_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """There is no serving from ENCRYPTION_KEY alone: the keys live in the keyring file, which `init` creates."""
    monkeypatch.setenv("ENCRYPTION_KEY", "base64:" + _b64(os.urandom(32)))
    with pytest.raises(VaultConfigError, match=r"VAULT_KEYRING_FILE is not set.*tgm\.services\.vault init"):
        load_settings().keyring_file()


@pytest.mark.parametrize(
    "form",
    [
        lambda raw: "base64:" + _b64(raw),
        lambda raw: _b64(raw),
        lambda raw: _b64(raw, urlsafe=True),
        lambda raw: _b64(raw, urlsafe=True).rstrip("="),
        lambda raw: "  base64:" + _b64(raw) + "\n",
    ],
)
def test_accepted_key_forms(form: object) -> None:
    raw = b"\xfb\xff" + os.urandom(30)  # forces '+/' vs '-_' to differ
    assert decode_key(form(raw), "ENCRYPTION_KEY") == raw  # type: ignore[operator]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("base64:" + _b64(os.urandom(16)), "32 bytes"),
        (_b64(os.urandom(31)), "32 bytes"),
        (_b64(os.urandom(33)), "32 bytes"),
        ("not base64 at all!!", "base64"),
        ("base64:" + "%" * 44, "base64"),
        ("base64:" + _b64(bytes(32)), "degenerate"),
    ],
)
def test_bad_encryption_key_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", value)
    with pytest.raises(VaultConfigError) as info:
        env_key(load_settings())
    message = str(info.value)
    assert "ENCRYPTION_KEY" in message
    assert reason in message
    stripped = value.strip().removeprefix("base64:")
    assert stripped not in message
    assert value not in message


def test_an_unset_key_is_none_so_init_makes_a_fresh_one() -> None:
    assert env_key(load_settings()) is None


def test_settings_repr_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = _b64(os.urandom(32))
    monkeypatch.setenv("ENCRYPTION_KEY", "base64:" + encoded)
    monkeypatch.setenv("VAULT_LISTEN", "127.0.0.1:1")
    settings = load_settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert encoded not in shown
    assert "127.0.0.1:1" in shown


def test_removed_multi_key_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rotation lives in VAULT_KEYRING_FILE; VAULT_KEYS / VAULT_PRIMARY_KEY_VERSION are no longer read.
    monkeypatch.setenv("VAULT_KEYS", json.dumps({"1": _b64(os.urandom(32))}))
    monkeypatch.setenv("VAULT_PRIMARY_KEY_VERSION", "2")
    settings = load_settings()  # set, they are not an error either
    assert env_key(settings) is None
    assert not {"vault_keys", "vault_primary_key_version"} & set(type(settings).model_fields)


def test_pydantic_errors_name_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ROTATION_DAYS", "sekrit-value")
    with pytest.raises(VaultConfigError) as info:
        load_settings()
    assert "VAULT_ROTATION_DAYS" in str(info.value)
    assert "sekrit-value" not in str(info.value)


def test_genkey_prints_a_key_the_vault_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    from tgm.apps.cli.vault import main

    assert main(["genkey"]) == 0
    first = capsys.readouterr().out.strip()
    assert first.startswith("base64:")
    assert len(decode_key(first, "ENCRYPTION_KEY")) == 32
    main(["genkey"])
    assert capsys.readouterr().out.strip() != first
