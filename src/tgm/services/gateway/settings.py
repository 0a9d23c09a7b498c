"""Gateway configuration (environment variables). Its one secret: the key that tags the updates it stores in Redis."""

from __future__ import annotations

from typing import TypedDict

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tgm.domain.updates import MAX_UPDATE_BYTES


# uvicorn on uvloop with the httptools parser (C) instead of asyncio's default loop and h11 (pure Python).
# No X-Forwarded-* rewriting (the gateway never reads the client address; a middleware layer per request) and no
# Server header (one header fewer to validate and write per response).
class FastServerOptions(TypedDict):
    """The keyword arguments of `uvicorn.run` that FAST_SERVER sets (typed, so `**FAST_SERVER` type-checks)."""

    loop: str
    http: str
    proxy_headers: bool
    server_header: bool


FAST_SERVER: FastServerOptions = {"loop": "uvloop", "http": "httptools", "proxy_headers": False, "server_header": False}


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    # Processes serving webhooks on the one port (uvicorn workers): one per core the gateway may use.
    gateway_workers: int = Field(default=1, ge=1, le=64)
    registry_addr: str = "127.0.0.1:50052"
    # Empty = embedded mode (`python -m tgm.apps.embedded`): in-process broker, dispatcher in the same process.
    redis_url: str = ""
    # Tags every update stored in Redis (HMAC; the dispatchers hold the same key and drop what does not verify).
    envelope_signing_key: SecretStr = SecretStr("")
    max_update_bytes: int = Field(default=MAX_UPDATE_BYTES, ge=1024)
    route_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    route_negative_ttl_seconds: float = Field(default=2.0, ge=0)
    # How often every cached route is checked against its bot's version (one registry call per 1000 routes): a
    # rotated secret or a disabled or deleted bot stops being accepted within about this long. 0 turns it off.
    route_revalidate_seconds: float = Field(default=1.0, ge=0)
    # Registry lookups on a route-cache miss run on their own thread budget, so a flood of unknown
    # public_ids cannot take the threads that `enqueue` needs.
    route_lookup_concurrency: int = Field(default=8, ge=1, le=256)
    retry_after_seconds: int = Field(default=5, ge=1, le=3600)
    # /readyz probes the registry and Redis at most this often; callers in between get the last answer.
    readiness_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    log_level: str = "INFO"
    # Only used in embedded mode, where this process also runs the dispatcher.
    vault_addr: str = "127.0.0.1:50051"
    telegram_api_base_url: str = "https://api.telegram.org"
