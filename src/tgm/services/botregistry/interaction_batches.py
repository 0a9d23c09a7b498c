"""RecordInteractions: the dispatcher's coalesced stats, validated and stored in one transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from tgm.domain.administration.ports import Interaction, InteractionBatchResult
from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_BOT_ID_CHARS = 64
MAX_LANGUAGE_CHARS = 16  # bot_users.language_code
MAX_MESSAGES_PER_ENTRY = 1_000_000  # far above what one flush interval can hold; guards the counter


class BatchTooLarge(ValueError):
    pass


class BatchStats(Protocol):
    def record_many(self, interactions: Sequence[Interaction]) -> tuple[int, int]: ...


class InteractionBatches:
    def __init__(self, stats: BatchStats, clock: Clock | None = None, max_batch: int = MAX_BATCH) -> None:
        self._stats = stats
        self._clock = clock or SystemClock()
        self._max_batch = max_batch

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def record(self, interactions: Sequence[Interaction]) -> InteractionBatchResult:
        """Malformed entries are skipped and counted, the rest stored; a seen_at after now counts as now."""
        if len(interactions) > self._max_batch:
            raise BatchTooLarge(f"at most {self._max_batch} interactions per call")
        now = self._clock.now()
        valid: list[Interaction] = []
        for item in interactions:
            if (
                not item.bot_id
                or len(item.bot_id) > MAX_BOT_ID_CHARS
                or item.telegram_user_id <= 0
                or not 1 <= item.messages <= MAX_MESSAGES_PER_ENTRY
            ):
                continue
            valid.append(
                dataclasses.replace(
                    item,
                    language_code=(item.language_code or "")[:MAX_LANGUAGE_CHARS] or None,
                    seen_at=min(item.seen_at, now),
                )
            )
        stored, unknown = self._stats.record_many(valid) if valid else (0, 0)
        result = InteractionBatchResult(
            stored=stored, skipped_unknown_bot=unknown, skipped_invalid=len(interactions) - len(valid)
        )
        if result.skipped_unknown_bot or result.skipped_invalid:
            logger.info(
                "interactions skipped",
                extra={"unknown_bot": result.skipped_unknown_bot, "invalid": result.skipped_invalid},
            )
        return result
