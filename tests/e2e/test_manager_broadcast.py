"""/broadcast on the whole stack (gateway, registry on PostgreSQL, dispatcher on Redis, vault, mTLS) through the
emulator: subscribers come from the registry, a user who blocked the bot is reported and skipped next time, and a
bot that is not the admin's is "not found". The 1,000-subscriber and kill -9 run is tests/reliability/test_broadcast.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_manager_bot import WAIT, Chat, World, answers, new_bot, user, world  # noqa: F401 - the fixture
from tgm.domain.messages import render
from tgm.tools.devstack.stack import wait_for

pytestmark = pytest.mark.e2e


def subscribers_line(admin: Chat, username: str, wanted: str) -> None:
    """Asks /subscribers until its answer holds `wanted` (stats reach the registry in batches)."""

    def shows() -> bool:
        (reply,) = admin.say(f"/subscribers @{username}")
        return wanted in reply["plain_text"]

    wait_for(shows, WAIT, f"/subscribers showing {wanted!r}", interval=0.5)


def broadcast(admin: Chat, username: str, text: str) -> dict[str, int]:
    """/broadcast, the text, Send; returns the final counts from the edited progress message."""
    (ask,) = admin.say(f"/broadcast @{username}")
    assert "Send me the message" in ask["plain_text"]
    preview, prompt = admin.say(text, 2)
    assert preview["plain_text"] == text and preview["parse_mode"] == "HTML"
    admin.press(prompt, "Send")
    wait_for(lambda: "broadcast is done" in admin.message(prompt["message_id"])["plain_text"], WAIT, "the end")
    final = admin.message(prompt["message_id"])["plain_text"]
    counts = {}
    for line in final.splitlines()[1:]:
        label, _, value = line.partition(": ")
        counts[label.split(" ", 1)[1]] = int(value)
    return counts


def test_broadcast_reaches_active_subscribers_and_skips_who_blocked_the_bot(world: World) -> None:  # noqa: F811
    admin = Chat(world, user(79901, "en"))
    bot = new_bot(world, "cast_79901_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    fans = [{"id": 79911 + i, "first_name": f"Fan{i}", "language_code": "en"} for i in range(3)]
    for fan in fans:
        got = answers(world, bot, fan, "/start")
        wait_for(lambda got=got: len(got()) == 1, WAIT, "the welcome")
    subscribers_line(admin, "cast_79901_bot", "Active: 3")
    world.emulator._call("POST", f"/bots/{bot['id']}/chats/{fans[2]['id']}/block", params={"blocked": "true"})

    text = "Sale <today> & tomorrow"
    assert broadcast(admin, "cast_79901_bot", text) == {"Sent": 2, "Failed": 0, "Blocked the bot": 1}
    for fan in fans[:2]:
        got = [m["plain_text"] for m in world.emulator.bot_messages(bot["id"], fan["id"])]
        assert got.count(text) == 1
    subscribers_line(admin, "cast_79901_bot", "Blocked the bot: 1")  # reported from Telegram's 403

    # Next time the one who blocked the bot is not even tried.
    assert broadcast(admin, "cast_79901_bot", "Second") == {"Sent": 2, "Failed": 0, "Blocked the bot": 0}


def test_broadcast_refuses_another_admins_bot_and_an_unknown_one(world: World) -> None:  # noqa: F811
    owner = Chat(world, user(79921, "en"))
    bot = new_bot(world, "cast_79921_bot")
    owner.say(f"/addbot {bot['token']}", 2)
    other = Chat(world, user(79922, "en"))
    for ref in ("@cast_79921_bot", "@no_such_79922_bot"):
        (reply,) = other.say(f"/broadcast {ref}")
        assert reply["plain_text"] == render("mgr_bot_not_found", "en")
