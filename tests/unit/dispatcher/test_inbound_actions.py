"""Which key the inbound guard limits an update under, and what a refused user is told."""

from __future__ import annotations

from typing import Any

from tests.support.outbox import PerCallOutbox
from tgm.domain.bots import RateRule
from tgm.domain.inbound import BotActions, InboundGuard, InboundPolicy, limited_action
from tgm.domain.updates import UpdateEnvelope
from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns, InMemoryRateLimiter

MANAGED = BotActions(commands=frozenset({"/start", "/price"}), callbacks=frozenset())
MANAGER = BotActions(commands=frozenset({"/start", "/addbot"}), other_commands=True, private_text=True)
POLICY = InboundPolicy.parse('{"cmd:/special": {"limit": 2, "window": 60}}')


def message(text: str, chat_type: str = "private", chat_id: int = 5) -> UpdateEnvelope:
    update = {"update_id": 1, "message": {"chat": {"id": chat_id, "type": chat_type}, "from": {"id": 9}, "text": text}}
    return UpdateEnvelope("bot-1", 1, 0.0, "r", update)


def callback(data: str, update_id: int = 1) -> UpdateEnvelope:
    update = {
        "update_id": update_id,
        "callback_query": {"id": f"cq{update_id}", "from": {"id": 9}, "data": data, "message": {"chat": {"id": 5}}},
    }
    return UpdateEnvelope("bot-1", update_id, 0.0, "r", update)


def test_unknown_commands_share_one_bucket_unless_named_or_defined() -> None:
    assert limited_action(message("/price"), MANAGER, POLICY.names) == "cmd:*"
    assert limited_action(message("/x1"), MANAGER, POLICY.names) == "cmd:*"
    assert limited_action(message("/x2@SomeBot"), MANAGER, POLICY.names) == "cmd:*"
    assert limited_action(message("/addbot tok"), MANAGER, POLICY.names) == "cmd:/addbot"
    assert limited_action(message("/special"), MANAGER, POLICY.names) == "cmd:/special"
    assert limited_action(message("/x1"), None, POLICY.names) == "cmd:*"  # bot unknown: conservative


def test_only_what_the_bot_handles_is_limited() -> None:
    assert limited_action(message("/price"), MANAGED, POLICY.names) == "cmd:/price"
    assert limited_action(message("/nope"), MANAGED, POLICY.names) is None  # the managed bot ignores it
    assert limited_action(message("hello"), MANAGED, POLICY.names) is None
    assert limited_action(message("hello", "group", -100), MANAGER, POLICY.names) is None  # group chatter
    assert limited_action(message("hello"), MANAGER, POLICY.names) == "msg"


def test_unknown_callback_actions_share_one_bucket() -> None:
    assert limited_action(callback("evil1:x"), MANAGED, POLICY.names) == "cb:*"
    assert limited_action(callback("evil2"), MANAGER, POLICY.names) == "cb:*"
    known = BotActions(callbacks=frozenset({"buy"}))
    assert limited_action(callback("buy:3"), known, POLICY.names) == "cb:buy"


