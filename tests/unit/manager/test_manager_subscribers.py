"""/subscribers @bot in the manager bot: counts by status in pt-BR and en, only for the admin's own bot."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, NOW, harness
from tgm.domain.administration.ports import Subscriber, SubscriberStatus
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.manager_bot import subscribers
from tgm.registry_client.client import RegistryUnavailable

MALLORY = 666


def test_subscribers_shows_every_count_in_portuguese_by_default() -> None:
    h = harness()
    outcome = h.message("/subscribers @Shop_Bot")
    assert outcome.action == "manager:subscribers"
    assert h.admin.calls == [("subscribers", ADMIN, BOT_ID)]  # resolved by name among the admin's bots
    assert h.last == (
        "👥 <b>Assinantes de @shop_bot</b>: 10\n✅ Ativos: 6\n🚫 Bloquearam o bot: 3\n⛔ Bloqueados por você: 1\n"
        "🆕 Novos hoje: 2\n📅 Novos em 7 dias: 5"
    )
    assert h.outbox.sent[-1]["parse_mode"] == "HTML"


def test_subscribers_in_english() -> None:
    h = harness()
    h.message("/subscribers@mgr_bot @shop_bot", lang="en-US")
    assert h.last == (
        "👥 <b>Subscribers of @shop_bot</b>: 10\n✅ Active: 6\n🚫 Blocked the bot: 3\n⛔ Blocked by you: 1\n"
        "🆕 New today: 2\n📅 New in 7 days: 5"
    )


def test_another_admins_bot_is_not_found_and_nothing_leaks() -> None:
    h = harness()
    h.message("/subscribers @shop_bot", user=MALLORY)  # not among Mallory's bots: the registry is not even asked
    assert h.last == "❓ Bot não encontrado entre os seus. Veja /mybots."
    h.message(f"/subscribers {BOT_ID}", user=MALLORY)  # an id is a claim only: the registry refuses it
    assert ("subscribers", MALLORY, BOT_ID) in h.admin.calls
    assert h.last == "❓ Bot não encontrado entre os seus. Veja /mybots."
    assert all("10" not in m["text"] and "shop_bot" not in m["text"] for m in h.outbox.sent)


def test_usage_and_registry_failures_are_explained() -> None:
    h = harness()
    for text in ("/subscribers", "/subscribers @shop_bot extra"):
        outcome = h.message(text)
        assert outcome.action == "manager:usage"
        assert "/subscribers @bot" in h.last
    assert not h.admin.calls

    def down(actor_id: int, bot_id: str) -> object:
        raise RegistryUnavailable("down")

    h.admin.subscriber_stats = down  # type: ignore[method-assign]
    assert h.message("/subscribers @shop_bot").action == "manager:unavailable"


def test_subscribers_is_a_manager_command_listed_in_the_help() -> None:
    h = harness()
    h.message("/help", lang="en")
    assert "/subscribers @bot" in h.last
    h.message("/help")
    assert "/subscribers @bot" in h.last


def _subscribers(count: int) -> list[Subscriber]:
    statuses = list(SubscriberStatus)
    return [
        Subscriber(
            user, NOW - timedelta(days=user), NOW + timedelta(hours=user, minutes=30), statuses[user % len(statuses)]
        )
        for user in range(1, count + 1)
    ]


def test_the_export_button_is_signed_for_the_admin_and_sends_the_csv() -> None:
    h = harness()
    h.admin.subscribers = _subscribers(3)
    h.message("/subscribers @shop_bot")
    [[button]] = h.outbox.sent[-1]["reply_markup"]["inline_keyboard"]
    assert button["text"] == "📥 Exportar CSV"
    claim = h.tokens.verify(button["callback_data"], ADMIN, ADMIN)
    assert claim is not None and (claim.action, claim.bot_id) == (CallbackAction.EXPORT_SUBSCRIBERS, BOT_ID)
    assert h.press(button["callback_data"]).action == "manager:export_subscribers"
    [document] = h.outbox.documents
    assert (document["chat_id"], document["filename"]) == (ADMIN, "subscribers-shop_bot.csv")
    assert document["caption"] == "📄 Assinantes de @shop_bot: 3."
    rows = list(csv.reader(io.StringIO(document["content"].decode("utf-8"))))
    assert rows == [
        ["telegram_user_id", "first_seen", "last_seen", "status"],
        ["1", "2025-12-31T00:00:00+00:00", "2026-01-01T01:30:00+00:00", "blocked_bot"],
        ["2", "2025-12-30T00:00:00+00:00", "2026-01-01T02:30:00+00:00", "blocked_by_admin"],
        ["3", "2025-12-29T00:00:00+00:00", "2026-01-01T03:30:00+00:00", "active"],
    ]


def test_another_admin_cannot_export_even_with_a_forged_or_replayed_button() -> None:
    h = harness()
    h.admin.subscribers = _subscribers(2)
    mine = h.sign(CallbackAction.EXPORT_SUBSCRIBERS)
    assert h.press(mine, user=666, chat=666).action == "manager:callback_invalid"  # signed for another user
    forged = h.sign(CallbackAction.EXPORT_SUBSCRIBERS, user=666)  # a valid button of Mallory's naming Alice's bot
    assert h.press(forged, user=666, chat=666).action == "manager:not_found"
    assert h.outbox.documents == []


def test_the_export_pages_through_the_registry_and_stops_at_the_limit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(subscribers, "EXPORT_PAGE", 2)
    monkeypatch.setattr(subscribers, "MAX_EXPORT_ROWS", 4)
    h = harness()
    h.admin.subscribers = _subscribers(4)
    h.press(h.sign(CallbackAction.EXPORT_SUBSCRIBERS))
    assert [c[1] for c in h.admin.calls if c[0] == "list_subscribers"] == [0, 2, 4]
    assert h.outbox.documents[-1]["caption"] == "📄 Assinantes de @shop_bot: 4."
    h.admin.subscribers = _subscribers(7)
    h.press(h.sign(CallbackAction.EXPORT_SUBSCRIBERS))
    assert h.outbox.documents[-1]["content"].count(b"\r\n") == 5  # the header and the first four
    assert "os primeiros 4" in h.outbox.documents[-1]["caption"]


def test_no_subscribers_means_a_message_not_an_empty_file() -> None:
    h = harness()
    h.press(h.sign(CallbackAction.EXPORT_SUBSCRIBERS))
    assert h.outbox.documents == []
    assert h.last == "👥 @shop_bot ainda não tem assinantes."


def test_the_csv_times_are_utc_and_hold_nothing_but_ids_times_and_statuses() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=-3)))  # São Paulo
    row = Subscriber(9, local, local, SubscriberStatus.ACTIVE)
    assert subscribers.subscribers_csv([row]) == (
        b"telegram_user_id,first_seen,last_seen,status\r\n9,2026-01-01T12:00:00+00:00,2026-01-01T12:00:00+00:00,active\r\n"
    )
