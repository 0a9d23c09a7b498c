"""The manager bot's policies played as real chats through the emulator, on PostgreSQL + Redis.

One stack for the module, configured for these policies only (tests/e2e/test_manager_bot.py keeps its own):
an admin session of 1 s, buttons valid for 30 s (the settings' minimum), an ALLOWED_ADMIN_IDS list, and
EXTERNAL_API_ALLOW_PRIVATE so an API command may call the HTTP server this module starts on loopback.

Real time is only ever waited for by polling with a deadline: the session's Redis key going away, and the wall
clock passing a button's signed issue time + CALLBACK_TTL_SECONDS. The buttons that expire are issued when the
stack starts, so that wait overlaps the other conversations (the module takes about 40 s).
"""

from __future__ import annotations

import base64
import html
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from tests.e2e.test_manager_bot import Chat, World, answers, button, new_bot, user
from tests.support.secrets_scan import database_hits, redis_hits, text_hits
from tgm.domain.messages import render
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, wait_for

pytestmark = pytest.mark.e2e

WAIT = 60
CALLBACK_TTL = 30  # DispatcherSettings.callback_ttl_seconds: ge=30
SESSION_PREFIX = "tgm:mgr:session"  # src/tgm/services/dispatcher/manager_bot/state.py

SESSION_ADMIN = 81001
STALE_ADMIN = 82001
ALICE, BOB = 83001, 83002
LISTED, OUTSIDER = 84001, 84009
GROUP_ADMIN = 85001
API_ADMIN = 86001
ALLOWED = [SESSION_ADMIN, STALE_ADMIN, ALICE, BOB, LISTED, GROUP_ADMIN, API_ADMIN]
INVALID = "⚠️ Essa ação não é válida mais."


@dataclass
class Stale:
    """A /mybots listing whose buttons are left to expire while the other tests run."""

    chat: Chat
    bot: dict[str, Any]
    listing: dict[str, Any]


@dataclass
class Policies:
    world: World
    redis: redis.Redis
    stale: Stale
    api_hits: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def policies(postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Policies]:
    name = "tgm_manager_policies_e2e"
    db_url = postgres_server.fresh_database(name)
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("policies") / "run",
        **redis_server.stack_config(),
        db_url=db_url,
        extra_env={
            "dispatcher": {
                "OUTBOUND_PER_CHAT_PER_SECOND": "20",
                "ADMIN_SESSION_TTL_SECONDS": "1",
                "CALLBACK_TTL_SECONDS": str(CALLBACK_TTL),
                "ALLOWED_ADMIN_IDS": ",".join(str(i) for i in ALLOWED),
                "EXTERNAL_API_ALLOW_PRIVATE": "true",
            }
        },
    )
    stack = Stack(config).start()
    emulator = EmulatorControl(stack.emulator_url)
    try:
        assert stack.manager is not None
        manager_id = int(str(stack.manager["id"]))
        wait_for(lambda: bool(emulator.webhook(manager_id)["url"]), WAIT, "the manager bot's webhook")
        world = World(stack, emulator, manager_id, tokens=[str(stack.manager["token"])])
        # Issued now, pressed by the last test once they have expired.
        admin = Chat(world, user(STALE_ADMIN))
        bot = new_bot(world, "stale_82001_bot")
        admin.say(f"/addbot {bot['token']}", 2)
        (listing,) = admin.say("/mybots")
        yield Policies(world, client, Stale(admin, bot, listing))
    finally:
        emulator.close()
        stack.stop()
        client.close()


def issued_at(callback_data: str) -> int:
    """The signed issue time inside a button (src/tgm/domain/callback_tokens.py: version 2 is >BBB16sI4s + MAC, with
    a key id after the version; version 1 was >BB16sI4s + MAC)."""
    raw = base64.urlsafe_b64decode(callback_data + "=" * (-len(callback_data) % 4))
    offset = 19 if raw[0] == 2 else 18
    return int(struct.unpack(">I", raw[offset : offset + 4])[0])


def setwebhooks(world: World, bot: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in world.emulator.calls(bot["id"]) if c["method"].lower() == "setwebhook"]


def wait_session_expired(policies: Policies, user_id: int) -> None:
    key = f"{SESSION_PREFIX}:{user_id}"
    wait_for(lambda: not policies.redis.exists(key), 10, "the admin session to expire", interval=0.05)


