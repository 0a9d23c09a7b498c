"""Hostile and strange webhook bodies (issue 10), with the right secret: property tests over Update-shaped JSON.

The gateway never answers 5xx for a body that can never be enqueued (Telegram would retry it forever and hold
the chat behind it): it is 200 (enqueued) or 4xx. What it enqueues survives every serializer on the path: the
mailbox encoding, and the Lua claim script on a real Redis (cjson), back to the same update.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.redis_server import RedisServer
from tests.unit.gateway.test_webhook import PUBLIC_A, SECRET_A, Harness
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import RedisChatMailbox, decode, encode
from tgm.services.dispatcher.adapters.redis_chat_lane import RedisChatLane

pytestmark = pytest.mark.redis

# Text that breaks naive code: lone surrogates, NUL and other controls, bidi overrides, non-BMP characters.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Lo", "So"]),
        st.sampled_from(["\u0000", "\u202e", "\u2066", "\ud800", "\udfff", "\U0001f600", '"', "\\", "/"]),
    ),
    max_size=40,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=25,
)


@st.composite
def update_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """An Update whose every field may have the wrong type."""
    chat = draw(st.one_of(st.fixed_dictionaries({"id": json_values, "type": json_values}), json_values))
    message = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"message_id": json_values, "chat": st.just(chat), "from": json_values, "text": nasty_text}
            ),
            json_values,
        )
    )
    update: dict[str, Any] = {
        "update_id": draw(st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values)),
        draw(st.sampled_from(["message", "edited_message", "callback_query", "my_chat_member"])): message,
    }
    update.update(draw(st.dictionaries(nasty_text, json_values, max_size=3)))
    return update


def deeply_nested(depth: int) -> bytes:
    return b'{"update_id": 7, "message": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture(scope="module")
def gw() -> Iterator[Harness]:
    harness = Harness()
    recorded = harness.queue.envelopes

    async def encode_then_record(envelope: UpdateEnvelope) -> bool:
        # What the Redis queue does first: the mailbox encoding (raises UnencodableUpdate when nothing can carry it).
        recorded.append(decode(encode(envelope)).envelope or envelope)
        return True

    harness.queue.enqueue = encode_then_record  # type: ignore[method-assign]
    with harness.client:
        yield harness


@pytest.fixture(scope="module")
def lane(redis_server: RedisServer) -> Iterator[tuple[RedisChatLane, RedisChatMailbox, redis.Redis]]:
    client = redis.Redis.from_url(redis_server.url)
    yield RedisChatLane(client), RedisChatMailbox(client), client
    client.close()


def check(gw: Harness, lane: tuple[RedisChatLane, RedisChatMailbox, redis.Redis], body: bytes) -> int:
    before = len(gw.queue.envelopes)
    response = gw.post(PUBLIC_A, content=body, secret=SECRET_A)
    assert response.status_code < 500, (response.status_code, body[:200])
    assert response.status_code in (200, 400, 413), (response.status_code, body[:200])
    if response.status_code != 200:
        assert len(gw.queue.envelopes) == before, "a refused body must not be enqueued"
        return response.status_code
    if len(gw.queue.envelopes) == before:
        return 200  # accepted and set aside: nothing on the path can carry it (logged, never retried)
    [envelope] = gw.queue.envelopes[before:]
    assert decode(encode(envelope)).envelope == envelope, "the mailbox encoding must give the same update back"
    # The dispatcher's claim script reads the stored envelope with Lua's cjson: it must not fail on it.
    scripted, mailbox, client = lane
    client.flushdb()
    mailbox.push("1", envelope)
    claim = scripted.claim(envelope.bot_id, "1", 5.0, 20)
    assert claim is not None and [item.item.envelope for item in claim.items] == [envelope]
    return 200


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(update=update_shaped())
def test_update_shaped_json_is_enqueued_intact_or_refused_with_a_4xx(
    gw: Harness, lane: tuple[RedisChatLane, RedisChatMailbox, redis.Redis], update: dict[str, Any]
) -> None:
    body = json.dumps(update).encode()  # ensure_ascii: lone surrogates travel as \\uXXXX escapes, as JSON allows
    status = check(gw, lane, body)
    update_id = update["update_id"]
    if status == 200:
        assert isinstance(update_id, int) and not isinstance(update_id, bool)
        assert 0 <= update_id < 2**53, "an update id Lua's doubles and the dedup keys cannot hold exactly"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_never_get_a_5xx(
    gw: Harness, lane: tuple[RedisChatLane, RedisChatMailbox, redis.Redis], body: bytes
) -> None:
    check(gw, lane, body)


@pytest.mark.parametrize(
    ("depth", "status"),
    [
        (10, 200),  # answered 200 and set aside: Telegram must not retry it
        (250, 200),  # as deep as orjson writes
        (1000, 200),  # deeper than the encoders go: answered 200 and set aside (Telegram must not retry it)
        (1100, 400),  # deeper than any Update and than the JSON parsers' recursion: refused, not crashed
        (2000, 400),
        (100_000, 413),  # 200 kB, over the harness's 4 kB cap: a clean 413, not a reset
    ],
)
def test_deep_nesting_is_set_aside_or_refused(
    gw: Harness, lane: tuple[RedisChatLane, RedisChatMailbox, redis.Redis], depth: int, status: int
) -> None:
    before = len(gw.queue.envelopes)
    assert check(gw, lane, deeply_nested(depth)) == status
    # A "message" that is nested lists is no Telegram message: answered 200 (never retried) and never enqueued.
    assert len(gw.queue.envelopes) == before, "set aside, not enqueued"


def test_duplicate_keys_keep_the_last_value_like_telegram_clients_do(
    gw: Harness, lane: tuple[RedisChatLane, RedisChatMailbox, redis.Redis]
) -> None:
    body = b'{"update_id": 5, "update_id": 6, "message": {"text": "a", "text": "b", "chat": {"id": 1}}}'
    assert check(gw, lane, body) == 200
    envelope = gw.queue.envelopes[-1]
    assert envelope.update_id == 6 and envelope.update["message"]["text"] == "b"
