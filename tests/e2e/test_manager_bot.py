"""The manager bot, played as real chats through the emulator on PostgreSQL + Redis (one stack for the module).

Each test is one admin's conversation; the last test scans every Redis key, queue message, database row and
log line for every token used here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis

from tests.support.secrets_scan import database_hits, redis_hits, text_hits
from tgm.domain.messages import render
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, wait_for

pytestmark = pytest.mark.e2e

WAIT = 60


@dataclass
class World:
    stack: Stack
    emulator: EmulatorControl
    manager_id: int
    tokens: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = "tgm_manager_e2e"
    db_url = postgres_server.fresh_database(name)
    redis.Redis.from_url(redis_server.url).flushall()
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("manager") / "run",
        **redis_server.stack_config(),
        db_url=db_url,
        # The outbound limit per chat (1/s like Telegram) would only slow these long conversations down.
        # Stats reach the registry in batches (issue 8); flush often so the stats screen catches up quickly.
        extra_env={"dispatcher": {"OUTBOUND_PER_CHAT_PER_SECOND": "20", "STATS_FLUSH_INTERVAL_SECONDS": "0.2"}},
    )
    stack = Stack(config).start()
    emulator = EmulatorControl(stack.emulator_url)
    try:
        assert stack.manager is not None
        manager_id = int(str(stack.manager["id"]))
        wait_for(lambda: bool(emulator.webhook(manager_id)["url"]), WAIT, "the manager bot's webhook")
        world = World(stack, emulator, manager_id, tokens=[str(stack.manager["token"])])
        yield world
    finally:
        emulator.close()
        stack.stop()


def user(user_id: int, lang: str = "pt-br") -> dict[str, Any]:
    return {"id": user_id, "first_name": f"Admin{user_id}", "language_code": lang}


class Chat:
    """One admin's private chat with the manager bot."""

    def __init__(self, world: World, who: dict[str, Any]) -> None:
        self.world = world
        self.user = who
        self.seen = 0

    @property
    def em(self) -> EmulatorControl:
        return self.world.emulator

    def transcript(self) -> list[dict[str, Any]]:
        return self.em.chat(self.world.manager_id, self.user["id"])

    def bot_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.transcript() if m["from_bot"]]

    def send(self, text: str) -> int:
        return int(self.em.send_text(self.world.manager_id, self.user, text)["message_id"])

    def replies(self, count: int = 1) -> list[dict[str, Any]]:
        """Waits for `count` new bot messages and returns them."""
        target = self.seen + count
        wait_for(lambda: len(self.bot_messages()) >= target, WAIT, f"{count} manager replies")
        new = self.bot_messages()[self.seen : target]
        self.seen = target
        return new

    def say(self, text: str, count: int = 1) -> list[dict[str, Any]]:
        self.send(text)
        return self.replies(count)

    def press(self, message: dict[str, Any], label: str, presser: dict[str, Any] | None = None) -> str:
        data = button(message, label)
        query = self.em.press(self.world.manager_id, presser or self.user, self.user["id"], message["message_id"], data)
        return str(query["callback_query_id"])

    def answer_of(self, query_id: str) -> dict[str, Any]:
        def answered() -> dict[str, Any] | None:
            found = [q for q in self.em.callbacks(self.world.manager_id) if q["id"] == query_id]
            return found[0] if found and found[0].get("answered") else None

        wait_for(lambda: answered() is not None, WAIT, "the callback answer")
        result = answered()
        assert result is not None
        return result

    def message(self, message_id: int) -> dict[str, Any]:
        return next(m for m in self.transcript() if m["message_id"] == message_id)


def button(message: dict[str, Any], label: str) -> str:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for item in row:
            if label in item["text"]:
                return str(item["callback_data"])
    raise AssertionError(f"no button {label!r} in {message.get('reply_markup')}")


def new_bot(world: World, username: str) -> dict[str, Any]:
    bot = world.emulator.create_bot(username)
    world.tokens.append(bot["token"])
    return bot


def assert_admin_reply(message: dict[str, Any]) -> None:
    assert message["parse_mode"] == "HTML"
    assert message["link_preview_options"] == {"is_disabled": True}


