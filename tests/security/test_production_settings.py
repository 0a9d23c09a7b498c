"""APP_ENV=prod refuses every setting fit only for development, naming each (issue 9): no mutual TLS, the development
flag, Redis without a user or TLS, missing or placeholder signing keys, private API targets allowed, plain-HTTP
Telegram or webhook URLs, a vault without its keyring file or with its bootstrap key or without audit fsync."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from tgm.config.deployment import DeploymentSettings
from tgm.config.production import production_problems, production_refusal
from tgm.services.botregistry.settings import RegistrySettings
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.gateway.settings import GatewaySettings
from tgm.services.vault.settings import VaultSettings

REPO = Path(__file__).resolve().parents[2]
ENVELOPE_KEY = "k3Y-for-Envelopes_0123456789abcdefghijklmnop"
CALLBACK_KEY = "Cb-key_ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zz"
TLS = {"TLS_CA_FILE": "/certs/ca.pem", "TLS_CERT_FILE": "/certs/x.pem", "TLS_KEY_FILE": "/certs/x.key"}
# A production environment each service accepts.
CLEAN: dict[str, dict[str, str]] = {
    "gateway": TLS | {"REDIS_URL": "rediss://gateway:pw@redis:6379/0", "ENVELOPE_SIGNING_KEY": ENVELOPE_KEY},
    "dispatcher": TLS
    | {
        "REDIS_URL": "rediss://dispatcher:pw@redis:6379/0",
        "ENVELOPE_SIGNING_KEY": ENVELOPE_KEY,
        "CALLBACK_SIGNING_KEY": CALLBACK_KEY,
    },
    "botregistry": TLS | {"WEBHOOK_BASE_URL": "https://tgm.example.org"},
    "vault": TLS | {"VAULT_KEYRING_FILE": "/vault-data/keyring.json"},
}
SETTINGS: dict[str, Callable[[], BaseSettings]] = {
    "gateway": GatewaySettings,
    "dispatcher": DispatcherSettings,
    "botregistry": RegistrySettings,
    "vault": VaultSettings,
}
VARIABLES = sorted(
    {name for env in CLEAN.values() for name in env}
    | {"TGM_INSECURE_DEV", "EXTERNAL_API_ALLOW_PRIVATE", "TELEGRAM_API_BASE_URL", "ENCRYPTION_KEY"}
    | {"VAULT_AUDIT_FSYNC", "APP_ENV", "SENTRY_DSN", "CALLBACK_SIGNING_KEY_PREVIOUS"}
)


def _problems(
    monkeypatch: pytest.MonkeyPatch, service: str, changes: dict[str, str | None], dsn: str = ""
) -> list[str]:
    """production_problems for `service` under its clean environment with `changes` (None removes a variable)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = {name: value for name, value in (CLEAN[service] | changes).items() if value is not None}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deployment = DeploymentSettings(app_env="prod", sentry_dsn=dsn)
    return production_problems(SETTINGS[service](), env, deployment)


@pytest.mark.parametrize("service", sorted(CLEAN))
def test_a_clean_production_environment_passes(monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    assert _problems(monkeypatch, service, {}, dsn="https://public@sentry.example.org/1") == []


INSECURE = [
    *[(service, {"TGM_INSECURE_DEV": "1"}, "TGM_INSECURE_DEV=1") for service in sorted(CLEAN)],
    *[(service, dict.fromkeys(TLS), "TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE") for service in sorted(CLEAN)],
    ("vault", {"TLS_KEY_FILE": None}, "missing TLS_KEY_FILE"),
    ("gateway", {"REDIS_URL": "rediss://redis:6379/0"}, "REDIS_URL must name this service's Redis user"),
    ("gateway", {"REDIS_URL": "redis://gateway:pw@redis:6379/0"}, "REDIS_URL reaches redis without TLS"),
    ("dispatcher", {"REDIS_URL": "rediss://default:pw@redis:6379/0"}, "Redis's `default` (operator) user"),
    ("dispatcher", {"REDIS_URL": None}, "REDIS_URL is not set"),
    ("gateway", {"ENVELOPE_SIGNING_KEY": None}, "ENVELOPE_SIGNING_KEY is required"),
    ("dispatcher", {"ENVELOPE_SIGNING_KEY": "short-key-Abcdefgh"}, "ENVELOPE_SIGNING_KEY must be at least 32 bytes"),
    ("gateway", {"ENVELOPE_SIGNING_KEY": "x" * 40}, "ENVELOPE_SIGNING_KEY looks like a placeholder"),
    ("dispatcher", {"CALLBACK_SIGNING_KEY": None}, "CALLBACK_SIGNING_KEY must be at least 32 bytes"),
    ("dispatcher", {"CALLBACK_SIGNING_KEY": "changeme" * 5}, "CALLBACK_SIGNING_KEY looks like a placeholder"),
    ("dispatcher", {"CALLBACK_SIGNING_KEY": ENVELOPE_KEY}, "CALLBACK_SIGNING_KEY and ENVELOPE_SIGNING_KEY"),
    ("dispatcher", {"EXTERNAL_API_ALLOW_PRIVATE": "true"}, "EXTERNAL_API_ALLOW_PRIVATE is on"),
    ("dispatcher", {"TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081"}, "TELEGRAM_API_BASE_URL is not https"),
    ("botregistry", {"TELEGRAM_API_BASE_URL": "http://emulator:8081"}, "TELEGRAM_API_BASE_URL is not https"),
    ("botregistry", {"WEBHOOK_BASE_URL": None}, "WEBHOOK_BASE_URL is not https (http://127.0.0.1:8080)"),
    ("vault", {"VAULT_KEYRING_FILE": None}, "VAULT_KEYRING_FILE is not set"),
    ("vault", {"ENCRYPTION_KEY": "base64:" + "A" * 43 + "="}, "ENCRYPTION_KEY is given to the serving vault"),
    ("vault", {"VAULT_AUDIT_FSYNC": "false"}, "VAULT_AUDIT_FSYNC is off"),
]


@pytest.mark.parametrize(
    ("service", "changes", "named"), INSECURE, ids=[f"{s}-{'-'.join(c) or 'x'}" for s, c, _ in INSECURE]
)
def test_each_insecure_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, service: str, changes: dict[str, str | None], named: str
) -> None:
    [problem] = _problems(monkeypatch, service, changes)
    assert named in problem


