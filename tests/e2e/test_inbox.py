"""The feedback inbox (issue 15) end to end through the emulator, on PostgreSQL + Redis: a user writes to a hosted bot,
its admin gets the message with the sender named; the admin's reply reaches the user from the bot; Block stops the
user's next messages; another bot's admin reaches none of the first bot's users. An invited co-admin gets the inbox
and answers from it; once revoked they get nothing more and can neither answer nor block."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.e2e.test_manager_bot import WAIT, Chat, World, button, new_bot, user, wait_until_handled
from tests.support.secrets_scan import database_hits, redis_hits, text_hits
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db_url = postgres_server.fresh_database("tgm_inbox_e2e")
    redis.Redis.from_url(redis_server.url).flushall()
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("inbox") / "run",
        **redis_server.stack_config(),
        db_url=db_url,
        extra_env={"dispatcher": {"OUTBOUND_PER_CHAT_PER_SECOND": "20"}},
    )
    stack = Stack(config).start()
    emulator = EmulatorControl(stack.emulator_url)
    try:
        assert stack.manager is not None
        manager_id = int(str(stack.manager["id"]))
        wait_for(lambda: bool(emulator.webhook(manager_id)["url"]), WAIT, "the manager bot's webhook")
        yield World(stack, emulator, manager_id, tokens=[str(stack.manager["token"])])
    finally:
        emulator.close()
        stack.stop()


class HostedChat:
    """One person's private chat with a hosted bot."""

    def __init__(self, world: World, bot: dict[str, Any], who: dict[str, Any]) -> None:
        self.em, self.bot, self.user = world.emulator, bot, who

    def send(self, text: str, reply_to: int | None = None) -> dict[str, Any]:
        return self.em.send_text(self.bot["id"], self.user, text, reply_to_message_id=reply_to)

    def from_bot(self) -> list[dict[str, Any]]:
        return self.em.bot_messages(self.bot["id"], self.user["id"])

    def message(self, message_id: int) -> dict[str, Any]:
        return next(m for m in self.em.chat(self.bot["id"], self.user["id"]) if m["message_id"] == message_id)


def hosted_bot_with_inbox(world: World, admin: Chat, username: str) -> tuple[dict[str, Any], HostedChat]:
    """A bot registered by `admin`, its inbox on, and the admin's own chat with it (started, so it can write there)."""
    bot = new_bot(world, username)
    admin.say(f"/addbot {bot['token']}", 2)
    on, warning = admin.say(f"/inbox @{username} on", 2)
    assert f"Inbox of @{username}: on" in on["plain_text"]
    assert "/start" in warning["plain_text"], "the admin never started the bot: told so"
    own = HostedChat(world, bot, admin.user)
    own.send("/start")
    wait_for(lambda: len(own.from_bot()) == 1, WAIT, "the welcome in the admin's own chat")
    (on,) = admin.say(f"/inbox @{username} on")  # started now: no warning
    assert "on" in on["plain_text"]
    return bot, own


def deliveries_after(inbox: HostedChat, count: int, customer: HostedChat, text: str) -> list[dict[str, Any]]:
    """Sends `text` until it reaches the inbox (a process may not have heard of the new mode for a moment)."""

    def arrived() -> bool:
        if len(inbox.from_bot()) >= count + 2:
            return True
        customer.send(text)
        return False

    wait_for(arrived, WAIT, "the message in the admin's chat", interval=2.0)
    return inbox.from_bot()[count : count + 2]


def test_a_user_is_heard_answered_and_blocked_and_nothing_crosses_to_another_bot(world: World) -> None:
    alice = Chat(world, user(79901, "en"))
    bot, inbox = hosted_bot_with_inbox(world, alice, "inbox_79901_bot")
    customer = HostedChat(world, bot, {"id": 79950, "first_name": "Carla", "username": "carla", "language_code": "en"})

    header, copy = deliveries_after(inbox, 1, customer, "Hello, my order did not arrive")
    assert header["parse_mode"] == "HTML" and "Carla" in header["plain_text"] and "79950" in header["plain_text"]
    assert "@carla" in header["plain_text"]
    assert copy["text"] == "Hello, my order did not arrive" and copy["from_bot"]
    wait_for(lambda: any("delivered" in m["text"] for m in customer.from_bot()), WAIT, "the acknowledgement")

    # Alice answers by replying to the delivered message: Carla gets it from the bot.
    inbox.send("Sorry! It ships today.", reply_to=copy["message_id"])
    wait_for(
        lambda: any(m["text"] == "Sorry! It ships today." for m in customer.from_bot()), WAIT, "the reply to Carla"
    )
    # A reply to anything else (her own /start) is explained, and goes nowhere.
    seen = len(inbox.from_bot())
    inbox.send("to whom?", reply_to=1)
    wait_for(lambda: len(inbox.from_bot()) > seen, WAIT, "the explanation")
    assert "reply to a message" in inbox.from_bot()[-1]["text"]

    # Another bot's admin, replying in their own bot's chat, reaches none of alice's bot's users.
    bob = Chat(world, user(79902, "en"))
    _, bob_inbox = hosted_bot_with_inbox(world, bob, "inbox_79902_bot")
    to_carla = len(customer.from_bot())
    while int(bob_inbox.send("filler")["message_id"]) < copy["message_id"]:
        pass  # until bob's chat has a message numbered as alice's delivered copy (numbers are per chat)
    bob_seen = len(bob_inbox.from_bot())
    bob_inbox.send("hi Carla, from Bob", reply_to=copy["message_id"])
    wait_for(lambda: len(bob_inbox.from_bot()) > bob_seen, WAIT, "bob's explanation")
    assert "reply to a message" in bob_inbox.from_bot()[-1]["text"]
    assert len(customer.from_bot()) == to_carla

    # Block from the header (the bot's language, pt-BR: "🚫 Bloquear"): answered, the header then offers Unblock
    # ("✅ Desbloquear"), and Carla's next message is not delivered.
    world.emulator.press(bot["id"], alice.user, alice.user["id"], header["message_id"], button(header, "🚫"))
    wait_for(lambda: "✅" in str(inbox.message(header["message_id"]).get("reply_markup")), WAIT, "unblock")
    in_inbox = len(inbox.from_bot())
    wait_until_handled(world, "inbox_79901_bot", customer.send("hello? anyone?"))
    assert len(inbox.from_bot()) == in_inbox
    assert not any("anyone" in m["text"] for m in inbox.from_bot())


