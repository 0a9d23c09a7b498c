"""Webhook delivery: secret header, order per chat, parallel chats, redelivery, Retry-After, dropping."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from tests.emulator.conftest import USER, Emu, Reply, WebhookReceiver, wait_until
from tgm.tools.telegram_emulator import EmulatorServer


def user(n: int) -> dict[str, Any]:
    return {"id": 800000 + n, "first_name": f"U{n}"}


def hook(emu: Emu, receiver: WebhookReceiver, **params: Any) -> dict[str, Any]:
    bot = emu.create_bot()
    emu.ok(bot["token"], "setWebhook", url=receiver.url(), **params)
    return bot


def test_delivers_updates_with_the_secret_header(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = hook(emu, receiver, secret_token="abc_DEF-123")
    first = emu.user_says(bot["id"], "/start")
    second = emu.user_says(bot["id"], "hello")
    wait_until(lambda: len(receiver.completed()) == 2)
    got = receiver.completed()
    assert [r.body["update_id"] for r in got] == [first["update_id"], second["update_id"]]
    assert second["update_id"] == first["update_id"] + 1
    assert all(r.headers["x-telegram-bot-api-secret-token"] == "abc_DEF-123" for r in got)
    assert all(r.headers["content-type"] == "application/json" for r in got)
    message = got[0].body["message"]
    assert message["text"] == "/start" and message["chat"]["id"] == USER["id"]
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    wait_until(lambda: emu.webhook(bot["id"])["pending_update_count"] == 0)
    assert emu.webhook(bot["id"])["has_secret"] is True


def test_no_secret_header_without_a_secret(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = hook(emu, receiver)
    emu.user_says(bot["id"], "hi")
    wait_until(lambda: receiver.completed())
    assert "x-telegram-bot-api-secret-token" not in receiver.completed()[0].headers


def test_one_request_in_flight_per_chat_keeps_order(emu: Emu, receiver: WebhookReceiver) -> None:
    receiver.script = lambda body, attempt: Reply(delay=0.15)
    bot = hook(emu, receiver)
    ids = [emu.user_says(bot["id"], f"m{i}")["update_id"] for i in range(4)]
    wait_until(lambda: len(receiver.completed()) == 4)
    got = sorted(receiver.completed(), key=lambda r: r.started)
    assert [r.body["update_id"] for r in got] == ids
    for earlier, later in pairwise(got):
        assert later.started >= earlier.finished - 0.005, "two requests for one chat overlapped"


def test_chats_are_delivered_in_parallel(emu: Emu, receiver: WebhookReceiver) -> None:
    receiver.script = lambda body, attempt: Reply(delay=0.5)
    bot = hook(emu, receiver)
    for n in range(3):
        emu.user_says(bot["id"], "hi", user=user(n))
    wait_until(lambda: len(receiver.completed()) == 3)
    got = receiver.completed()
    assert max(r.started for r in got) < min(r.finished for r in got), "chats were delivered one after another"


def test_redelivers_after_errors_with_doubling_delays(emu: Emu, receiver: WebhookReceiver) -> None:
    receiver.script = lambda body, attempt: Reply(status=500) if attempt <= 3 else Reply()
    bot = hook(emu, receiver)
    emu.user_says(bot["id"], "retry me")
    wait_until(lambda: emu.webhook(bot["id"])["last_error_message"])
    info = emu.ok(bot["token"], "getWebhookInfo")
    assert info["pending_update_count"] == 1
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    assert isinstance(info["last_error_date"], int)
    wait_until(lambda: any(r.status == 200 for r in receiver.completed()), timeout=10)
    starts = [r.started for r in sorted(receiver.requests, key=lambda r: r.started)]
    assert len(starts) == 4
    gaps = [b - a for a, b in pairwise(starts)]
    for gap, expected in zip(gaps, [0.5, 1.0, 2.0], strict=True):
        assert expected * 0.9 <= gap <= expected + 0.4, gaps
    wait_until(lambda: emu.webhook(bot["id"])["pending_update_count"] == 0)


def test_delay_is_capped() -> None:
    receiver = WebhookReceiver()
    receiver.script = lambda body, attempt: Reply(status=502) if attempt <= 5 else Reply()
    try:
        with EmulatorServer(retry_initial_delay=0.05, retry_max_delay=0.2) as server:
            emu = Emu(server.base_url)
            bot = hook(emu, receiver)
            emu.user_says(bot["id"], "x")
            wait_until(lambda: any(r.status == 200 for r in receiver.completed()))
    finally:
        receiver.close()
    starts = [r.started for r in receiver.requests]
    gaps = [b - a for a, b in pairwise(starts)]
    assert len(gaps) == 5
    assert all(gap < 0.2 + 0.15 for gap in gaps), gaps
    assert gaps[-1] >= 0.18, gaps


def test_connection_errors_are_redelivered(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = emu.create_bot()
    emu.ok(bot["token"], "setWebhook", url="http://127.0.0.1:9/closed")  # discard port: connection refused
    emu.user_says(bot["id"], "x")
    wait_until(lambda: emu.webhook(bot["id"])["last_error_message"] == "Connection refused")
    emu.ok(bot["token"], "setWebhook", url=receiver.url())
    wait_until(lambda: receiver.completed(), timeout=5)


def test_retry_after_is_honoured(emu: Emu, receiver: WebhookReceiver) -> None:
    receiver.script = lambda body, attempt: Reply(status=503, headers={"Retry-After": "2"}) if attempt == 1 else Reply()
    bot = hook(emu, receiver)
    emu.user_says(bot["id"], "x")
    wait_until(lambda: len(receiver.completed()) == 2, timeout=6)
    first, second = sorted(receiver.completed(), key=lambda r: r.started)
    assert 1.9 <= second.started - first.started <= 2.5


def test_drop_pending_updates(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = emu.create_bot()
    for i in range(3):
        emu.user_says(bot["id"], f"old {i}")
    assert emu.ok(bot["token"], "getWebhookInfo")["pending_update_count"] == 3
    emu.ok(bot["token"], "setWebhook", url=receiver.url(), drop_pending_updates=True)
    assert emu.ok(bot["token"], "getWebhookInfo")["pending_update_count"] == 0
    new = emu.user_says(bot["id"], "new")
    wait_until(lambda: receiver.completed())
    assert [r.body["update_id"] for r in receiver.completed()] == [new["update_id"]]


def test_pending_updates_are_kept_until_a_webhook_is_set(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = emu.create_bot()
    ids = [emu.user_says(bot["id"], f"m{i}")["update_id"] for i in range(2)]
    emu.ok(bot["token"], "setWebhook", url=receiver.url())
    wait_until(lambda: len(receiver.completed()) == 2)
    assert [r.body["update_id"] for r in receiver.completed()] == ids


def test_allowed_updates_filters_types(emu: Emu, receiver: WebhookReceiver) -> None:
    bot = hook(emu, receiver, allowed_updates=["callback_query"])
    assert emu.user_says(bot["id"], "ignored")["update_id"] is None
    assert emu.ok(bot["token"], "getWebhookInfo")["allowed_updates"] == ["callback_query"]
    assert emu.ok(bot["token"], "getWebhookInfo")["pending_update_count"] == 0


@pytest.mark.parametrize("secret", ["has space", "x" * 257])
def test_bad_secret_is_refused(emu: Emu, receiver: WebhookReceiver, secret: str) -> None:
    bot = emu.create_bot()
    response = emu.api(bot["token"], "setWebhook", url=receiver.url(), secret_token=secret)
    assert response.status_code == 400


def test_managed_bot_update_reaches_the_manager(emu: Emu, receiver: WebhookReceiver) -> None:
    manager = emu.create_bot("boss_bot", can_manage_bots=True)
    emu.ok(manager["token"], "setWebhook", url=receiver.url(), allowed_updates=["message", "managed_bot"])
    created = emu.http.post(
        f"/_emulator/bots/{manager['id']}/managed_bots", json={"user": USER, "username": "kid_bot"}
    ).json()
    wait_until(lambda: len(receiver.completed()) == 2)
    bodies = [r.body for r in receiver.completed()]
    service = next(b for b in bodies if "message" in b)
    update = next(b for b in bodies if "managed_bot" in b)
    assert service["message"]["managed_bot_created"]["bot"]["id"] == created["id"]
    assert update["managed_bot"]["bot"]["id"] == created["id"]
    assert update["managed_bot"]["user"]["id"] == USER["id"]