# ------------------------------------------------------------------------------------------------- (1) session


def test_destructive_actions_after_the_session_expired_ask_to_confirm_then_work(policies: Policies) -> None:
    world = policies.world
    admin = Chat(world, user(SESSION_ADMIN))
    bot = new_bot(world, "sess_81001_bot")
    admin.say(f"/addbot {bot['token']}", 2)
    (listing,) = admin.say("/mybots")

    # Rotate: the session lapsed, so the admin is asked to confirm first and nothing happens yet.
    before = setwebhooks(world, bot)
    wait_session_expired(policies, SESSION_ADMIN)
    admin.press(listing, "Novo segredo")
    (ask,) = admin.replies()
    assert "Sua sessão de admin expirou" in ask["plain_text"] and "@sess_81001_bot" in ask["plain_text"]
    assert len(setwebhooks(world, bot)) == len(before)
    admin.press(ask, "Sou eu")
    (done,) = admin.replies()
    assert "Novo segredo de webhook" in done["plain_text"]
    after = setwebhooks(world, bot)
    assert len(after) == len(before) + 1
    assert after[-1]["params"]["secret_token"] != before[-1]["params"]["secret_token"]

    # Cancel on the confirmation changes nothing either.
    wait_session_expired(policies, SESSION_ADMIN)
    admin.press(listing, "Novo segredo")
    (ask,) = admin.replies()
    admin.press(ask, "Cancelar")
    (reply,) = admin.replies()
    assert "Cancelado" in reply["plain_text"]
    assert len(setwebhooks(world, bot)) == len(after)

    # Delete: the "are you sure" step renews the session; confirming after it lapsed asks who it is again.
    admin.press(listing, "Apagar")
    (confirm,) = admin.replies()
    assert "Apagar @sess_81001_bot?" in confirm["plain_text"]
    wait_session_expired(policies, SESSION_ADMIN)
    admin.press(confirm, "Sim, apagar")
    (ask,) = admin.replies()
    assert "Sua sessão de admin expirou" in ask["plain_text"]
    assert world.emulator.webhook(bot["id"])["url"] != ""  # not deleted yet
    admin.press(ask, "Sou eu")
    (done,) = admin.replies()
    assert "foi apagado" in done["plain_text"]
    assert world.emulator.webhook(bot["id"])["url"] == ""
    (reply,) = admin.say("/mybots")
    assert reply["plain_text"] == render("mgr_no_bots", "pt-br")


# ------------------------------------------------------------------------------------------------- (3) replay


def test_a_button_pressed_by_another_user_is_refused_and_changes_nothing(policies: Policies) -> None:
    world = policies.world
    alice, bob = Chat(world, user(ALICE)), Chat(world, user(BOB))
    bot = new_bot(world, "alice_83001_bot")
    alice.say(f"/addbot {bot['token']}", 2)
    (listing,) = alice.say("/mybots")
    bob.say("/start")
    bob_message = bob.bot_messages()[-1]["message_id"]
    webhooks = len(setwebhooks(world, bot))

    for label in ("Apagar", "Novo segredo", "Desativar", "@alice_83001_bot"):
        data = button(listing, label)
        # Bob (also a listed admin) presses Alice's button in Alice's chat, then replays its data in his own.
        for chat_id, message_id in ((ALICE, listing["message_id"]), (BOB, bob_message)):
            query = world.emulator.press(world.manager_id, bob.user, chat_id, message_id, data)
            assert alice.answer_of(str(query["callback_query_id"]))["answer_text"] == INVALID

    # Nothing changed: no new secret, still active, still answering; no message to either of them.
    assert len(setwebhooks(world, bot)) == webhooks
    (again,) = alice.say("/mybots")  # the next message in Alice's chat is this listing: nothing came before it
    assert "@alice_83001_bot" in again["plain_text"] and render("status_active", "pt-br") in again["plain_text"]
    (reply,) = bob.say("/mybots")
    assert reply["plain_text"] == render("mgr_no_bots", "pt-br")
    got = answers(world, bot, {"id": 83099, "first_name": "Cli"}, "/start")
    wait_for(lambda: bool(got()), WAIT, "alice's bot answering")


# ------------------------------------------------------------------------------------------------- (4) allow-list


