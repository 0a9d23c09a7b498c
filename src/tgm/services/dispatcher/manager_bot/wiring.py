"""Factories the dispatcher's container uses for the manager bot (adapters chosen by what is configured)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from tgm.domain.callback_tokens import MIN_KEY_BYTES, CallbackTokens
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.manager_bot.ports import AdminSessions, ConversationStore, UsedButtons
from tgm.domain.ports import Clock
from tgm.services.dispatcher.manager_bot.state import (
    InMemoryAdminSessions,
    InMemoryConversationStore,
    InMemoryUsedButtons,
    RedisAdminSessions,
    RedisConversationStore,
    RedisUsedButtons,
)

logger = logging.getLogger(__name__)


def signing_key(configured: str) -> bytes:
    """CALLBACK_SIGNING_KEY (≥ 32 bytes); a random per-process key when unset (single-process dev only)."""
    key = configured.encode("utf-8")
    if len(key) >= MIN_KEY_BYTES:
        return key
    if configured:
        raise ValueError(f"CALLBACK_SIGNING_KEY must have at least {MIN_KEY_BYTES} bytes")
    logger.warning("CALLBACK_SIGNING_KEY is not set: using a per-process key (buttons break across processes)")
    return secrets.token_bytes(32)


def callback_tokens(key: str, clock: Clock, ttl_seconds: int, previous: str = "") -> CallbackTokens:
    """`previous`: comma-separated keys still accepted during a rotation (each ≥ 32 bytes)."""
    previous_keys = [part.strip().encode("utf-8") for part in previous.split(",") if part.strip()]
    return CallbackTokens(signing_key(key), clock, ttl_seconds, previous_keys=previous_keys)


def conversation_store(client: Any) -> ConversationStore:
    return InMemoryConversationStore() if client is None else RedisConversationStore(client)


def admin_sessions(client: Any) -> AdminSessions:
    return InMemoryAdminSessions() if client is None else RedisAdminSessions(client)


def used_buttons(client: Any) -> UsedButtons:
    return InMemoryUsedButtons() if client is None else RedisUsedButtons(client)


def parse_admin_ids(raw: str) -> frozenset[int]:
    """'1, 2 3' → {1, 2, 3}; empty (or blank) → any manager-bot user may manage their own bots.

    Separators without a single id (e.g. ",", " , ") are refused: that is a list someone meant to fill,
    and reading it as "anyone" would open the manager bot to everybody.
    """
    parts = [part for part in raw.replace(",", " ").split() if part]
    if not parts and raw.strip():
        raise ValueError("ALLOWED_ADMIN_IDS has separators but no ids; leave it empty to allow anyone")
    try:
        ids = frozenset(int(part) for part in parts)
    except ValueError:
        raise ValueError("ALLOWED_ADMIN_IDS must be Telegram user ids separated by commas or spaces") from None
    if any(user_id <= 0 for user_id in ids):
        raise ValueError("ALLOWED_ADMIN_IDS must hold positive Telegram user ids")
    return ids


def manager_config(allowed_admin_ids: str, session_ttl_seconds: int, conversation_ttl_seconds: int) -> ManagerConfig:
    ids = parse_admin_ids(allowed_admin_ids)
    if ids:
        logger.info("manager bot admins: restricted", extra={"mode": "allow_list", "admins": len(ids)})
    else:
        logger.info("manager bot admins: anyone manages their own bots", extra={"mode": "open"})
    return ManagerConfig(
        allowed_admin_ids=ids,
        session_ttl_seconds=session_ttl_seconds,
        conversation_ttl_seconds=conversation_ttl_seconds,
    )


def callback_tokens_from(settings: Any, clock: Clock) -> CallbackTokens:
    return callback_tokens(
        settings.callback_signing_key.get_secret_value(),
        clock,
        settings.callback_ttl_seconds,
        settings.callback_signing_key_previous.get_secret_value(),
    )


def manager_config_from(settings: Any) -> ManagerConfig:
    return manager_config(
        settings.allowed_admin_ids, settings.admin_session_ttl_seconds, settings.conversation_ttl_seconds
    )
