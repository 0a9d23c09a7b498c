"""The CaptchaStore contract, in memory and on a real redis-server: known users, one open challenge, atomic
answers with a lock-out, and the new-user surge that puts a bot under attack."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.captcha import AnswerOutcome
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore, RedisCaptchaStore

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, client: redis.Redis) -> Any:
    def build(**limits: Any) -> Any:
        if request.param == "memory":
            return InMemoryCaptchaStore(FixedClock(), **limits)
        return RedisCaptchaStore(client, prefix=f"test-captcha-{uuid.uuid4().hex[:8]}", flush_seconds=3600, **limits)

    return build


class FixedClock:
    """One instant: every served user falls in one minute bucket (the Redis store flushes them in one script)."""

    def now(self) -> datetime:
        return datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)

    def monotonic(self) -> float:
        return 0.0


def settle(store: Any) -> None:
    if isinstance(store, RedisCaptchaStore):
        store.flush()


def test_served_users_are_known_and_others_are_not(make: Any) -> None:
    store = make()
    store.served("bot-1", 5)
    settle(store)
    assert store.gate("bot-1", 5).known
    assert not store.gate("bot-1", 6).known
    assert not store.gate("bot-2", 5).known, "per bot"


def test_one_challenge_at_a_time_and_a_right_answer_makes_the_user_known(make: Any) -> None:
    store = make()
    assert store.open("bot-1", 6, 2, 60)
    assert not store.open("bot-1", 6, 4, 60), "one open challenge per user"
    assert store.gate("bot-1", 6).open_answer == 2
    assert store.answer("bot-1", 6, 2, 0, 3, 60) == (AnswerOutcome.PASSED, 0)
    gate = store.gate("bot-1", 6)
    assert gate.known and gate.open_answer is None
    assert store.answer("bot-1", 6, 2, 0, 3, 60) == (AnswerOutcome.NONE_OPEN, 0)


def test_wrong_answers_move_the_answer_and_lock_the_user_out(make: Any) -> None:
    store = make()
    store.open("bot-1", 6, 2, 60)
    assert store.answer("bot-1", 6, 1, 5, 3, 60) == (AnswerOutcome.WRONG, 2)
    assert store.gate("bot-1", 6).open_answer == 5, "the new challenge's answer"
    assert store.answer("bot-1", 6, 2, 4, 3, 60) == (AnswerOutcome.WRONG, 1), "the old answer is wrong now"
    assert store.answer("bot-1", 6, 0, 3, 3, 60) == (AnswerOutcome.LOCKED, 0)
    gate = store.gate("bot-1", 6)
    assert 50 < gate.locked_for_seconds <= 60 and not gate.known and gate.open_answer is None


def test_two_taps_racing_pass_once(make: Any) -> None:
    store = make()
    store.open("bot-1", 6, 2, 60)
    outcomes: list[Any] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(store.answer("bot-1", 6, 2, 0, 3, 60)[0])) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(AnswerOutcome.PASSED) == 1


def test_a_surge_of_new_users_puts_the_bot_under_attack_after_the_warmup(make: Any) -> None:
    store = make(new_users_per_minute=3, attack_seconds=900, warmup_seconds=0)
    store.served("bot-1", 1)
    settle(store)
    for _ in range(3):
        store.served("bot-1", 1)  # known: not new again
    settle(store)
    assert not store.under_attack("bot-1")
    for user in (2, 3, 4, 5):  # in one flush (one minute bucket): the 4th and 5th new users cross 3 per minute
        store.served("bot-1", user)
    settle(store)
    assert store.under_attack("bot-1") and not store.under_attack("bot-2")
    warm = make(new_users_per_minute=3, attack_seconds=900, warmup_seconds=3600)
    for user in range(10, 30):
        warm.served("bot-1", user)
    settle(warm)
    assert not warm.under_attack("bot-1"), "the warm-up only learns users"


def test_challenged_users_count_too_so_a_flood_that_goes_on_keeps_the_bot_under_attack(make: Any) -> None:
    store = make(new_users_per_minute=3, attack_seconds=900, warmup_seconds=0)
    store.served("bot-1", 1)  # the bot has users: its warm-up started (and, with 0 s, ended)
    settle(store)
    for user in range(100, 104):
        assert store.open("bot-1", user, 1, 60)
    assert store.under_attack("bot-1"), "four challenged newcomers in a minute: over 3 per minute"