def test_a_user_outside_allowed_admin_ids_cannot_manage_bots(policies: Policies) -> None:
    world = policies.world
    outsider = Chat(world, user(OUTSIDER))
    not_allowed = render("mgr_not_allowed", "pt-br")

    (reply,) = outsider.say("/start")  # what the bot does is no secret
    assert "Gerenciador de bots" in reply["plain_text"]
    for text in ("/mybots", "/addbot", "/newbot", "/setwelcome @x oi"):
        (reply,) = outsider.say(text)
        assert reply["plain_text"] == not_allowed, text

    bot = new_bot(world, "out_84009_bot")
    for text in (f"/addbot {bot['token']}", bot["token"]):
        message_id = outsider.send(text)
        (reply,) = outsider.replies()
        assert reply["plain_text"] == not_allowed
        assert outsider.message(message_id)["deleted"] is True  # the token still goes away
    assert world.emulator.webhook(bot["id"])["url"] == ""
    assert not [c for c in world.emulator.calls(bot["id"]) if c["method"].lower() == "getme"]

    # Creating a bot through the manager bot is refused too, and the new bot gets no webhook.
    created = world.emulator.create_managed_bot(world.manager_id, outsider.user, "made_84009_bot")
    world.tokens.append(created["token"])
    (reply,) = outsider.replies()
    assert reply["plain_text"] == not_allowed
    assert world.emulator.webhook(created["id"])["url"] == ""

    # Nothing was half-claimed: a listed admin registers the same bot.
    listed = Chat(world, user(LISTED))
    _saved, registered = listed.say(f"/addbot {bot['token']}", 2)
    assert "@out_84009_bot" in registered["plain_text"]


# ------------------------------------------------------------------------------------------------- (5) group


def test_a_token_pasted_in_a_group_is_not_registered_and_never_left_unflagged(policies: Policies) -> None:
    """Documented behaviour: the manager bot acts in private chats only. A token-shaped text in a group is
    sealed by the gateway like any other and the message is deleted at once; nothing is registered and
    nothing else is said. When Telegram refuses the delete (a bot that is not a group admin, which is
    what the emulator plays), the group is told to delete the message and revoke the token."""
    world = policies.world
    group = -1008500
    admin = user(GROUP_ADMIN)
    bot = new_bot(world, "grp_85001_bot")
    calls_before = len(world.emulator.calls(world.manager_id))
    sent = []
    for text in (f"/addbot {bot['token']}", f"token: {bot['token']}"):
        sent.append(int(world.emulator.send_text(world.manager_id, admin, text, chat_id=group)["message_id"]))

    def group_replies() -> list[dict[str, Any]]:
        return [m for m in world.emulator.chat(world.manager_id, group) if m["from_bot"]]

    wait_for(lambda: len(group_replies()) >= 2, WAIT, "the manager's answers in the group")
    warning = render("mgr_delete_token_yourself", "pt-br")
    assert [m["plain_text"] for m in group_replies()] == [warning, warning]
    deletes = [
        c["params"]
        for c in world.emulator.calls(world.manager_id)[calls_before:]
        if c["method"].lower() == "deletemessage"
    ]
    assert sorted(int(p["message_id"]) for p in deletes) == sorted(sent)
    assert all(int(p["chat_id"]) == group for p in deletes)

    # Not registered: no getMe, no webhook, not in the admin's list.
    assert world.emulator.webhook(bot["id"])["url"] == ""
    assert not [c for c in world.emulator.calls(bot["id"]) if c["method"].lower() == "getme"]
    (reply,) = Chat(world, admin).say("/mybots")
    assert reply["plain_text"] == render("mgr_no_bots", "pt-br")
    assert len(group_replies()) == 2  # the private /mybots came after: nothing more was said in the group


# ------------------------------------------------------------------------------------------------- (6) API


