"""What the dispatcher reports about a bot's users: who used it (the stats), who blocked it (Telegram's 403)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tgm.domain.administration.authorization import MAX_ID_CHARS
from tgm.domain.administration.ports import BlockedByUser, InteractionStats
from tgm.domain.ports import Clock


class InteractionReports:
    def __init__(self, stats: InteractionStats, clock: Clock) -> None:
        self._stats = stats
        self._clock = clock

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        if telegram_user_id <= 0:
            return
        self._stats.record(bot_id, telegram_user_id, (language_code or "")[:16] or None, self._clock.now())

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        """The dispatcher's report of users who blocked the bot (Telegram's 403); returns the rows marked. A time
        after the registry's clock counts as now."""
        now = self._clock.now()
        valid = [
            replace(entry, at=min(entry.at, now))
            for entry in entries
            if entry.telegram_user_id > 0 and 0 < len(entry.bot_id) <= MAX_ID_CHARS
        ]
        return self._stats.mark_blocked(valid) if valid else 0
