"""The emulator's endpoints behind the chat page: the page itself, users, a user's chats, the event stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tgm.tools.telegram_emulator import app as emulator_app

ANA = {"id": 5101, "first_name": "Ana", "language_code": "pt-br"}
BOB = {"id": 5102, "first_name": "Bob", "language_code": "en"}


def bot(emulator: httpx.Client, username: str, **extra: Any) -> dict[str, Any]:
    response = emulator.post("/_emulator/bots", json={"username": username, **extra})
    response.raise_for_status()
    return dict(response.json())


def say(emulator: httpx.Client, bot_id: int, user: dict[str, Any], text: str) -> None:
    emulator.post(f"/_emulator/bots/{bot_id}/messages", json={"user": user, "text": text}).raise_for_status()


def test_the_page_and_its_assets_are_served_with_a_strict_csp(emulator: httpx.Client) -> None:
    page = emulator.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert 'id="messages"' in page.text
    for asset, kind in (("app.js", "javascript"), ("telegram_html.js", "javascript"), ("style.css", "text/css")):
        response = emulator.get(f"/_emulator/web/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"], asset
    assert emulator.get("/_emulator/web/../app.py").status_code == 404
    assert emulator.get("/_emulator/web/missing.js").status_code == 404


def test_users_and_a_users_chats_newest_first(emulator: httpx.Client) -> None:
    shop, news = bot(emulator, "shop_bot"), bot(emulator, "news_bot", first_name="News")
    assert emulator.get("/_emulator/users").json() == []
    say(emulator, shop["id"], ANA, "hello shop")
    say(emulator, news["id"], ANA, "/start")
    say(emulator, news["id"], BOB, "hi")
    say(emulator, shop["id"], {**ANA, "language_code": "en"}, "again")  # the newest message's language wins
    emulator.post(f"/bot{news['token']}/sendMessage", json={"chat_id": ANA["id"], "text": "welcome"}).raise_for_status()
    emulator.post(f"/_emulator/bots/{shop['id']}/messages", json={"user": BOB, "text": "group", "chat_id": -77})

    users = emulator.get("/_emulator/users").json()
    assert users == [{**ANA, "language_code": "en"}, BOB]
    chats = emulator.get(f"/_emulator/users/{ANA['id']}/chats").json()
    assert {chat["bot_id"] for chat in chats} == {shop["id"], news["id"]}
    by_bot = {chat["bot_id"]: chat for chat in chats}
    assert by_bot[news["id"]]["last_text"] == "welcome" and by_bot[news["id"]]["last_from_bot"] is True
    assert by_bot[news["id"]]["first_name"] == "News" and by_bot[news["id"]]["message_count"] == 2
    assert by_bot[shop["id"]]["last_text"] == "again" and by_bot[shop["id"]]["last_from_bot"] is False
    assert [chat["bot_id"] for chat in emulator.get(f"/_emulator/users/{BOB['id']}/chats").json()] == [news["id"]]
    assert emulator.get("/_emulator/users/999/chats").json() == []


@pytest.mark.parametrize("user_id", ["abc", "-5", "0", "1.5", "99999999999999999999", "٣"])
def test_a_bad_user_id_is_a_clear_400(emulator: httpx.Client, user_id: str) -> None:
    response = emulator.get(f"/_emulator/users/{user_id}/chats")
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: user_id must be a positive integer",
    }


def read_events(lines: Iterator[str], count: int) -> list[str]:
    """The data lines of the next `count` `change` events."""
    found: list[str] = []
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "change":
            found.append(line.removeprefix("data: "))
            if len(found) == count:
                break
    return found


def test_the_event_stream_announces_each_change(emulator: httpx.Client) -> None:
    shop = bot(emulator, "events_bot")
    with emulator.stream("GET", "/_emulator/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        (first,) = read_events(lines, 1)  # the current version, at once
        version = int(first.removeprefix('{"version":').rstrip("}"))
        other = httpx.Client(base_url=str(emulator.base_url))  # the stream holds the first client's connection
        sender = threading.Thread(target=say, args=(other, shop["id"], ANA, "hi"))
        sender.start()
        (second,) = read_events(lines, 1)
        sender.join()
        other.close()
        assert int(second.removeprefix('{"version":').rstrip("}")) > version
    # A bot's send, an edit and a deletion each move the version too; a read does not.
    before = _version(emulator)
    sent = emulator.post(f"/bot{shop['token']}/sendMessage", json={"chat_id": ANA["id"], "text": "x"}).json()
    after_send = _version(emulator)
    emulator.post(
        f"/bot{shop['token']}/editMessageText",
        json={"chat_id": ANA["id"], "message_id": sent["result"]["message_id"], "text": "y"},
    )
    after_edit = _version(emulator)
    emulator.post(
        f"/bot{shop['token']}/deleteMessage", json={"chat_id": ANA["id"], "message_id": sent["result"]["message_id"]}
    )
    after_delete = _version(emulator)
    emulator.post(f"/bot{shop['token']}/getMe")
    assert before < after_send < after_edit < after_delete == _version(emulator)  # a read changes nothing


def _version(emulator: httpx.Client) -> int:
    with emulator.stream("GET", "/_emulator/events") as response:
        (first,) = read_events(response.iter_lines(), 1)
    return int(first.removeprefix('{"version":').rstrip("}"))


def test_a_stream_ends_by_itself_so_a_stopping_server_never_waits_on_it(
    emulator: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator_app, "EVENT_STREAM_SECONDS", 0.5)
    with emulator.stream("GET", "/_emulator/events") as response:
        lines = list(response.iter_lines())  # returns only because the server closed the stream
    assert "retry: 500" in lines and "event: change" in lines
