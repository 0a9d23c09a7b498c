"""The one parser of Telegram's Update JSON: each kind read as the Bot API sends it, unknown kinds named as
unsupported, and anything malformed refused with MalformedUpdate — never another exception, whatever the JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgm.domain.telegram_update import (
    MalformedUpdate,
    TelegramUpdate,
    TelegramUser,
    UpdateKind,
    parse_update,
)

ALICE = {"id": 42, "is_bot": False, "first_name": "Alice", "username": "alice", "language_code": "en"}


def test_a_private_message() -> None:
    view = parse_update(
        {
            "update_id": 1,
            "message": {
                "message_id": 10,
                "chat": {"id": 42, "type": "private"},
                "from": ALICE,
                "text": "/start",
                "reply_to_message": {"message_id": 9},
            },
        }
    )
    assert view.kind is UpdateKind.MESSAGE and view.is_message
    assert (view.update_id, view.chat_id, view.chat_type, view.message_id) == (1, 42, "private", 10)
    assert view.sender == TelegramUser(42, False, "Alice", None, "alice", "en")
    assert (view.sender_id, view.language, view.text, view.reply_to_message_id) == (42, "en", "/start", 9)
    assert view.is_private
    assert view.callback_id is None and view.callback_data is None


def test_an_edited_message_has_its_chat_and_sender_but_is_not_a_new_message() -> None:
    view = parse_update({"update_id": 2, "edited_message": {"chat": {"id": -100, "type": "group"}, "from": ALICE}})
    assert view.kind is UpdateKind.EDITED_MESSAGE and not view.is_message
    assert (view.chat_id, view.sender_id, view.is_private) == (-100, 42, False)


def test_a_button_press_reads_the_chat_of_the_message_it_is_under() -> None:
    view = parse_update(
        {
            "update_id": 3,
            "callback_query": {
                "id": "q1",
                "from": ALICE,
                "data": "abc:1",
                "message": {"message_id": 77, "chat": {"id": 42, "type": "private"}, "text": "header"},
            },
        }
    )
    assert view.kind is UpdateKind.CALLBACK_QUERY
    assert (view.callback_id, view.callback_data, view.chat_id, view.message_id) == ("q1", "abc:1", 42, 77)
    assert (view.sender_id, view.text) == (42, "header")


def test_a_button_under_an_inline_message_has_no_chat() -> None:
    view = parse_update({"callback_query": {"id": "q", "from": ALICE, "inline_message_id": "x"}})
    assert (view.chat_id, view.message_id, view.sender_id) == (None, None, 42)


def test_a_managed_bot_update_names_its_creator_as_sender_and_the_new_bot() -> None:
    view = parse_update({"update_id": 4, "managed_bot": {"user": ALICE, "bot": {"id": 999, "is_bot": True}}})
    assert view.kind is UpdateKind.MANAGED_BOT
    assert view.sender_id == 42 and view.managed_bot is not None and view.managed_bot.id == 999
    assert view.chat_id is None


@pytest.mark.parametrize("kind", ["inline_query", "channel_post", "my_chat_member", "poll"])
def test_other_kinds_are_unsupported_by_name(kind: str) -> None:
    view = parse_update({"update_id": 5, kind: {"anything": [1, 2]}})
    assert view == TelegramUpdate(UpdateKind.UNSUPPORTED, update_id=5, unsupported_kind=kind)


def test_an_update_with_no_kind_is_unsupported() -> None:
    assert parse_update({"update_id": 6}).kind is UpdateKind.UNSUPPORTED


def test_a_chat_without_type_is_private_when_its_id_is_a_users() -> None:
    assert parse_update({"message": {"chat": {"id": 5}}}).is_private
    assert not parse_update({"message": {"chat": {"id": -5}}}).is_private
    assert not parse_update({"message": {}}).is_private


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ([], "must be a JSON object"),
        ("update", "must be a JSON object"),
        ({"update_id": "1"}, "update.update_id must be an integer"),
        ({"update_id": True}, "update.update_id must be an integer"),
        ({"message": "hi"}, "update.message must be an object"),
        ({"message": None}, "update.message is required"),
        ({"message": {"chat": 5}}, "message.chat must be an object"),
        ({"message": {"chat": {"id": "5"}}}, "message.chat.id must be an integer"),
        ({"message": {"chat": {"id": 5.0}}}, "message.chat.id must be an integer"),
        ({"message": {"chat": {"id": 5, "type": 1}}}, "message.chat.type must be a string"),
        ({"message": {"from": {"id": False}}}, "message.from.id must be an integer"),
        ({"message": {"from": {}}}, "message.from.id is required"),
        ({"message": {"from": {"id": 1, "is_bot": "no"}}}, "message.from.is_bot must be a boolean"),
        ({"message": {"from": {"id": 1, "language_code": 7}}}, "message.from.language_code must be a string"),
        ({"message": {"text": ["/start"]}}, "message.text must be a string"),
        ({"message": {"message_id": "10"}}, "message.message_id must be an integer"),
        ({"message": {"reply_to_message": 9}}, "message.reply_to_message must be an object"),
        ({"message": {"reply_to_message": {"message_id": "9"}}}, "reply_to_message.message_id must be an integer"),
        ({"edited_message": {"chat": {"id": []}}}, "edited_message.chat.id must be an integer"),
        ({"callback_query": {"from": ALICE}}, "callback_query.id is required"),
        ({"callback_query": {"id": 5, "from": ALICE}}, "callback_query.id must be a string"),
        ({"callback_query": {"id": "q"}}, "callback_query.from is required"),
        ({"callback_query": {"id": "q", "from": ALICE, "data": 1}}, "callback_query.data must be a string"),
        ({"callback_query": {"id": "q", "from": ALICE, "message": []}}, "callback_query.message must be an object"),
        ({"managed_bot": {"bot": {"id": 1}}}, "managed_bot.user is required"),
        ({"managed_bot": {"user": ALICE}}, "managed_bot.bot is required"),
        ({"managed_bot": {"user": ALICE, "bot": {"id": "1"}}}, "managed_bot.bot.id must be an integer"),
        ({"message": {}, "callback_query": {"id": "q", "from": ALICE}}, "one kind"),
    ],
)
def test_malformed_updates_are_refused_with_a_reason(update: Any, reason: str) -> None:
    with pytest.raises(MalformedUpdate, match=reason):
        parse_update(update)


def test_the_reason_names_fields_never_values() -> None:
    with pytest.raises(MalformedUpdate) as refused:
        parse_update({"message": {"text": {"secret": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}}})
    assert "ABCDEF" not in str(refused.value)


# Arbitrary JSON, and JSON shaped like an update with arbitrary values where tgm reads fields.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_field_names = st.sampled_from(
    (
        *("update_id", "message", "edited_message", "callback_query", "managed_bot", "chat", "from", "user", "bot"),
        *("id", "type", "text", "data", "message_id", "reply_to_message", "is_bot", "language_code", "first_name"),
    )
)
_update_like = st.recursive(
    _json,
    lambda inner: st.dictionaries(_field_names, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json, _update_like))
def test_any_json_parses_or_is_refused_as_malformed(raw: object) -> None:
    try:
        view = parse_update(raw)
    except MalformedUpdate:
        return
    assert isinstance(view.kind, UpdateKind)
    # What the view promises holds for whatever it accepted.
    for value in (view.chat_id, view.sender_id, view.message_id, view.reply_to_message_id, view.update_id):
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))
    for text in (view.text, view.callback_data, view.callback_id, view.language, view.chat_type):
        assert text is None or isinstance(text, str)
    if view.kind is UpdateKind.CALLBACK_QUERY:
        assert view.callback_id is not None and view.sender is not None
    if view.kind is UpdateKind.MANAGED_BOT:
        assert view.sender is not None and view.managed_bot is not None


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["message", "edited_message"]),
    chat_id=st.integers(),
    sender_id=st.integers(),
    text=st.text(),
)
def test_a_well_formed_message_is_read_back_exactly(kind: str, chat_id: int, sender_id: int, text: str) -> None:
    view = parse_update({"update_id": 1, kind: {"chat": {"id": chat_id}, "from": {"id": sender_id}, "text": text}})
    assert (view.kind.value, view.chat_id, view.sender_id, view.text) == (kind, chat_id, sender_id, text)
