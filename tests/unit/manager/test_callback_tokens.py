"""Signed callback_data: every rejection case answers None, and a good token round-trips."""

from __future__ import annotations

import base64

import pytest

from tgm.domain.callback_tokens import MAX_CALLBACK_DATA_BYTES, CallbackAction, CallbackTokens, key_id
from tgm.domain.clock import ManualClock

KEY = b"k" * 32
BOT = "0b8f2c1e-4a6d-4f1b-9c2e-7d3a5b6c8e9f"
USER, CHAT = 4242, 4242


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tokens(clock: ManualClock) -> CallbackTokens:
    return CallbackTokens(KEY, clock, ttl_seconds=300)


def test_round_trip_and_size(tokens: CallbackTokens) -> None:
    data = tokens.sign(CallbackAction.DELETE_DO, BOT, USER, CHAT)
    assert len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
    claim = tokens.verify(data, USER, CHAT)
    assert claim is not None
    assert claim.action is CallbackAction.DELETE_DO
    assert claim.bot_id == BOT
    assert tokens.verify(tokens.sign(CallbackAction.CANCEL, None, USER, CHAT), USER, CHAT).bot_id is None  # type: ignore[union-attr]


def test_two_signatures_of_the_same_button_differ(tokens: CallbackTokens) -> None:
    assert tokens.sign(CallbackAction.ROTATE, BOT, USER, CHAT) != tokens.sign(CallbackAction.ROTATE, BOT, USER, CHAT)


def test_altered_token_is_refused(tokens: CallbackTokens) -> None:
    data = tokens.sign(CallbackAction.DISABLE, BOT, USER, CHAT)
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    for position in (1, 5, 20, len(raw) - 1):  # action, bot ref, issued-at, MAC
        forged = bytearray(raw)
        forged[position] ^= 0x01
        altered = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        assert tokens.verify(altered, USER, CHAT) is None


def test_other_bot_id_swapped_in_is_refused(tokens: CallbackTokens) -> None:
    mine = base64.urlsafe_b64decode(tokens.sign(CallbackAction.DELETE_DO, BOT, USER, CHAT) + "==")
    other = "11111111-2222-3333-4444-555555555555"
    theirs = base64.urlsafe_b64decode(tokens.sign(CallbackAction.DELETE_DO, other, USER, CHAT) + "==")
    spliced = mine[:2] + theirs[2:18] + mine[18:]
    assert tokens.verify(base64.urlsafe_b64encode(spliced).rstrip(b"=").decode(), USER, CHAT) is None


def test_expired_token_is_refused(tokens: CallbackTokens, clock: ManualClock) -> None:
    data = tokens.sign(CallbackAction.STATS, BOT, USER, CHAT)
    clock.advance(300)
    assert tokens.verify(data, USER, CHAT) is not None
    clock.advance(1)
    assert tokens.verify(data, USER, CHAT) is None


def test_token_from_the_future_is_refused(clock: ManualClock) -> None:
    issuer = CallbackTokens(KEY, clock)
    data = issuer.sign(CallbackAction.STATS, BOT, USER, CHAT)
    clock.advance(-120)
    assert issuer.verify(data, USER, CHAT) is None


def test_other_user_or_chat_is_refused(tokens: CallbackTokens) -> None:
    data = tokens.sign(CallbackAction.DELETE_DO, BOT, USER, CHAT)
    assert tokens.verify(data, USER + 1, CHAT) is None
    assert tokens.verify(data, USER, CHAT + 1) is None


def test_other_key_is_refused(tokens: CallbackTokens, clock: ManualClock) -> None:
    data = CallbackTokens(b"x" * 32, clock).sign(CallbackAction.DELETE_DO, BOT, USER, CHAT)
    assert tokens.verify(data, USER, CHAT) is None


@pytest.mark.parametrize(
    "data",
    ["", "garbage", "a" * 65, "ü" * 10, "!!!!", "AAAA", base64.urlsafe_b64encode(b"\x00" * 38).decode().rstrip("=")],
)
def test_unknown_tokens_are_refused(tokens: CallbackTokens, data: str) -> None:
    assert tokens.verify(data, USER, CHAT) is None


def test_a_short_key_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        CallbackTokens(b"short", clock)


def test_a_rotation_keeps_open_buttons_working_until_the_previous_key_is_dropped(clock: ManualClock) -> None:
    old, new = b"o" * 32, b"n" * 32
    before = CallbackTokens(old, clock).sign(CallbackAction.DELETE_ASK, BOT, USER, CHAT)
    during = CallbackTokens(new, clock, previous_keys=[old])
    assert during.verify(before, USER, CHAT) is not None, "a button issued before the rotation still works"
    fresh = during.sign(CallbackAction.DELETE_ASK, BOT, USER, CHAT)
    raw = base64.urlsafe_b64decode(fresh + "=" * (-len(fresh) % 4))
    assert raw[1] == key_id(new) != key_id(old), "new buttons name the new key"
    assert CallbackTokens(old, clock).verify(fresh, USER, CHAT) is None
    after = CallbackTokens(new, clock)
    assert after.verify(before, USER, CHAT) is None, "once the previous key is dropped its buttons stop working"
    assert after.verify(fresh, USER, CHAT) is not None


def test_a_version_1_button_without_a_key_id_is_still_read(clock: ManualClock) -> None:
    import hashlib
    import hmac
    import struct

    body = struct.pack(">BB16sI4s", 1, int(CallbackAction.STATS), bytes(16), int(clock.now().timestamp()), b"abcd")
    mac = hmac.new(KEY, struct.pack(">qq", USER, CHAT) + body, hashlib.sha256).digest()[:12]
    legacy = base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()
    claim = CallbackTokens(b"n" * 32, clock, previous_keys=[KEY]).verify(legacy, USER, CHAT)
    assert claim is not None and claim.action is CallbackAction.STATS
    assert CallbackTokens(b"n" * 32, clock).verify(legacy, USER, CHAT) is None


def test_a_button_naming_a_key_nobody_holds_is_refused(tokens: CallbackTokens) -> None:
    data = tokens.sign(CallbackAction.STATS, BOT, USER, CHAT)
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    raw[1] ^= 0xFF
    assert tokens.verify(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(), USER, CHAT) is None


def test_a_short_previous_key_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        CallbackTokens(KEY, clock, previous_keys=[b"short"])
