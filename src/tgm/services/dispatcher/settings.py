"""Dispatcher configuration (environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Required by `serve`; empty only under the embedded composition (tgm.apps.embedded), which brings its own broker.
    redis_url: str = ""
    registry_addr: str = "127.0.0.1:50052"
    vault_addr: str = "127.0.0.1:50051"
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_timeout_seconds: float = Field(default=10.0, gt=0)
    dispatcher_threads: int = Field(default=8, ge=1, le=256)
    bot_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    dedup_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    log_level: str = "INFO"
    # Prometheus `/metrics` and the `/healthz` + `/readyz` probes on their own small HTTP server; 0 = off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # Verifies the gateway's tag on every update read from Redis (the gateway holds the same key): ≥ 32 bytes.
    envelope_signing_key: SecretStr = SecretStr("")

    # The manager bot (issue 3). The signing key is the dispatcher's own (never a vault key): ≥ 32 bytes.
    callback_signing_key: SecretStr = SecretStr("")
    # A rotation: the keys replaced (comma-separated), still accepted until the buttons they signed expire
    # (callback_ttl_seconds); new buttons are signed with callback_signing_key and name it by its key id.
    callback_signing_key_previous: SecretStr = SecretStr("")
    callback_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    # Comma/space separated Telegram user ids; empty = any manager-bot user manages their own bots.
    allowed_admin_ids: str = ""
    admin_session_ttl_seconds: int = Field(default=1800, ge=1)
    conversation_ttl_seconds: int = Field(default=600, ge=10)

    # Inbound abuse control (per bot + user + action); see src/tgm/domain/inbound.py for the formats.
    rate_limits_json: str = ""
    rate_limit_default_limit: int = Field(default=30, ge=1)
    rate_limit_default_window: float = Field(default=60.0, gt=0)
    cooldowns_json: str = ""
    # CAPTCHA for new users (src/tgm/domain/captcha.py): a bot in "auto" mode is under attack for
    # `captcha_attack_seconds` once more than `captcha_new_users_per_minute` new users reached it in a minute (after
    # its first `captcha_warmup_seconds`, which only learn who its users are).
    captcha_new_users_per_minute: int = Field(default=60, ge=1)
    captcha_attack_seconds: float = Field(default=900.0, ge=10)
    captcha_warmup_seconds: float = Field(default=3600.0, ge=0)
    captcha_max_attempts: int = Field(default=3, ge=1, le=10)
    captcha_lock_seconds: float = Field(default=600.0, ge=10)
    # Per-chat drain: lock TTL, attempts before an update goes to the dead letters. The lock is renewed every third
    # of its TTL while its holder works (one lock keeper thread per process), so the TTL only bounds how long a
    # dead worker's chat stays blocked (issue 10: a replaced worker's chats answer again within seconds).
    chat_lock_ttl_seconds: float = Field(default=3.0, gt=0)
    update_max_attempts: int = Field(default=4, ge=1)
    update_min_backoff_seconds: float = Field(default=0.5, ge=0)
    update_max_backoff_seconds: float = Field(default=10.0, ge=0)
    # Dramatiq's Redis broker: a worker process silent for `broker_heartbeat_timeout_ms` counts as dead, and a
    # queue-maintenance pass (every `broker_maintenance_interval_ms`) puts its unacked messages back. Keep the
    # timeout above chat_lock_ttl_seconds: a drain redelivered while the dead worker's chat lock still stands finds
    # the chat busy. A live process heartbeats several times a second (every fetch and ack of each of its queue
    # consumers, idle ones every worker_timeout), so 5 s is far from a false death (and a false one only costs a
    # drain that finds its chat busy). Dramatiq's defaults (60 s, maintenance by a 0.1 % chance per call) let a
    # dead worker's chats wait minutes; here maintenance runs by the clock (adapters/redis_broker.py).
    broker_heartbeat_timeout_ms: int = Field(default=5_000, ge=1000)
    broker_maintenance_interval_ms: int = Field(default=1_000, ge=50, le=60_000)
    # Outbound flood control (Telegram's limits) and its safety margin on each window.
    outbound_per_bot_per_second: int = Field(default=30, ge=1)
    outbound_per_chat_per_second: int = Field(default=1, ge=1)
    outbound_per_group_per_minute: int = Field(default=20, ge=1)
    outbound_window_margin: float = Field(default=0.2, ge=0, le=1)
    # Broadcasts (issue 15) take a send slot only while fewer than outbound_per_bot_per_second minus this many were
    # granted in the bot's window: replies always have this many per second to themselves, and more when the
    # broadcast is not using them.
    broadcast_reserved_per_second: int = Field(default=5, ge=1)
    # External-API commands.
    circuit_breaker_fail_max: int = Field(default=5, ge=1)
    circuit_breaker_timeout: float = Field(default=60.0, gt=0)
    external_api_max_attempts: int = Field(default=4, ge=1)
    external_api_retry_base_seconds: float = Field(default=1.0, ge=0)
    external_api_retry_max_seconds: float = Field(default=60.0, ge=0)
    external_api_lock_seconds: float = Field(default=300.0, gt=0)
    # Tests only: lets API commands call loopback/private addresses (the SSRF policy refuses them).
    external_api_allow_private: bool = False
    # Per-update stats are counted in Redis (or memory) and sent to the registry in batches this often (issue 8).
    stats_flush_interval_seconds: float = Field(default=2.0, gt=0)
    # A direct send's "sent" mark: written at once (one Redis round trip), or with the update's completion (one round
    # trip less per reply, but a worker killed after the send and before the completion sends that reply again on
    # the re-run: src/tgm/services/dispatcher/adapters/sent_marks.py). Off by default: exactly one reply comes first.
    defer_sent_marks: bool = False

    @property
    def backend(self) -> Literal["redis", "memory"]:
        """Where the dispatcher's shared state lives: Redis when REDIS_URL is set (every worker process shares it),
        else in memory (tgm.apps.embedded: one process). The container chooses every adapter on this one value."""
        return "redis" if self.redis_url else "memory"

    @model_validator(mode="after")
    def _redelivery_outlives_the_chat_lock(self) -> DispatcherSettings:
        # A dead worker's drain is redelivered after the heartbeat timeout; if its chat lock were still standing then,
        # the redelivered drain would find the chat busy and return, leaving the update until the user writes again.
        if self.broker_heartbeat_timeout_ms / 1000 <= self.chat_lock_ttl_seconds:
            raise ValueError("BROKER_HEARTBEAT_TIMEOUT_MS must be longer than CHAT_LOCK_TTL_SECONDS")
        return self