class Outbox(PerCallOutbox):
    def __init__(self) -> None:
        self.answers: list[tuple[str, str | None]] = []

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.answers.append((callback_query_id, text))

    def send_message(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a callback refusal is answered on the button, not in the chat")


def test_every_refused_callback_is_answered_and_told_once() -> None:
    outbox = Outbox()
    policy = InboundPolicy.parse('{"cb:*": {"limit": 1, "window": 60}}')
    guard = InboundGuard(InMemoryRateLimiter(), InMemoryCooldowns(), outbox, policy, actions=lambda _: MANAGED)  # type: ignore[arg-type]
    verdicts = [guard.check(callback(f"a{i}", update_id=i)).allowed for i in range(1, 5)]
    assert verdicts == [True, False, False, False]
    assert [cq for cq, _ in outbox.answers] == ["cq2", "cq3", "cq4"]
    assert outbox.answers[0][1] is not None and outbox.answers[1][1] is None and outbox.answers[2][1] is None


class Told(PerCallOutbox):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def send_message(self, bot_id: str, chat_id: int, text: str, **_: Any) -> None:
        self.texts.append(text)

    def answer_callback_query(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("no button here")


def test_a_bots_own_limits_come_before_the_services_and_change_live() -> None:
    own: dict[str, BotActions] = {"bot-1": MANAGED}
    guard = InboundGuard(
        InMemoryRateLimiter(),
        InMemoryCooldowns(),
        Told(),  # type: ignore[arg-type]
        InboundPolicy.parse('{"cmd:/price": {"limit": 100, "window": 60}}'),
        actions=lambda bot_id: own[bot_id],
    )

    def allowed(n: int, text: str = "/price") -> list[bool]:
        return [guard.check(message(text)).allowed for _ in range(n)]

    assert allowed(3) == [True, True, True], "the service's 100 per minute"
    own["bot-1"] = BotActions(
        commands=MANAGED.commands, callbacks=frozenset(), rate_limits={"cmd:/price": RateRule(4, 60.0)}
    )
    # GCRA: the 3 hits at 100/min used 1.8 s of the new 4/min budget's 60 s, so 3 more pass, then none.
    assert allowed(4) == [True, True, True, False], "the bot's own 4 per minute, at once"
    own["bot-1"] = BotActions(commands=MANAGED.commands, callbacks=frozenset(), cooldowns={"cmd:/start": 60.0})
    assert allowed(1, "/start") == [True] and allowed(1, "/start") == [False], "the bot's own cooldown"


def test_a_bots_own_default_applies_where_the_service_names_no_rule() -> None:
    actions = BotActions(commands=MANAGED.commands, callbacks=frozenset(), rate_limits={"default": RateRule(1, 60.0)})
    policy = InboundPolicy.parse('{"cmd:/price": {"limit": 100, "window": 60}}')
    assert policy.rule_for("cmd:/start", actions) == RateRule(1, 60.0)
    assert policy.rule_for("cmd:/price", actions) == RateRule(100, 60.0), "the service's own rule for the action"
    assert policy.rule_for("cmd:/start", None) == policy.default


def test_a_bots_own_default_cooldown_applies_where_nothing_more_specific_does() -> None:
    actions = BotActions(commands=MANAGED.commands, callbacks=frozenset(), cooldowns={"default": 5.0, "cmd:/x": 1.0})
    policy = InboundPolicy.parse("", '{"cmd:/price": 30}')
    assert policy.cooldown_for("cmd:/x", actions) == 1.0
    assert policy.cooldown_for("cmd:/price", actions) == 30.0
    assert policy.cooldown_for("cmd:/start", actions) == 5.0
    assert policy.cooldown_for("cmd:/start", None) == 0.0


def _envelope(update: dict[str, Any]) -> UpdateEnvelope:
    return UpdateEnvelope("bot-1", 1, 0.0, "r", {"update_id": 1, **update})


def test_the_chat_key_is_the_chat_else_the_sender_else_one_shared_key() -> None:
    from tgm.domain.inbound import NO_CHAT, chat_key_of

    assert chat_key_of(message("hi", chat_id=-7)) == "-7"
    assert chat_key_of(callback("x")) == "5", "a button press orders with the chat of the message it is under"
    # An edit belongs to its chat (Bot API: edited_message carries chat), ordered with the messages it edits.
    assert chat_key_of(_envelope({"edited_message": {"chat": {"id": 5}, "from": {"id": 9}}})) == "5"
    assert chat_key_of(_envelope({"callback_query": {"id": "q", "from": {"id": 9}}})) == "u9", "inline: no chat"
    assert chat_key_of(_envelope({"managed_bot": {"user": {"id": 9}, "bot": {"id": 3}}})) == "u9"
    assert chat_key_of(_envelope({"inline_query": {"id": "q", "from": {"id": 9}}})) == NO_CHAT
    assert chat_key_of(_envelope({"message": {"chat": {"id": "5"}}})) == NO_CHAT, "malformed: a lane to refuse it in"


def test_an_edit_is_not_a_command_and_is_never_limited() -> None:
    edit = _envelope({"edited_message": {"chat": {"id": 5, "type": "private"}, "from": {"id": 9}, "text": "/price"}})
    assert edit.text is None
    assert limited_action(edit, MANAGED, POLICY.names) is None
    assert limited_action(edit, MANAGER, POLICY.names) is None


def test_a_bot_reading_every_private_message_limits_stickers_and_photos_too() -> None:
    sticker = {"update_id": 1, "message": {"chat": {"id": 5, "type": "private"}, "from": {"id": 9}, "sticker": {}}}
    envelope = UpdateEnvelope("bot-1", 1, 0.0, "r", sticker)
    inbox = BotActions(commands=frozenset({"/start"}), callbacks=frozenset(), private_text=True)
    assert limited_action(envelope, inbox, POLICY.names) == "msg"  # the inbox forwards it: counted as a message
    assert limited_action(envelope, MANAGED, POLICY.names) is None  # a bot that ignores it: nothing to limit
    group = {"update_id": 1, "message": {"chat": {"id": -5, "type": "group"}, "from": {"id": 9}, "sticker": {}}}
    assert limited_action(UpdateEnvelope("bot-1", 1, 0.0, "r", group), inbox, POLICY.names) is None
