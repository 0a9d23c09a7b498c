"""The ChatLane contract on a real redis-server: the one-script-per-step Redis lane and the lane composed of the
fine-grained Redis adapters must behave the same (DrainChat relies on either)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.chat_lane import ComposedChatLane
from tgm.domain.lane import LockKeeper
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import RedisChatMailbox
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks
from tgm.services.dispatcher.adapters.redis_chat_lane import RedisChatLane
from tgm.services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator
from tgm.services.dispatcher.adapters.sent_marks import DeferredSentMarks, sent_mark_key
from tgm.services.dispatcher.outbound.store import RedisOutboxStore

pytestmark = pytest.mark.redis

BOT, CHAT = "bot-1", "42"


def envelope(update_id: int) -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"message_id": 1, "chat": {"id": 42}, "text": "/start"}}
    return UpdateEnvelope(BOT, update_id, 1.0, f"r{update_id}", update)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    yield c
    c.close()


@pytest.fixture(params=["scripted", "composed"])
def lane(request: pytest.FixtureRequest, client: redis.Redis) -> Any:
    if request.param == "scripted":
        return RedisChatLane(client, dedup_ttl_seconds=3600)
    return ComposedChatLane(RedisChatMailbox(client), RedisLocks(client), RedisUpdateDeduplicator(client, 3600))


def test_claim_reads_the_head_in_order_and_clears_the_drain_due_flag(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    for n in (1, 2, 3):
        box.push(CHAT, envelope(n))
    assert box.mark_drain_pending(BOT, CHAT)
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim is not None and claim.items
    assert claim.items[0].item.envelope == envelope(1)
    assert [entry.item.envelope.update_id for entry in claim.items] == [1, 2, 3][: len(claim.items)]
    assert box.mark_drain_pending(BOT, CHAT), "the claim must clear the flag so the next push schedules a drain"


def test_a_held_chat_cannot_be_claimed_until_released(lane: Any, client: redis.Redis) -> None:
    RedisChatMailbox(client).push(CHAT, envelope(1))
    first = lane.claim(BOT, CHAT, 5.0, 20)
    assert first is not None
    assert lane.claim(BOT, CHAT, 5.0, 20) is None
    assert lane.release(BOT, CHAT, first.owner) == 1
    assert lane.claim(BOT, CHAT, 5.0, 20) is not None


def test_complete_marks_done_pops_and_clears_failures(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(7))
    box.push(CHAT, envelope(8))
    box.record_failure(BOT, CHAT, 7, 123.5)
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    head = claim.items[0]
    assert (head.done, head.attempts, head.retry_at) == (False, 1, 123.5)
    assert lane.complete(BOT, CHAT, claim.owner, head.item, 7, mark_done=True, ttl_seconds=5.0)
    assert RedisUpdateDeduplicator(client).already_done(BOT, 7)
    assert box.failures(BOT, CHAT, 7) == (0, 0.0)
    assert box.peek(BOT, CHAT).envelope == envelope(8)
    assert lane.release(BOT, CHAT, claim.owner) == 1


def test_a_done_update_is_reported_done(lane: Any, client: redis.Redis) -> None:
    RedisChatMailbox(client).push(CHAT, envelope(9))
    RedisUpdateDeduplicator(client).mark_done(BOT, 9)
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim.items[0].done


def test_complete_without_the_lock_changes_nothing(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    client.set("tgm:lock:chat:bot-1:42", "someone-else")  # the TTL passed and another drain took the chat
    assert not lane.complete(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True, ttl_seconds=5.0)
    assert box.size(BOT, CHAT) == 1
    assert not RedisUpdateDeduplicator(client).already_done(BOT, 1)
    assert lane.release(BOT, CHAT, claim.owner) == 1
    assert client.get("tgm:lock:chat:bot-1:42") == b"someone-else", "release must not free another owner's lock"


def test_complete_pops_only_the_item_it_was_given(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    client.lpop("tgm:mbox:bot-1:42")
    box.push(CHAT, envelope(2))  # the head changed under us
    assert lane.complete(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=False, ttl_seconds=5.0)
    assert box.peek(BOT, CHAT).envelope == envelope(2)


def test_a_malformed_item_comes_back_without_an_envelope(lane: Any, client: redis.Redis) -> None:
    client.rpush("tgm:mbox:bot-1:42", b"{not json")
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim.items[0].item.envelope is None and not claim.items[0].done
    assert lane.complete(BOT, CHAT, claim.owner, claim.items[0].item, None, mark_done=False, ttl_seconds=5.0)
    assert lane.release(BOT, CHAT, claim.owner) == 0


def test_renew_keeps_only_our_lock(lane: Any, client: redis.Redis) -> None:
    RedisChatMailbox(client).push(CHAT, envelope(1))
    claim = lane.claim(BOT, CHAT, 0.5, 20)
    assert lane.renew(BOT, CHAT, claim.owner, 30.0)
    assert client.pttl("tgm:lock:chat:bot-1:42") > 10_000
    assert not lane.renew(BOT, CHAT, "not-the-owner", 30.0)


def test_recorded_failures_come_back_with_the_next_claim(lane: Any, client: redis.Redis) -> None:
    RedisChatMailbox(client).push(CHAT, envelope(4))
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert lane.record_failure(BOT, CHAT, 4, 99.5) == 1
    assert lane.record_failure(BOT, CHAT, 4, 123.0) == 2
    lane.release(BOT, CHAT, claim.owner)
    again = lane.claim(BOT, CHAT, 5.0, 20)
    assert (again.items[0].attempts, again.items[0].retry_at) == (2, 123.0)


def test_complete_and_release_does_both_and_counts_what_is_left(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(5))
    box.push(CHAT, envelope(6))
    box.record_failure(BOT, CHAT, 5, 10.0)
    claim = lane.claim(BOT, CHAT, 5.0, 1)
    assert lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 5, mark_done=True) == 1
    assert RedisUpdateDeduplicator(client).already_done(BOT, 5)
    assert box.failures(BOT, CHAT, 5) == (0, 0.0)
    assert box.peek(BOT, CHAT).envelope == envelope(6)
    assert client.get("tgm:lock:chat:bot-1:42") is None, "the chat must be free for the next drain"
    assert lane.claim(BOT, CHAT, 5.0, 20) is not None


def test_complete_and_release_without_the_lock_changes_nothing(lane: Any, client: redis.Redis) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    client.set("tgm:lock:chat:bot-1:42", "someone-else")
    assert lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True) is None
    assert box.size(BOT, CHAT) == 1
    assert not RedisUpdateDeduplicator(client).already_done(BOT, 1)
    assert client.get("tgm:lock:chat:bot-1:42") == b"someone-else"


def test_an_item_forged_in_redis_is_dropped_and_the_chat_moves_on(client: redis.Redis) -> None:
    """Issue 11, item 5: someone who can write to Redis but has no ENVELOPE_SIGNING_KEY cannot inject updates."""
    from tgm.domain.clock import SystemClock
    from tgm.domain.use_cases.drain_chat import DrainChat
    from tgm.messaging.envelope_signing import EnvelopeSigner
    from tgm.messaging.mailbox import encode
    from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters

    signer = EnvelopeSigner(b"s" * 32)
    client.rpush("tgm:mbox:bot-1:42", encode(envelope(1)))  # forged: written without the key
    RedisChatMailbox(client, signer=signer).push(CHAT, envelope(2))  # the gateway's
    handled: list[int] = []
    lane = RedisChatLane(client, dedup_ttl_seconds=3600, signer=signer)
    drain = DrainChat(
        RedisChatMailbox(client, signer=signer),
        RedisLocks(client),
        RedisUpdateDeduplicator(client, 3600),
        lambda: lambda env: handled.append(env.update_id),
        InMemoryDeadLetters(),
        SystemClock(),
        lane=lane,
        keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
    )
    result = drain(BOT, CHAT)
    assert handled == [2], "the forged update never reaches a handler"
    assert (result.handled, result.skipped) == (1, 1)
    assert client.llen("tgm:mbox:bot-1:42") == 0


# ------------------------------------------------------------------ sent marks deferred to the completion (issue 8)


@pytest.fixture
def marks(client: redis.Redis) -> DeferredSentMarks:
    return DeferredSentMarks(RedisOutboxStore(client).mark_sent)


@pytest.fixture
def marking_lane(client: redis.Redis, marks: DeferredSentMarks) -> RedisChatLane:
    return RedisChatLane(client, dedup_ttl_seconds=3600, sent_marks=marks)


def test_the_completion_writes_the_sent_marks_its_thread_deferred(
    marking_lane: RedisChatLane, marks: DeferredSentMarks, client: redis.Redis
) -> None:
    store, box = RedisOutboxStore(client), RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    box.push(CHAT, envelope(2))
    claim = marking_lane.claim(BOT, CHAT, 5.0, 20)
    marks.defer("call-1")
    assert not store.is_sent("call-1"), "deferred: nothing written before the completion"
    assert marking_lane.complete(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True, ttl_seconds=5.0)
    assert store.is_sent("call-1")
    assert 23 * 3600 < client.ttl(sent_mark_key("call-1")) <= 24 * 3600
    marks.defer("call-2")
    assert marking_lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[1].item, 2, mark_done=True) == 0
    assert store.is_sent("call-2")
    assert marks.take() == [], "each mark is taken by one completion"


def test_a_completion_that_lost_the_chat_still_writes_the_sent_marks(
    marking_lane: RedisChatLane, marks: DeferredSentMarks, client: redis.Redis
) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    claim = marking_lane.claim(BOT, CHAT, 5.0, 20)
    client.set(f"tgm:lock:chat:{BOT}:{CHAT}", "someone-else")
    marks.defer("call-1")
    assert not marking_lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True)
    assert RedisOutboxStore(client).is_sent("call-1"), "the reply went out: the new holder must not send it again"
    assert box.peek(BOT, CHAT).envelope == envelope(1), "the rest is the new holder's"
    assert not RedisUpdateDeduplicator(client).already_done(BOT, 1)


def test_marks_deferred_before_a_failure_or_a_lost_chat_are_written_by_the_record_or_the_release(
    marking_lane: RedisChatLane, marks: DeferredSentMarks, client: redis.Redis
) -> None:
    store = RedisOutboxStore(client)
    RedisChatMailbox(client).push(CHAT, envelope(1))
    claim = marking_lane.claim(BOT, CHAT, 5.0, 20)
    marks.defer("call-1")
    assert marking_lane.record_failure(BOT, CHAT, 1, 99.0) == 1
    assert store.is_sent("call-1")
    marks.defer("call-2")
    marking_lane.release(BOT, CHAT, claim.owner)
    assert store.is_sent("call-2")


def test_marks_wait_for_a_completion_on_the_thread_that_sent_them(
    marking_lane: RedisChatLane, marks: DeferredSentMarks, client: redis.Redis
) -> None:
    RedisChatMailbox(client).push(CHAT, envelope(1))
    claim = marking_lane.claim(BOT, CHAT, 5.0, 20)
    other = threading.Thread(target=marks.defer, args=("other-chat-call",))
    other.start()
    other.join()
    assert marking_lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True) == 0
    assert not RedisOutboxStore(client).is_sent("other-chat-call"), "another thread's drain writes its own marks"


def test_a_completion_that_fails_keeps_the_marks_for_the_next_one(
    marking_lane: RedisChatLane, marks: DeferredSentMarks, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = RedisChatMailbox(client)
    box.push(CHAT, envelope(1))
    claim = marking_lane.claim(BOT, CHAT, 5.0, 20)
    marks.defer("call-1")
    script = marking_lane._complete_and_release

    def unreachable(**_: Any) -> Any:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(marking_lane, "_complete_and_release", unreachable)
    with pytest.raises(redis.ConnectionError):
        marking_lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True)
    monkeypatch.setattr(marking_lane, "_complete_and_release", script)
    assert marking_lane.complete_and_release(BOT, CHAT, claim.owner, claim.items[0].item, 1, mark_done=True) == 0
    assert RedisOutboxStore(client).is_sent("call-1")