START_LINK = re.compile(r"https://t\.me/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]{20,64})")


def test_an_invited_admin_gets_the_inbox_answers_from_it_and_once_revoked_neither_gets_nor_answers(
    world: World,
) -> None:
    owner, helper = Chat(world, user(79911, "en")), Chat(world, user(79912, "en"))
    bot, owner_inbox = hosted_bot_with_inbox(world, owner, "inbox_79911_bot")
    (invite,) = owner.say("/invite @inbox_79911_bot")
    found = START_LINK.search(invite["plain_text"])
    assert found is not None, invite["plain_text"]
    helper.say(f"/start {found.group(1)}")  # joined: the team changed, every dispatcher forgot the bot's team
    owner.replies()  # the owner is told
    helper_inbox = HostedChat(world, bot, helper.user)
    helper_inbox.send("/start")  # a bot writes only to people who started it
    wait_for(lambda: len(helper_inbox.from_bot()) == 1, WAIT, "the welcome in the helper's chat")

    customer = HostedChat(world, bot, {"id": 79960, "first_name": "Dora", "language_code": "en"})
    header, copy = deliveries_after(helper_inbox, 1, customer, "Where is my parcel?")
    assert "Dora" in header["plain_text"] and copy["text"] == "Where is my parcel?"
    wait_for(lambda: any(m["text"] == "Where is my parcel?" for m in owner_inbox.from_bot()), WAIT, "the owner's copy")

    helper_inbox.send("On its way, Dora.", reply_to=copy["message_id"])
    wait_for(lambda: any(m["text"] == "On its way, Dora." for m in customer.from_bot()), WAIT, "the helper's answer")

    # The owner revokes the helper; from the revocation's answer on, the helper is out of the inbox.
    (admins,) = owner.say("/admins @inbox_79911_bot")
    owner.press(admins, "Revoke id 79912")
    owner.replies()
    helper.replies()  # "you no longer administer…"
    in_helper_chat = len(helper_inbox.from_bot())
    in_owner_chat = len(owner_inbox.from_bot())
    customer.send("Still waiting, hello?")
    wait_for(
        lambda: any(m["text"] == "Still waiting, hello?" for m in owner_inbox.from_bot()), WAIT, "the owner's copy"
    )
    assert len(owner_inbox.from_bot()) == in_owner_chat + 2
    assert len(helper_inbox.from_bot()) == in_helper_chat, "the revoked admin got the next message"

    to_customer = len(customer.from_bot())
    helper_inbox.send("Sent you a refund!", reply_to=copy["message_id"])
    wait_for(lambda: len(helper_inbox.from_bot()) > in_helper_chat, WAIT, "the refusal in the helper's chat")
    assert "no longer administer" in helper_inbox.from_bot()[-1]["text"]
    # Their Block button (still on the old header) is refused, and the customer stays unblocked.
    query = world.emulator.press(bot["id"], helper.user, helper.user["id"], header["message_id"], button(header, "🚫"))

    def answer() -> str | None:
        found = [q for q in world.emulator.callbacks(bot["id"]) if q["id"] == query["callback_query_id"]]
        return str(found[0].get("answer_text")) if found and found[0].get("answered") else None

    wait_for(lambda: answer() is not None, WAIT, "the answer to the revoked admin's press")
    assert answer() == "⚠️ This action is no longer valid."
    assert len(customer.from_bot()) == to_customer, "the revoked admin's reply reached the customer"
    in_owner_chat = len(owner_inbox.from_bot())
    wait_until_handled(world, "inbox_79911_bot", customer.send("Not blocked, am I?"))
    wait_for(lambda: len(owner_inbox.from_bot()) >= in_owner_chat + 2, WAIT, "the customer still heard")


def test_zz_no_token_rests_in_clear_anywhere(world: World) -> None:
    """After the flows above: Redis keys (the inbox's links included), queue messages, rows and logs hold no token."""
    secrets = [t for token in world.tokens for t in (token, token.split(":", 1)[1])]
    assert len(world.tokens) >= 3
    assert database_hits(world.stack.db_url, secrets) == []
    hits, seen = redis_hits(world.stack.config.redis_url, secrets)
    assert seen > 0 and hits == []
    logs = world.stack.log_text()
    assert text_hits(logs, secrets) == []
    assert re.search(r"\d{8,10}:[A-Za-z0-9_-]{30,}", logs) is None