def answers(world: World, bot: dict[str, Any], who: dict[str, Any], text: str) -> Callable[[], list[str]]:
    world.emulator.send_text(bot["id"], who, text)
    return lambda: [m["text"] for m in world.emulator.bot_messages(bot["id"], who["id"])]


def wait_until_handled(world: World, username: str, sent: dict[str, Any]) -> None:
    """Waits for the update `sent` (the emulator's answer to sending it) to be handled: its dedup mark exists."""
    key = f"tgm:dedup:update:{_bot_id_in_db(world, username)}:{sent['update_id']}"
    marks = redis.Redis.from_url(world.stack.config.redis_url)
    wait_for(lambda: bool(marks.exists(key)), WAIT, f"update {sent['update_id']} handled")


def ask_until_answered(
    world: World, bot: dict[str, Any], who: dict[str, Any], text: str, got: Callable[[], list[str]], what: str
) -> None:
    """Sends `text` until one more answer than now arrives: after a settings change, a message that lands in a
    process that has not heard of it yet (the bot cache's TTL bounds that) is asked again."""
    before = len(got())

    def answered() -> bool:
        if len(got()) > before:
            return True
        world.emulator.send_text(bot["id"], who, text)
        return False

    wait_for(answered, WAIT, what, interval=2.0)


# ------------------------------------------------------------------------------------------------- flows


def test_start_and_help_in_the_admins_language(world: World) -> None:
    pt = Chat(world, user(71001, "pt-br"))
    (reply,) = pt.say("/start")
    assert "Gerenciador de bots" in reply["plain_text"]
    assert "/addbot" in reply["plain_text"] and "/mybots" in reply["plain_text"]
    assert_admin_reply(reply)
    keyboard = reply["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_managed_bot"]["request_id"] == 1

    en = Chat(world, user(71002, "en-US"))
    (reply,) = en.say("/help")
    assert "Bot manager" in reply["plain_text"]

    unknown = Chat(world, user(71003, "xx"))
    (reply,) = unknown.say("/help")
    assert "Gerenciador de bots" in reply["plain_text"]  # pt-BR fallback


def test_addbot_with_token_deletes_it_seals_it_and_activates_the_bot(world: World) -> None:
    admin = Chat(world, user(72001))
    bot = new_bot(world, "shop_72001_bot")
    calls_before = len(world.emulator.calls(world.manager_id))
    message_id = admin.send(f"/addbot {bot['token']}")
    saved, registered = admin.replies(2)
    assert admin.message(message_id)["deleted"] is True
    assert saved["text"] == "✅ Dado sensível salvo com segurança."
    assert "@shop_72001_bot" in registered["plain_text"]
    assert_admin_reply(saved)
    # The delete went out before any reply.
    calls = [c["method"].lower() for c in world.emulator.calls(world.manager_id)[calls_before:]]
    assert calls.index("deletemessage") < calls.index("sendmessage")
    # The new bot is live: its webhook is set and it answers.
    customer = {"id": 72099, "first_name": "Cli", "language_code": "pt-br"}
    got = answers(world, bot, customer, "/start")
    wait_for(lambda: bool(got()), WAIT, "the new bot's welcome")
    assert "@shop_72001_bot" in got()[0]


def test_bare_addbot_then_token_and_pasted_token(world: World) -> None:
    admin = Chat(world, user(73001, "en"))
    (ask,) = admin.say("/addbot")
    assert "Send the bot's token" in ask["plain_text"]
    first = new_bot(world, "first_73001_bot")
    message_id = admin.send(first["token"])
    saved, registered = admin.replies(2)
    assert admin.message(message_id)["deleted"] is True
    assert saved["text"] == "✅ Sensitive data stored securely."
    assert "@first_73001_bot" in registered["plain_text"]

    second = new_bot(world, "second_73001_bot")
    message_id = admin.send(f"here it is: {second['token']}")
    saved, registered = admin.replies(2)
    assert admin.message(message_id)["deleted"] is True
    assert "@second_73001_bot" in registered["plain_text"]


