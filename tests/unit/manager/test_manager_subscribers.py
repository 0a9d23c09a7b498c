"""/subscribers @bot in the manager bot: counts by status in pt-BR and en, only for the admin's own bot."""

from __future__ import annotations

from libs.registry_client.client import RegistryUnavailable
from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, harness

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
