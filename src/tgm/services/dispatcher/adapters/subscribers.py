"""Subscribers who blocked a bot (issue 15): a send refused with Telegram's 403 "bot was blocked by the user" is
reported to the registry at once (MarkSubscribersBlocked). That is the rare failure path, never one call per
update; the user's next interaction, counted by the stats flusher, clears the mark in the registry."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from tgm.domain.administration.ports import BlockedByUser
from tgm.domain.ports import Clock

logger = logging.getLogger(__name__)


class BlockedSink(Protocol):
    """The registry's MarkSubscribersBlocked (src/tgm/registry_client/admin.py)."""

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int: ...


class RegistryBlockedUsers:
    def __init__(self, sink: BlockedSink, clock: Clock) -> None:
        self._sink = sink
        self._clock = clock

    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        try:
            self._sink.mark_blocked([BlockedByUser(bot_id, telegram_user_id, self._clock.now())])
        except Exception as error:  # best effort: the refused call is settled (dead-lettered) either way
            logger.warning("could not report a user who blocked the bot", extra={"error": type(error).__name__})
