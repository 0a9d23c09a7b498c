"""Configuration of botregistry, from the environment. Holds no key material (only the vault does)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_URL = "sqlite:///./.run/registry.db"


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    registry_listen: str = "127.0.0.1:50052"
    # Prometheus `/metrics` and `/healthz` + `/readyz` (the database answers) on their own HTTP server; 0 = off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    db_url: str = DEFAULT_DB_URL
    db_pool_size: int = 20
    db_max_overflow: int = 40
    vault_addr: str = "127.0.0.1:50051"
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_timeout_seconds: float = 10.0
    webhook_base_url: str = "http://127.0.0.1:8080"
    log_level: str = "INFO"
    grpc_max_workers: int = 16
    shutdown_grace_seconds: float = 5.0
    # The event trail keeps this many days; the registry purges older events every EVENT_PURGE_INTERVAL_SECONDS
    # (0: never in the process; `python -m tgm.services.botregistry purge-events` from a scheduler instead).
    event_retention_days: int = Field(default=180, ge=1)
    event_purge_interval_seconds: float = Field(default=3600.0, ge=0)
    # The manager bot's token: given to the registry only, sealed by the vault at start (never stored in clear).
    manager_bot_token: SecretStr = SecretStr("")