def test_every_bad_input_gets_a_clear_reply_and_nothing_half_registered(world: World) -> None:
    admin = Chat(world, user(74001))
    other = Chat(world, user(74002))

    for text in ("/addbot hello", "/addbot 123:abc"):
        message_id = admin.send(text)
        (reply,) = admin.replies()
        assert "não é um token de bot válido" in reply["plain_text"]
        assert admin.message(message_id)["deleted"] is True

    revoked = new_bot(world, "revoked_74001_bot")
    world.emulator.revoke(revoked["id"])
    (reply,) = admin.say(f"/addbot {revoked['token']}")
    assert "recusou esse token" in reply["plain_text"]
    (reply,) = admin.say("/mybots")
    assert "ainda não tem bots" in reply["plain_text"]

    mine = new_bot(world, "mine_74001_bot")
    admin.say(f"/addbot {mine['token']}", 2)
    first_secret = [c for c in world.emulator.calls(mine["id"]) if c["method"].lower() == "setwebhook"][-1]
    _saved, again = admin.say(f"/addbot {mine['token']}", 2)
    assert "já era seu" in again["plain_text"]
    second_secret = [c for c in world.emulator.calls(mine["id"]) if c["method"].lower() == "setwebhook"][-1]
    assert first_secret["params"]["secret_token"] != second_secret["params"]["secret_token"]

    (reply,) = other.say(f"/addbot {mine['token']}")
    assert "registrado por outra pessoa" in reply["plain_text"]
    assert "74001" not in reply["text"] and "Admin74001" not in reply["text"]
    (reply,) = other.say("/mybots")
    assert "ainda não tem bots" in reply["plain_text"]


