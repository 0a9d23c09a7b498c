"""/subscribers and its CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC

from tgm.domain.administration.ports import Subscriber
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import BotNotFound, DomainError
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Buttons, Text

# The CSV export: pages of this many from the registry, and at most this many rows (its bytes travel the outbox).
EXPORT_PAGE = 1000
MAX_EXPORT_ROWS = 50_000
SUBSCRIBER_CSV_COLUMNS = ("telegram_user_id", "first_seen", "last_seen", "status")


def subscribers_csv(rows: Sequence[Subscriber]) -> bytes:
    """UTF-8 CSV with a header; times in ISO 8601 UTC. Only ids, times and statuses: nothing secret."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUBSCRIBER_CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.telegram_user_id,
                row.first_seen.astimezone(UTC).isoformat(timespec="seconds"),
                row.last_seen.astimezone(UTC).isoformat(timespec="seconds"),
                row.status.value,
            )
        )
    return buffer.getvalue().encode("utf-8")


class SubscribersCommands(RegistryCalls):
    """The counts, and the export button's CSV document."""

    def _subscribers_command(self, ctx: Ctx, arg: str) -> HandleOutcome:
        words = arg.split()
        if len(words) != 1:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/subscribers"]))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, words[0])
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        try:
            bot, stats = self._admin.subscriber_stats(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        export = self._button(ctx, "btn_export_csv", CallbackAction.EXPORT_SUBSCRIBERS, bot.id)
        self._say(
            ctx,
            "mgr_subscribers",
            keyboard=Buttons.of([[export]]),
            username=bot.username,
            total=stats.total,
            active=stats.active,
            blocked_bot=stats.blocked_bot,
            blocked_by_admin=stats.blocked_by_admin,
            new_today=stats.new_today,
            new_7_days=stats.new_7_days,
        )
        return HandleOutcome("manager:subscribers", replied=True)

    def _export_subscribers(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        """The bot's subscribers as a CSV document, paged from the registry (which re-checks ownership)."""
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        rows: list[Subscriber] = []
        try:
            while len(rows) <= MAX_EXPORT_ROWS:  # one page past the limit tells whether there are more
                after = rows[-1].telegram_user_id if rows else 0
                page = self._admin.list_subscribers(ctx.user_id, bot.id, after, EXPORT_PAGE)
                rows += page
                if len(page) < EXPORT_PAGE:
                    break
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not rows:
            self._say(ctx, "mgr_no_subscribers", username=bot.username)
            return HandleOutcome("manager:export_subscribers", replied=True)
        truncated = len(rows) > MAX_EXPORT_ROWS
        rows = rows[:MAX_EXPORT_ROWS]
        caption = Text(
            "mgr_subscribers_csv_truncated" if truncated else "mgr_subscribers_csv",
            {"username": bot.username, "count": len(rows)},
        )
        self._view.send_file(ctx.chat, f"subscribers-{bot.username}.csv", subscribers_csv(rows), "text/csv", caption)
        return HandleOutcome("manager:export_subscribers", replied=True)
