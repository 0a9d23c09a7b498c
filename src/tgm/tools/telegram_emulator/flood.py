"""Flood control like the real server's: per bot per second, per private chat per second, per group per minute."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from tgm.domain.ports import Clock


@dataclass
class FloodSettings:
    """On by default, as on Telegram: a bot that sends too fast gets 429 with retry_after (turn it off only in a
    test or a benchmark that measures something else, and say so)."""

    enabled: bool = True
    per_bot_per_second: int = 30
    per_chat_per_second: int = 1
    per_group_per_minute: int = 20


@dataclass
class FloodControl:
    """Sliding windows of send times; a refused send is not counted."""

    clock: Clock
    settings: FloodSettings = field(default_factory=FloodSettings)
    _hits: dict[tuple[object, ...], deque[float]] = field(default_factory=dict)

    def reset(self) -> None:
        self._hits.clear()

    def check(self, bot_id: int, chat_id: int, chat_type: str) -> int | None:
        """Records one send and returns None, or returns the seconds to wait (≥ 1) without recording."""
        if not self.settings.enabled:
            return None
        now = self.clock.monotonic()
        windows: list[tuple[tuple[object, ...], int, float]] = [
            (("bot", bot_id), self.settings.per_bot_per_second, 1.0),
        ]
        if chat_type == "private":
            windows.append((("chat", bot_id, chat_id), self.settings.per_chat_per_second, 1.0))
        else:
            windows.append((("group", bot_id, chat_id), self.settings.per_group_per_minute, 60.0))
        wait = 0.0
        for key, limit, span in windows:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - span:
                hits.popleft()
            if len(hits) >= limit:
                wait = max(wait, hits[len(hits) - limit] + span - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        for key, _, _ in windows:
            self._hits[key].append(now)
        return None
