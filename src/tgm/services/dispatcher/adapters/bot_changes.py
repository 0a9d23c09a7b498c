"""Bot changes made through the manager bot reach every dispatcher's bot cache at once, not after its TTL.

The manager's admin calls go through `AnnouncingBotAdmin`: once the registry accepted a change (settings,
maintenance, status, secret, deletion, its team: an invite redeemed, an admin revoked or leaving, a new owner's
registration) the bot id is announced. Embedded, that forgets the bot in the process's
cache; on Redis it is also published on `CHANNEL`, and a listener thread in every dispatcher process forgets it
there. Without it a user's message right after "maintenance off" could still get the maintenance treatment for up
to the cache's TTL in the other processes. The TTL (and the versions check) stays the backstop: for changes made
elsewhere (the operator CLI), for a lost message, or while Redis is away (the listener then forgets everything
when it reconnects, since it may have missed announcements).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from tgm.domain.administration.ports import BotAdmin, Registration, SettingsChange
from tgm.domain.bot_roles import CoAdmin
from tgm.domain.bots import Bot

logger = logging.getLogger(__name__)

CHANNEL = "tgm:bots:changed"
MAX_BOT_ID_CHARS = 64


class ForgettingDirectory(Protocol):
    def forget(self, bot_id: str) -> None: ...

    def invalidate(self) -> None: ...


class AnnouncingBotAdmin:
    """The BotAdmin port, announcing each bot a call changed; reads and stats pass straight through."""

    def __init__(self, admin: BotAdmin, announce: Callable[[str], None]) -> None:
        self._admin = admin
        self._announce = announce

    def __getattr__(self, name: str) -> Any:
        return getattr(self._admin, name)

    def _announced(self, bot: Bot) -> Bot:
        self._announce(bot.id)
        return bot

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        return self._announced(self._admin.set_enabled(actor_id, bot_id, enabled))

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        return self._announced(self._admin.rotate_secret(actor_id, bot_id))

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        return self._announced(self._admin.delete(actor_id, bot_id))

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        return self._announced(self._admin.update_settings(actor_id, bot_id, change))

    # Team changes (issue 15): the inbox's cached team of the bot (adapters/bot_teams.py) is forgotten with it.
    def redeem_invite(self, actor_id: int, code: str) -> Bot:
        return self._announced(self._admin.redeem_invite(actor_id, code))

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]:
        bot, removed = self._admin.revoke_admin(actor_id, membership_id)
        return self._announced(bot), removed

    def leave(self, actor_id: int, bot_id: str) -> Bot:
        return self._announced(self._admin.leave(actor_id, bot_id))

    # A registration may refresh an existing bot (a new token, re-activated): announced as a change too.
    def register_sealed(self, owner_id: int, sealed_token: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        registration = self._admin.register_sealed(owner_id, sealed_token, sealed_by_bot_id, chat_id)
        self._announce(registration.bot.id)
        return registration

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        registration = self._admin.register_managed(owner_id, managed_bot_user_id)
        self._announce(registration.bot.id)
        return registration


def announcer(client: Any, directory: ForgettingDirectory) -> Callable[[str], None]:
    """Forgets the bot here and, on Redis, tells the other processes; a failed publish is logged, never raised
    (the change is made; the other caches catch up by TTL)."""

    def announce(bot_id: str) -> None:
        directory.forget(bot_id)
        if client is None:
            return
        try:
            client.publish(CHANNEL, bot_id)
        except Exception as exc:
            logger.warning("bot change not announced", extra={"bot_id": bot_id, "error": type(exc).__name__})

    return announce


def start_listener(
    client: Any, directory: ForgettingDirectory, *, reconnect_seconds: float = 1.0
) -> Callable[[], None]:
    """A daemon thread forgetting every announced bot; returns a stop function."""
    stopped = threading.Event()

    def listen() -> None:
        while not stopped.is_set():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                directory.invalidate()  # announcements made while not subscribed are lost: start afresh
                while not stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message.get("data")
                    bot_id = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                    if 0 < len(bot_id) <= MAX_BOT_ID_CHARS:
                        directory.forget(bot_id)
            except Exception as exc:
                logger.warning("bot change listener reconnecting", extra={"error": type(exc).__name__})
                stopped.wait(reconnect_seconds)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection: nothing to do about it
                    pubsub.close()

    thread = threading.Thread(target=listen, name="bot-changes", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=5)

    return stop
