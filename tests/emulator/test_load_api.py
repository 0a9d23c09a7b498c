"""The load/measurement control API: /_emulator/load, /_emulator/timeline, /_emulator/metrics (and their client)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.emulator.conftest import Emu, Received, Reply, WebhookReceiver, wait_until
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.telegram_emulator import EmulatorServer


@pytest.fixture
def control(emu: Emu, emulator_server: EmulatorServer) -> Iterator[EmulatorControl]:
    client = EmulatorControl(emulator_server.base_url)
    yield client
    client.close()


def msg(bot_id: int, user_id: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user": {"id": user_id, "first_name": f"U{user_id}"}, "text": text, **extra}


def all_events(control: EmulatorControl) -> list[dict[str, Any]]:
    since, events = 0, []
    while True:
        since, page = control.timeline(since)
        if not page:
            return events
        events.extend(page)


def max_overlap(requests: list[Received]) -> int:
    """The most requests the receiver was handling at one moment."""
    edges = sorted([(r.started, 1) for r in requests] + [(r.finished, -1) for r in requests])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_load_creates_updates_delivered_by_webhook(
    emu: Emu, control: EmulatorControl, receiver: WebhookReceiver
) -> None:
    a, b = emu.create_bot("a_bot"), emu.create_bot("b_bot")
    emu.ok(a["token"], "setWebhook", url=receiver.url("/a"))
    ids = control.load(
        [
            msg(a["id"], 1, "/start"),
            msg(b["id"], 2, "hi", chat_id=-100),
            msg(a["id"], 1, "again"),
            {"bot_id": a["id"], "user": {"id": 3, "first_name": "C", "language_code": "de"}, "text": "x"},
        ]
    )
    assert len(ids) == 4 and ids[2] == ids[0] + 1 and ids[3] == ids[2] + 1
    wait_until(lambda: len(receiver.completed()) == 3)
    bodies = {r.body["update_id"]: r.body for r in receiver.completed()}
    assert set(bodies) == {ids[0], ids[2], ids[3]}
    assert bodies[ids[0]]["message"]["entities"][0]["type"] == "bot_command"
    assert bodies[ids[3]]["message"]["from"]["language_code"] == "de"
    assert emu.webhook(b["id"])["pending_update_ids"] == [ids[1]]  # no webhook yet: it waits
    assert emu.messages(b["id"], -100)[0]["text"] == "hi"

    wait_until(lambda: control.metrics()["deliveries_ok"] == 3)
    metrics = control.metrics()
    assert metrics["updates_created"] == 4
    assert metrics["deliveries_failed"] == 0
    assert metrics["webhook_in_flight"] == 0
    assert metrics["peak_in_flight_per_bot"][str(a["id"])] >= 1
    assert metrics["api_calls"] == {"setWebhook": 1}

    events = all_events(control)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    updates = [e for e in events if e["kind"] == "update"]
    assert [e["update_id"] for e in updates] == ids
    assert [e["chat_id"] for e in updates] == [1, -100, 1, 3]
    assert {e["bot_id"] for e in updates} == {a["id"], b["id"]}
    delivered = [e for e in events if e["kind"] == "delivered"]
    assert sorted(e["update_id"] for e in delivered) == sorted([ids[0], ids[2], ids[3]])
    assert all(e["method"] is None and isinstance(e["at"], float) for e in events)


def test_sent_events_and_api_call_counts(emu: Emu, control: EmulatorControl) -> None:
    bot = emu.create_bot()
    control.load([msg(bot["id"], 5, "hi")])
    sent = emu.ok(bot["token"], "sendMessage", chat_id=5, text="one")
    emu.ok(bot["token"], "editMessageText", chat_id=5, message_id=sent["message_id"], text="two")
    emu.ok(bot["token"], "deleteMessage", chat_id=5, message_id=sent["message_id"])
    assert emu.api(bot["token"], "sendMessage", chat_id=6, text="nobody").status_code == 400
    emu.ok(bot["token"], "getMe")
    events = [e for e in all_events(control) if e["kind"] == "sent"]
    assert [(e["method"], e["chat_id"], e["bot_id"], e["update_id"]) for e in events] == [
        ("sendMessage", 5, bot["id"], None),
        ("editMessageText", 5, bot["id"], None),
    ]
    assert control.metrics()["api_calls"] == {"sendMessage": 2, "editMessageText": 1, "deleteMessage": 1, "getMe": 1}


def test_webhook_reply_method_is_a_sent_event(emu: Emu, control: EmulatorControl, receiver: WebhookReceiver) -> None:
    reply = b'{"method": "sendMessage", "chat_id": 9, "text": "pong"}'
    receiver.script = lambda body, attempt: Reply(headers={"Content-Type": "application/json"}, body=reply)
    bot = emu.create_bot()
    emu.ok(bot["token"], "setWebhook", url=receiver.url())
    control.load([msg(bot["id"], 9, "ping")])
    wait_until(lambda: any(e["kind"] == "sent" for e in all_events(control)))
    assert [m["text"] for m in emu.messages(bot["id"], 9)] == ["ping", "pong"]


def test_timeline_pages_by_seq_and_reset_clears_it(emu: Emu, control: EmulatorControl) -> None:
    bot = emu.create_bot()
    control.load([msg(bot["id"], 1, f"m{i}") for i in range(5)])
    first = emu.http.get("/_emulator/timeline", params={"limit": 2}).json()
    assert len(first["events"]) == 2 and first["next"] == first["events"][-1]["seq"]
    rest = emu.http.get("/_emulator/timeline", params={"since": first["next"]}).json()
    assert [e["seq"] for e in rest["events"]] == [first["next"] + i for i in range(1, 4)]
    since, empty = control.timeline(rest["next"])
    assert (since, empty) == (rest["next"], [])

    emu.http.post("/_emulator/reset").raise_for_status()
    assert control.timeline(0)[1] == []
    assert control.metrics()["updates_created"] == 0
    bot = emu.create_bot()
    control.load([msg(bot["id"], 1, "after")])
    since, events = control.timeline(rest["next"])  # a reader's old position still sees what came after the reset
    assert [e["kind"] for e in events] == ["update"] and since > rest["next"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"messages": "x"}',
        b'{"messages": [{"bot_id": 1, "text": "no user"}]}',
        b'{"messages": [{"bot_id": "abc", "user": {"id": 1, "first_name": "A"}, "text": "x"}]}',
    ],
)
def test_load_refuses_a_malformed_body_and_creates_nothing(emu: Emu, control: EmulatorControl, body: bytes) -> None:
    bot = emu.create_bot()
    good = f'{{"bot_id": {bot["id"]}, "user": {{"id": 1, "first_name": "A"}}, "text": "ok"}}'
    if body.startswith(b'{"messages": ['):
        body = body.replace(b"[", f"[{good}, ".encode(), 1)  # a valid message first: still nothing is created
    response = emu.http.post("/_emulator/load", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    answer = response.json()
    assert answer["ok"] is False and answer["error_code"] == 400
    assert answer["description"].startswith("Bad Request: invalid load body")
    assert control.metrics()["updates_created"] == 0
    assert emu.webhook(bot["id"])["pending_update_count"] == 0


def test_load_with_an_unknown_bot_is_404_and_creates_nothing(emu: Emu, control: EmulatorControl) -> None:
    bot = emu.create_bot()
    response = emu.http.post("/_emulator/load", json={"messages": [msg(bot["id"], 1, "x"), msg(12345, 1, "y")]})
    assert response.status_code == 404
    assert response.json()["description"].startswith("Not Found: no such bot")
    assert emu.webhook(bot["id"])["pending_update_count"] == 0
    assert control.metrics()["updates_created"] == 0
    with pytest.raises(httpx.HTTPStatusError):
        control.load([msg(12345, 1, "y")])


def test_burst_keeps_max_connections_per_bot_and_order_per_chat(
    emu: Emu, control: EmulatorControl, receiver: WebhookReceiver
) -> None:
    receiver.script = lambda body, attempt: Reply(delay=0.02)
    bots = [emu.create_bot(f"burst{i}_bot") for i in range(2)]
    for bot in bots:
        emu.ok(bot["token"], "setWebhook", url=receiver.url(f"/{bot['id']}"), max_connections=4)
    messages = [msg(bot["id"], 1000 + chat, f"{chat}:{k}") for k in range(3) for bot in bots for chat in range(30)]
    ids = control.load(messages)
    wait_until(lambda: len(receiver.completed()) == len(messages), timeout=30)

    by_bot: dict[str, list[Received]] = defaultdict(list)
    for request in receiver.completed():
        by_bot[request.path].append(request)
    assert set(by_bot) == {f"/{bot['id']}" for bot in bots}
    for requests in by_bot.values():
        assert max_overlap(requests) <= 4
    peaks = control.metrics()["peak_in_flight_per_bot"]
    assert {peaks[str(bot["id"])] for bot in bots} == {4}  # the cap was reached, never passed

    expected: dict[tuple[int, int], list[int]] = defaultdict(list)
    for message, update_id in zip(messages, ids, strict=True):
        expected[(message["bot_id"], message["user"]["id"])].append(update_id)
    got: dict[tuple[int, int], list[int]] = defaultdict(list)
    for request in sorted(receiver.completed(), key=lambda r: r.started):
        got[(int(request.path[1:]), request.body["message"]["chat"]["id"])].append(request.body["update_id"])
    assert got == expected


def test_health_answers_while_2000_deliveries_wait_on_a_slow_webhook(
    emu: Emu, control: EmulatorControl, receiver: WebhookReceiver
) -> None:
    receiver.script = lambda body, attempt: Reply(delay=0.5)
    bot = emu.create_bot()
    emu.ok(bot["token"], "setWebhook", url=receiver.url(), max_connections=40)
    control.load([msg(bot["id"], 50_000 + i, "slow") for i in range(2000)])
    wait_until(lambda: control.metrics()["webhook_in_flight"] == 40)
    with httpx.Client(base_url=emu.base_url, timeout=5.0) as client:
        for _ in range(20):
            assert client.get("/_emulator/health").json() == {"ok": True}
    assert emu.webhook(bot["id"])["pending_update_count"] > 1000
    assert control.metrics()["peak_in_flight_per_bot"] == {str(bot["id"]): 40}