def test_an_error_tracking_endpoint_in_clear_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = _problems(monkeypatch, "gateway", {}, dsn="http://public@sentry.example.org/1")
    assert problem.startswith("SENTRY_DSN is not https")


def test_a_password_in_a_named_url_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = _problems(monkeypatch, "dispatcher", {"TELEGRAM_API_BASE_URL": "http://user:s3cret@bot-api:8081"})
    assert "s3cret" not in problem and "TELEGRAM_API_BASE_URL" in problem


def test_only_prod_refuses_and_an_unknown_app_env_is_refused_too() -> None:
    insecure = {"TGM_INSECURE_DEV": "1"}
    assert production_refusal("svc", None, environ=insecure, deployment=DeploymentSettings(app_env="dev")) is None
    unknown = production_refusal("svc", None, environ=TLS, deployment=DeploymentSettings(app_env="production"))
    assert unknown == "svc: refusing to start: APP_ENV must be one of dev, prod (got 'production')"
    refusal = production_refusal(
        "svc", None, also=["the caller's own"], environ=insecure, deployment=DeploymentSettings(app_env="prod")
    )
    assert refusal is not None
    lines = refusal.splitlines()
    assert lines[0] == "svc: refusing to start with APP_ENV=prod, 3 insecure setting(s):"
    assert lines[1] == "  - the caller's own"
    assert lines[2].startswith("  - TGM_INSECURE_DEV=1") and lines[3].startswith("  - mutual TLS is off")
    assert production_refusal("svc", None, environ=TLS, deployment=DeploymentSettings(app_env="prod")) is None


# --- every entry point refuses, listing all its problems at once -------------------------------------------------

ENTRY_POINTS = {
    "tgm.services.gateway": (["serve"], {"REDIS_URL": "redis://redis:6379/0"}, ["REDIS_URL", "ENVELOPE_SIGNING_KEY"]),
    "tgm.services.dispatcher": (
        ["serve"],
        {"REDIS_URL": "rediss://dispatcher:pw@redis:6379/0", "EXTERNAL_API_ALLOW_PRIVATE": "1"},
        ["EXTERNAL_API_ALLOW_PRIVATE", "ENVELOPE_SIGNING_KEY", "CALLBACK_SIGNING_KEY"],
    ),
    "tgm.services.botregistry": (["serve"], {"TELEGRAM_API_BASE_URL": "http://127.0.0.1:1"}, ["TELEGRAM_API_BASE_URL"]),
    "tgm.services.vault": (["serve"], {"VAULT_AUDIT_FSYNC": "false"}, ["VAULT_KEYRING_FILE", "VAULT_AUDIT_FSYNC"]),
    "tgm.apps.embedded": ([], {}, ["tgm.apps.embedded keeps queued updates in memory"]),
}


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_each_entry_point_refuses_insecure_production_settings(module: str, tmp_path: Path) -> None:
    args, insecure, named = ENTRY_POINTS[module]
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        APP_ENV="prod",
        TGM_INSECURE_DEV="1",  # would let every one of them start without TLS in development
        DB_URL=f"sqlite:///{tmp_path / 'registry.db'}",
        VAULT_AUDIT_FILE=str(tmp_path / "audit.log"),
        ENCRYPTION_KEY="base64:" + "Q" * 42 + "A=",
        **insecure,
    )
    done = subprocess.run(
        [sys.executable, "-m", module, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{module}: refusing to start with APP_ENV=prod" in done.stderr
    for name in ["TGM_INSECURE_DEV=1", "mutual TLS is off", *named]:
        assert name in done.stderr, (name, done.stderr[-2000:])
    assert "allows a development run" not in done.stderr  # the flag is refused here, not suggested
    # Refused before touching anything: no database, no audit log.
    assert not (tmp_path / "registry.db").exists() and not (tmp_path / "audit.log").exists()
