"""Dispatcher configuration (environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Required by `serve`; empty only under the embedded composition (apps/embedded), which brings its own broker.
    redis_url: str = ""
    registry_addr: str = "127.0.0.1:50052"
    vault_addr: str = "127.0.0.1:50051"
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_timeout_seconds: float = Field(default=10.0, gt=0)
    dispatcher_threads: int = Field(default=8, ge=1, le=256)
    bot_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    dedup_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    log_level: str = "INFO"
