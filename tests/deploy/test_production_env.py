"""docker-compose.yml and deploy/k8s run tgm with APP_ENV=prod, and what each service gets there passes the
production checks (src/tgm/config/production.py): a deployment that followed its README starts."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.deploy.test_compose import REQUIRED_ENV, _resolved
from tests.deploy.test_k8s import _env, _settings, _workloads
from tgm.config.deployment import DeploymentSettings
from tgm.config.production import production_problems
from tgm.grpc_runtime.tls import INSECURE_DEV_FLAG, TLS_ENV
from tgm.services.botregistry.settings import RegistrySettings
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.gateway.settings import GatewaySettings
from tgm.services.vault.settings import VaultSettings

SETTINGS: dict[str, Callable[[], BaseSettings]] = {
    "vault": VaultSettings,
    "botregistry": RegistrySettings,
    "gateway": GatewaySettings,
    "dispatcher": DispatcherSettings,
}
# What an operator following the READMEs supplies: random keys and passwords, a bot token, a public host.
SECRETS = {name: secrets.token_urlsafe(32) for name in REQUIRED_ENV} | {
    "ENCRYPTION_KEY": "base64:" + secrets.token_urlsafe(32),
    "MANAGER_BOT_TOKEN": "5550001234:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x",
    "TGM_PUBLIC_HOST": "tgm.example.org",
}


def _problems(monkeypatch: pytest.MonkeyPatch, service: str, env: dict[str, str]) -> list[str]:
    """production_problems with exactly `env` for everything the settings and the checks read."""
    read = {field.upper() for cls in (*SETTINGS.values(), DeploymentSettings) for field in cls.model_fields}
    for name in read | {*TLS_ENV, INSECURE_DEV_FLAG}:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env.get("APP_ENV") == "prod", service
    return production_problems(SETTINGS[service](), env, DeploymentSettings())


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_compose_runs_each_service_in_production_and_it_passes(
    monkeypatch: pytest.MonkeyPatch, service: str, tmp_path: Path
) -> None:
    done = _resolved(SECRETS, tmp_path / "empty.env")
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    env = {name: str(value) for name, value in resolved[service]["environment"].items() if value is not None}
    assert _problems(monkeypatch, service, env) == []


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_kubernetes_runs_each_service_in_production_and_it_passes(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    container = _workloads()[f"tgm-{service}"]["spec"]["template"]["spec"]["containers"][0]
    given = {
        name: value if isinstance(value, str) else _secret_value(service, name)
        for name, value in _env(container).items()
    }
    assert _problems(monkeypatch, service, _settings() | given) == []


def _secret_value(service: str, variable: str) -> str:
    """What the README's `kubectl create secret` lines put in each secret."""
    if variable == "REDIS_URL":
        return f"rediss://{service}:{secrets.token_urlsafe(16)}@redis:6379/0?ssl_ca_certs=/certs/ca.pem"
    if variable == "DB_URL":
        return "postgresql+psycopg://tgm_app:pw@db:5432/tgm"
    return SECRETS[variable]