class EchoApi:
    """An HTTP API on loopback answering with markup around the text it was sent."""

    def __init__(self, host: str) -> None:
        self.hits: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                api.hits.append(query)
                body = f'<b>{query.get("text", "")}</b> & <a href="javascript:x">ok</a>'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def echo_api() -> Iterator[EchoApi]:
    api = EchoApi("127.0.0.1")
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_an_api_command_calls_the_api_and_its_answer_comes_back_escaped(policies: Policies, echo_api: EchoApi) -> None:
    world = policies.world
    admin = Chat(world, user(API_ADMIN, "en"))
    bot = new_bot(world, "api_86001_bot")
    admin.say(f"/addbot {bot['token']}", 2)

    # Refused when saved, whatever the dispatcher's flag: a javascript: URL and a private IP literal.
    (reply,) = admin.say("/setapi @api_86001_bot /hack javascript:alert(1)")
    assert reply["plain_text"].startswith("❌") and render("setting_url_scheme", "en") in reply["plain_text"]
    (reply,) = admin.say(f"/setapi @api_86001_bot /raw http://127.0.0.1:{echo_api.port}/q GET 3")
    assert "private or reserved" in reply["plain_text"] or "Invalid value" in reply["plain_text"]
    assert "now answers" not in reply["plain_text"]
    # A host name is checked when called; this stack's dispatcher allows loopback (EXTERNAL_API_ALLOW_PRIVATE).
    (reply,) = admin.say(f"/setapi @api_86001_bot /echo http://localhost:{echo_api.port}/q GET 3")
    assert "now answers /echo" in reply["plain_text"]
    (listing,) = admin.say("/mybots")
    admin.press(listing, "@api_86001_bot")
    (details,) = admin.replies()
    assert "/echo" in details["plain_text"] and "/hack" not in details["plain_text"]
    assert "/raw" not in details["plain_text"]

    customer = {"id": 86099, "first_name": "Cli", "language_code": "en"}
    said = "<i>hi</i> & bye"
    got = answers(world, bot, customer, f"/echo {said}")
    wait_for(lambda: bool(got()), WAIT, "the API command's answer")
    assert echo_api.hits == [{"command": "/echo", "text": said}]
    body = f'<b>{said}</b> & <a href="javascript:x">ok</a>'
    (reply,) = [m for m in world.emulator.bot_messages(bot["id"], customer["id"])]
    assert reply["plain_text"] == body  # shown as text: no markup, no link
    if reply.get("parse_mode"):
        assert reply["text"] == html.escape(body, quote=False)
    else:
        assert reply["text"] == body
    assert not (reply.get("reply_markup") or {})
    for text in ("/hack", "/raw", "/start"):  # never saved: the bot ignores them (and answers the /start after)
        world.emulator.send_text(bot["id"], customer, text)
    wait_for(lambda: len(got()) >= 2, WAIT, "the welcome after the unknown commands")
    assert len(got()) == 2 and "@api_86001_bot" in got()[1]
    assert len(echo_api.hits) == 1


# ------------------------------------------------------------------------------------------------- (2) expiry


def test_zy_an_expired_button_is_refused_and_changes_nothing(policies: Policies) -> None:
    world, stale = policies.world, policies.stale
    admin, bot, listing = stale.chat, stale.bot, stale.listing
    labels = ("Desativar", "Novo segredo", "Apagar", "Estatísticas", "@stale_82001_bot")
    newest = max(issued_at(button(listing, label)) for label in labels)
    # Expired once the whole second after issue + TTL has passed (the check is `now - issued_at > ttl`).
    wait_for(lambda: time.time() >= newest + CALLBACK_TTL + 1.2, WAIT, "the buttons to expire", interval=0.2)
    webhooks = len(setwebhooks(world, bot))
    for label in labels:
        query = admin.press(listing, label)
        assert admin.answer_of(query)["answer_text"] == INVALID, label

    assert len(setwebhooks(world, bot)) == webhooks
    (fresh,) = admin.say("/mybots")  # the next message in the chat: the stale presses said nothing
    assert "@stale_82001_bot" in fresh["plain_text"] and render("status_active", "pt-br") in fresh["plain_text"]
    got = answers(world, bot, {"id": 82099, "first_name": "Cli"}, "/start")
    wait_for(lambda: bool(got()), WAIT, "the stale admin's bot answering")
    # A fresh button still works.
    admin.press(fresh, "Desativar")
    (reply,) = admin.replies()
    assert "desativado" in reply["plain_text"]


def test_zz_no_token_rests_in_clear_anywhere(policies: Policies) -> None:
    world = policies.world
    secrets = [t for token in world.tokens for t in (token, token.split(":", 1)[1])]
    assert database_hits(world.stack.db_url, secrets) == []
    hits, seen = redis_hits(world.stack.config.redis_url, secrets)
    assert seen > 0
    assert hits == []
    logs = world.stack.log_text()
    assert text_hits(logs, secrets) == []