def test_mybots_buttons_details_stats_disable_enable_rotate_delete(world: World) -> None:
    admin = Chat(world, user(75001))
    bot = new_bot(world, "run_75001_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    customer = {"id": 75099, "first_name": "Cli"}
    got = answers(world, bot, customer, "/start")
    wait_for(lambda: len(got()) == 1, WAIT, "a customer's /start")

    (listing,) = admin.say("/mybots")
    assert "@run_75001_bot" in listing["plain_text"]
    assert all(len(b["callback_data"]) <= 64 for row in listing["reply_markup"]["inline_keyboard"] for b in row)

    admin.press(listing, "@run_75001_bot")
    (details,) = admin.replies()
    assert "@run_75001_bot" in details["plain_text"] and "ativo" in details["plain_text"]

    # Stats are flushed to the registry in batches: ask again until the customer's /start is counted.
    def counted() -> bool:
        admin.press(listing, "Estatísticas")
        (stats,) = admin.replies()
        return "Usuários: 1" in stats["plain_text"] and "Mensagens hoje: 1" in stats["plain_text"]

    wait_for(counted, WAIT, "the customer's /start in the stats")

    admin.press(listing, "Desativar")
    (reply,) = admin.replies()
    assert "desativado" in reply["plain_text"]
    admin.press(listing, "Desativar")  # an old button: the registry refuses the illegal move
    (reply,) = admin.replies()
    assert "Não é possível" in reply["plain_text"]

    (listing,) = admin.say("/mybots")
    admin.press(listing, "Ativar")
    (reply,) = admin.replies()
    assert "ativo de novo" in reply["plain_text"]

    before = [c for c in world.emulator.calls(bot["id"]) if c["method"].lower() == "setwebhook"]
    admin.press(listing, "Novo segredo")
    (reply,) = admin.replies()
    assert "Novo segredo de webhook" in reply["plain_text"]
    after = [c for c in world.emulator.calls(bot["id"]) if c["method"].lower() == "setwebhook"]
    assert len(after) == len(before) + 1
    assert after[-1]["params"]["secret_token"] != before[-1]["params"]["secret_token"]

    # The old secret stops working within the gateway's route revalidation (1 s), not the route cache's 30 s TTL.
    def refused_with_old_secret() -> bool:
        # Checked before any webhook with the new secret reaches the gateway (a mismatch refreshes the route).
        answer = httpx.post(
            after[-1]["params"]["url"],
            json={"update_id": 999_001},  # nothing to handle, should it be accepted
            headers={"X-Telegram-Bot-Api-Secret-Token": before[-1]["params"]["secret_token"]},
            timeout=5,
        )
        return answer.status_code == 403

    wait_for(refused_with_old_secret, 10, "the old webhook secret refused after rotation")

    more = answers(world, bot, customer, "/start")  # still answers with the new secret
    wait_for(lambda: len(more()) == 2, WAIT, "the reply after rotation")

    admin.press(listing, "Apagar")
    (confirm,) = admin.replies()
    assert "Apagar @run_75001_bot?" in confirm["plain_text"]
    admin.press(confirm, "Cancelar")
    (reply,) = admin.replies()
    assert "Cancelado" in reply["plain_text"]
    admin.press(confirm, "Sim, apagar")
    (reply,) = admin.replies()
    assert "foi apagado" in reply["plain_text"]
    assert any(c["method"].lower() == "deletewebhook" for c in world.emulator.calls(bot["id"]))
    assert world.emulator.webhook(bot["id"])["url"] == ""
    (reply,) = admin.say("/mybots")
    assert "ainda não tem bots" in reply["plain_text"]


def test_buttons_and_ids_of_another_admin_are_refused(world: World) -> None:
    alice = Chat(world, user(76001))
    mallory = Chat(world, user(76002))
    bot = new_bot(world, "alice_76001_bot")
    alice.say(f"/addbot {bot['token']}", 2)
    (listing,) = alice.say("/mybots")

    # Mallory replays Alice's button (same chat, as herself): refused, nothing changes.
    query = alice.press(listing, "Apagar", presser=mallory.user)
    assert alice.answer_of(query)["answer_text"] == "⚠️ Essa ação não é válida mais."

    # An altered button: refused.
    data = button(listing, "Desativar")
    altered = data[:-2] + ("AA" if not data.endswith("AA") else "BB")
    query = world.emulator.press(world.manager_id, alice.user, alice.user["id"], listing["message_id"], altered)
    assert alice.answer_of(str(query["callback_query_id"]))["answer_text"] == "⚠️ Essa ação não é válida mais."
    # Unknown callback data: refused.
    query = world.emulator.press(world.manager_id, alice.user, alice.user["id"], listing["message_id"], "del:1")
    assert alice.answer_of(str(query["callback_query_id"]))["answer_text"] == "⚠️ Essa ação não é válida mais."

    # Mallory names Alice's bot by id in a command: the registry answers as for a bot that does not exist.
    bot_id = _bot_id_in_db(world, "alice_76001_bot")
    (reply,) = mallory.say(f"/setwelcome {bot_id} pwned")
    assert "Bot não encontrado" in reply["plain_text"]
    (reply,) = mallory.say("/setwelcome @alice_76001_bot pwned")
    assert "Bot não encontrado" in reply["plain_text"]

    # Alice's bot is untouched.
    customer = {"id": 76099, "first_name": "Cli"}
    got = answers(world, bot, customer, "/start")
    wait_for(lambda: bool(got()), WAIT, "alice's bot answering")
    assert "pwned" not in got()[0]


def test_configure_welcome_commands_and_api_commands(world: World) -> None:
    admin = Chat(world, user(77001, "en"))
    bot = new_bot(world, "conf_77001_bot")
    admin.say(f"/addbot {bot['token']}", 2)

    (reply,) = admin.say("/setwelcome @conf_77001_bot Hi <b>there</b> & welcome")
    assert "welcome text is updated" in reply["plain_text"]
    (reply,) = admin.say("/setcommand @conf_77001_bot /price <i>10</i> coins")
    assert "now answers /price" in reply["plain_text"]
    (reply,) = admin.say("/setapi @conf_77001_bot /hack javascript:alert(1)")
    assert "Invalid value" in reply["plain_text"] and "http" in reply["plain_text"]
    (reply,) = admin.say("/setapi @conf_77001_bot /weather https://api.example.test/w?q=1 GET 3")
    assert "now answers /weather" in reply["plain_text"]
    (reply,) = admin.say("/setcommand @conf_77001_bot /start hi")
    assert "Invalid value" in reply["plain_text"]
    (reply,) = admin.say("/setcommand @conf_77001_bot")
    assert "Usage" in reply["plain_text"]

    # Through the buttons too: the welcome text as the next message.
    (listing,) = admin.say("/mybots")
    admin.press(listing, "@conf_77001_bot")
    (details,) = admin.replies()
    assert "/price" in details["plain_text"] and "/weather" in details["plain_text"]
    admin.press(details, "Command")
    (ask,) = admin.replies()
    assert "command and reply" in ask["plain_text"]
    (reply,) = admin.say("/hello Hello <friend>!")
    assert "now answers /hello" in reply["plain_text"]

    customer = {"id": 77099, "first_name": "Cli", "language_code": "en"}
    got = answers(world, bot, customer, "/start")
    wait_for(lambda: len(got()) == 1, WAIT, "the custom welcome")
    assert got()[0] == "Hi <b>there</b> & welcome"
    world.emulator.send_text(bot["id"], customer, "/price")
    wait_for(lambda: len(got()) == 2, WAIT, "the custom command")
    assert got()[1] == "<i>10</i> coins"
    world.emulator.send_text(bot["id"], customer, "/hello")
    wait_for(lambda: len(got()) == 3, WAIT, "the button-made command")
    assert got()[2] == "Hello <friend>!"


def test_maintenance_mode_answers_users_with_the_admins_text_then_everything_comes_back(world: World) -> None:
    admin = Chat(world, user(79001, "en"))
    bot = new_bot(world, "maint_79001_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    (reply,) = admin.say("/setcommand @maint_79001_bot /price 10 coins")
    assert "now answers /price" in reply["plain_text"]
    (reply,) = admin.say("/maintenance @maint_79001_bot")
    assert "Usage" in reply["plain_text"]  # no text: nothing changes
    (reply,) = admin.say("/maintenance @someone_elses_bot Back soon")
    assert "No such bot among yours" in reply["plain_text"]

    (reply,) = admin.say("/maintenance @maint_79001_bot Back at 6 pm <b>sorry</b>")
    assert "is in maintenance" in reply["plain_text"]
    customer = {"id": 79099, "first_name": "Cli", "language_code": "en"}
    got = answers(world, bot, customer, "/price")
    wait_for(lambda: len(got()) == 1, WAIT, "the maintenance text")
    assert got() == ["Back at 6 pm <b>sorry</b>"]

    # A second message within the minute is taken (deduplicated, handled) but not answered again.
    wait_until_handled(world, "maint_79001_bot", world.emulator.send_text(bot["id"], customer, "/price"))

    (reply,) = admin.say("/maintenance @maint_79001_bot off")
    assert "left maintenance" in reply["plain_text"]

    # Every dispatcher process forgets the bot when the change is made (pub/sub), so this is answered normally.
    ask_until_answered(world, bot, customer, "/price", got, "the usual answer after maintenance")
    assert got()[:2] == ["Back at 6 pm <b>sorry</b>", "10 coins"]  # the command configured before is still there
    assert set(got()[1:]) == {"10 coins"}  # no maintenance text any more


def test_a_blocked_user_is_ignored_until_unblocked(world: World) -> None:
    admin = Chat(world, user(79501, "en"))
    bot = new_bot(world, "block_79501_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    customer = {"id": 79599, "first_name": "Spam", "language_code": "en"}
    got = answers(world, bot, customer, "/start")
    wait_for(lambda: len(got()) == 1, WAIT, "the welcome before the block")

    for bad in ("/block @block_79501_bot abc", "/block @block_79501_bot 79599 10s", "/block @block_79501_bot"):
        (reply,) = admin.say(bad)
        assert "Usage" in reply["plain_text"], bad
    (reply,) = admin.say("/unblock @block_79501_bot 79599")
    assert "not blocked" in reply["plain_text"]
    (reply,) = admin.say("/block @block_79501_bot 79599 2h")
    assert "79599 is blocked" in reply["plain_text"] and "2h" in reply["plain_text"]

    wait_until_handled(world, "block_79501_bot", world.emulator.send_text(bot["id"], customer, "/start"))

    (reply,) = admin.say("/unblock @block_79501_bot 79599")
    assert "79599 is unblocked" in reply["plain_text"]

    ask_until_answered(world, bot, customer, "/start", got, "an answer after the unblock")
    assert got()[0] == got()[1]  # the welcome again; nothing was sent while blocked


def test_an_admins_own_limit_is_in_force_at_once_and_lifted_at_once(world: World) -> None:
    admin = Chat(world, user(79701, "en"))
    bot = new_bot(world, "lim_79701_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    (reply,) = admin.say("/setcommand @lim_79701_bot /price 10 coins")
    assert "now answers /price" in reply["plain_text"]
    for bad in ("/limits", "/limits @lim_79701_bot /price 2", "/limits @lim_79701_bot /price cooldown soon"):
        (reply,) = admin.say(bad)
        assert "Usage" in reply["plain_text"], bad
    (reply,) = admin.say("/limits @lim_79701_bot anything 2/1h")
    assert "Invalid value" in reply["plain_text"]
    (reply,) = admin.say("/limits @lim_79701_bot")
    assert "No limits of its own" in reply["plain_text"]
    (reply,) = admin.say("/limits @lim_79701_bot /price 2/1h")
    assert "cmd:/price — 2 per 1h" in reply["plain_text"]

    customer = {"id": 79799, "first_name": "Eager", "language_code": "en"}
    got = answers(world, bot, customer, "/price")
    wait_for(lambda: len(got()) == 1, WAIT, "the first answer")
    world.emulator.send_text(bot["id"], customer, "/price")
    wait_for(lambda: len(got()) == 2, WAIT, "the second answer")
    world.emulator.send_text(bot["id"], customer, "/price")
    wait_for(lambda: len(got()) == 3, WAIT, "the bot's own limit, told once")
    assert got()[:2] == ["10 coins", "10 coins"] and got()[2].startswith("⏳")

    (reply,) = admin.say("/limits @lim_79701_bot /price off")
    assert "No limits of its own" in reply["plain_text"]
    ask_until_answered(world, bot, customer, "/price", got, "an answer once the limit is lifted")
    assert got()[-1] == "10 coins", "lifted at once: not after the hour the stricter limit had counted"


def test_captcha_on_challenges_new_users_only_and_serves_them_once_passed(world: World) -> None:
    admin = Chat(world, user(79801, "en"))
    bot = new_bot(world, "cap_79801_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    regular = {"id": 79810, "first_name": "Regular", "language_code": "en"}
    got_regular = answers(world, bot, regular, "/start")
    wait_for(lambda: len(got_regular()) == 1, WAIT, "the welcome before the CAPTCHA")

    (reply,) = admin.say("/captcha @cap_79801_bot sometimes")
    assert "Invalid value" in reply["plain_text"]
    (reply,) = admin.say("/captcha @cap_79801_bot on")
    assert "CAPTCHA of @cap_79801_bot: on" in reply["plain_text"]

    newcomer = {"id": 79899, "first_name": "New", "language_code": "en"}

    def challenges() -> list[dict[str, Any]]:
        return [m for m in world.emulator.bot_messages(bot["id"], newcomer["id"]) if m.get("reply_markup")]

    world.emulator.send_text(bot["id"], newcomer, "/start")
    wait_for(lambda: bool(challenges()), WAIT, "the challenge")
    challenge = challenges()[0]
    assert "tap the" in challenge["text"]
    buttons = [b for row in challenge["reply_markup"]["inline_keyboard"] for b in row]
    assert len(buttons) == 6
    target = challenge["text"].rsplit(" ", 1)[1].rstrip(".")
    wrong = next(b for b in buttons if b["text"] != target)

    # Another message while the challenge is open: no second challenge, no welcome.
    wait_until_handled(world, "cap_79801_bot", world.emulator.send_text(bot["id"], newcomer, "/start"))
    assert len(world.emulator.bot_messages(bot["id"], newcomer["id"])) == 1

    # A forged button (unsigned data) is not an answer.
    world.emulator.press(bot["id"], newcomer, newcomer["id"], challenge["message_id"], "0")
    world.emulator.press(bot["id"], newcomer, newcomer["id"], challenge["message_id"], wrong["callback_data"])

    def current() -> dict[str, Any]:
        return next(
            m for m in world.emulator.chat(bot["id"], newcomer["id"]) if m["message_id"] == challenge["message_id"]
        )

    wait_for(lambda: current().get("edit_date") is not None, WAIT, "a new challenge after the wrong tap")
    retry = current()
    retry_target = retry["text"].rsplit(" ", 1)[1].rstrip(".")
    right = next(b for row in retry["reply_markup"]["inline_keyboard"] for b in row if b["text"] == retry_target)
    world.emulator.press(bot["id"], newcomer, newcomer["id"], challenge["message_id"], right["callback_data"])
    wait_for(lambda: "Thank you" in current()["text"], WAIT, "passed")

    got_newcomer = lambda: [m["text"] for m in world.emulator.bot_messages(bot["id"], newcomer["id"])]  # noqa: E731
    world.emulator.send_text(bot["id"], newcomer, "/start")
    wait_for(lambda: len(got_newcomer()) == 2, WAIT, "the welcome once passed")
    assert got_newcomer()[1] == got_regular()[0]

    world.emulator.send_text(bot["id"], regular, "/start")
    wait_for(lambda: len(got_regular()) == 2, WAIT, "a known user served without a challenge")
    assert got_regular()[1] == got_regular()[0]


def test_managed_bot_created_without_pasting_a_token(world: World) -> None:
    admin = Chat(world, user(78001))
    (reply,) = admin.say("/newbot")
    assert reply["reply_markup"]["keyboard"][0][0]["request_managed_bot"]
    created = world.emulator.create_managed_bot(world.manager_id, admin.user, "made_78001_bot")
    world.tokens.append(created["token"])
    saved, registered = admin.replies(2)
    assert saved["text"] == "✅ Dado sensível salvo com segurança."
    assert "@made_78001_bot" in registered["plain_text"]
    customer = {"id": 78099, "first_name": "Cli"}
    got = answers(world, created, customer, "/start")
    wait_for(lambda: bool(got()), WAIT, "the managed bot's welcome")
    (listing,) = admin.say("/mybots")
    assert "@made_78001_bot" in listing["plain_text"]
    # Like Telegram, the emulator also put a service message in the chat; it got no reply of its own.
    service = [m for m in admin.transcript() if not m["from_bot"] and m.get("service")]
    assert service and service[0]["service"]["managed_bot_created"]["bot"]["username"] == "made_78001_bot"
    assert render("mgr_unknown", "pt-br") not in [m["text"] for m in admin.bot_messages()]


def test_a_managed_bot_owner_change_in_telegram_moves_the_bot(world: World) -> None:
    first, second = Chat(world, user(78101)), Chat(world, user(78102, "en"))
    created = world.emulator.create_managed_bot(world.manager_id, first.user, "moved_78101_bot")
    world.tokens.append(created["token"])
    first.replies(2)
    second.say("/start")  # the new owner has a chat with the manager bot (a bot cannot open one)
    world.emulator.transfer_managed_bot(world.manager_id, int(created["id"]), second.user)
    saved, registered = second.replies(2)
    assert saved["text"] == "✅ Sensitive data stored securely."
    assert "@moved_78101_bot" in registered["plain_text"]
    (listing,) = second.say("/mybots")
    assert "@moved_78101_bot" in listing["plain_text"]
    (old,) = first.say("/mybots")
    assert "@moved_78101_bot" not in old["plain_text"]
    # The bot keeps answering (token and webhook secret refreshed for the new owner).
    got = answers(world, created, {"id": 78199, "first_name": "Cli"}, "/start")
    wait_for(lambda: bool(got()), WAIT, "the moved bot's welcome")


def _bot_id_in_db(world: World, username: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(world.stack.db_url)
    try:
        with engine.connect() as connection:
            return str(
                connection.execute(sa.text("select id from bots where username = :u"), {"u": username}).scalar_one()
            )
    finally:
        engine.dispose()


def test_zz_no_token_rests_in_clear_anywhere(world: World) -> None:
    """After every flow above: Redis keys and queue messages, database rows and log lines hold no token."""
    secrets = [t for token in world.tokens for t in (token, token.split(":", 1)[1])]
    assert len(world.tokens) >= 10
    assert database_hits(world.stack.db_url, secrets) == []
    hits, seen = redis_hits(world.stack.config.redis_url, secrets)
    assert seen > 0
    assert hits == []
    logs = world.stack.log_text()
    assert text_hits(logs, secrets) == []
    assert re.search(r"\d{8,10}:[A-Za-z0-9_-]{30,}", logs) is None
