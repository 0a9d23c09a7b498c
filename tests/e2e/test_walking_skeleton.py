"""One Telegram message end to end through the four services, as separate processes, twice:
on the embedded default (SQLite, in-process broker) and on real PostgreSQL + Redis."""

from __future__ import annotations

import httpx
import pytest

from tests.support.secrets_scan import database_hits, database_row_count, redis_hits, text_hits
from tgm.tools.devstack.stack import wait_for

pytestmark = pytest.mark.e2e

USER = {"id": 555001, "first_name": "Ana", "language_code": "pt-br"}


def test_start_gets_the_welcome_reply(stack, emulator, register) -> None:
    bot = emulator.create_bot("skeleton_bot", "Skeleton")
    registered = register(owner_id=9001, token=bot["token"])
    assert registered.username == "skeleton_bot"

    webhook_calls = [c for c in emulator.calls(bot["id"]) if c["method"].lower() == "setwebhook"]
    assert len(webhook_calls) == 1
    params = webhook_calls[0]["params"]
    assert params["url"] == f"{stack.gateway_url}/webhook/{registered.public_id}"
    assert bot["token"] not in params["url"]
    assert params["drop_pending_updates"] in (True, "true")
    assert set(params["allowed_updates"]) == {"message", "callback_query"}
    assert len(params["secret_token"]) >= 32

    emulator.send_text(bot["id"], USER, "/start")
    wait_for(lambda: emulator.bot_messages(bot["id"], USER["id"]), 60, "the welcome reply")
    replies = emulator.bot_messages(bot["id"], USER["id"])
    assert len(replies) == 1
    assert "@skeleton_bot" in replies[0]["text"]

    # Plain text is not a command this bot knows: no reply, and no crash.
    emulator.send_text(bot["id"], USER, "hello there")
    emulator.send_text(bot["id"], USER, "/start")
    wait_for(lambda: len(emulator.bot_messages(bot["id"], USER["id"])) == 2, 60, "the second reply")
    assert emulator.webhook(bot["id"])["pending_update_count"] == 0

    secrets = [bot["token"], bot["token"].split(":", 1)[1]]
    assert database_row_count(stack.db_url) >= 1
    assert database_hits(stack.db_url, secrets) == []
    assert text_hits(stack.log_text(), secrets) == []
    if not stack.embedded:
        hits, seen = redis_hits(stack.config.redis_url, secrets)
        assert seen > 0, "expected the broker's keys in Redis"
        assert hits == []


def _secret_for(emulator, bot_id: int) -> str:
    calls = [c for c in emulator.calls(bot_id) if c["method"].lower() == "setwebhook"]
    return str(calls[-1]["params"]["secret_token"])


@pytest.mark.parametrize("header", ["wrong", "missing", "other_bot"])
def test_webhook_with_a_bad_secret_is_refused_and_nothing_is_handled(stack, emulator, register, header) -> None:
    victim = emulator.create_bot(f"victim_{header}_bot")
    other = emulator.create_bot(f"other_{header}_bot")
    victim_bot = register(owner_id=9002, token=victim["token"])
    register(owner_id=9003, token=other["token"])
    forged_chat = 777000 + len(header)
    # The chat must exist in Telegram's eyes for a reply to land: the user says hello first (no reply to that).
    emulator.send_text(victim["id"], {"id": forged_chat, "first_name": "Mallory"}, "hello")
    wait_for(lambda: emulator.webhook(victim["id"])["pending_update_count"] == 0, 60, "the hello to be delivered")
    forged = {
        "update_id": 990001,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": forged_chat, "type": "private"},
            "from": {"id": forged_chat, "is_bot": False, "first_name": "Mallory"},
            "text": "/start",
        },
    }
    headers = {
        "wrong": {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"},
        "missing": {},
        "other_bot": {"X-Telegram-Bot-Api-Secret-Token": _secret_for(emulator, other["id"])},
    }[header]
    url = f"{stack.gateway_url}/webhook/{victim_bot.public_id}"
    response = httpx.post(url, json=forged, headers=headers, timeout=10)
    assert response.status_code == 403

    # The right secret on the same URL is accepted: the refusal above was about the secret alone.
    genuine = {**forged, "update_id": 990002}
    secret = _secret_for(emulator, victim["id"])
    good = httpx.post(url, json=genuine, headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=10)
    assert good.status_code == 200
    wait_for(lambda: "990002" in stack.log_text(), 60, "the genuine update in the logs")
    wait_for(lambda: emulator.bot_messages(victim["id"], forged_chat), 60, "the reply to the genuine update")
    # The forged update was neither enqueued nor handled: one reply, and no process ever saw its update_id.
    assert len(emulator.bot_messages(victim["id"], forged_chat)) == 1
    assert "990001" not in stack.log_text()
