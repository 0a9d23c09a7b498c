"""The cost of the dispatcher's Redis Lua scripts against the cheapest Redis round trip (PING), same run,
same server (a throwaway redis-server on a free port). Ratios, not absolute numbers, are what to compare."""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

import redis

from libs.domain.updates import UpdateEnvelope
from libs.messaging.mailbox import RedisChatMailbox
from services.dispatcher.adapters.redis_abuse import RedisLocks, RedisRateLimiter, RedisSendLimiter
from tests.support.redis_server import start_redis, stop_redis

ROUNDS = 5
CALLS = 2000


def timed(fn: Callable[[int], object]) -> float:
    """Median over ROUNDS of the mean seconds per call."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(CALLS):
            fn(i)
        samples.append((time.perf_counter() - started) / CALLS)
    return statistics.median(samples)


def main() -> int:
    server, process, workdir = start_redis()
    try:
        client = redis.Redis.from_url(server.url)
        rate = RedisRateLimiter(client)
        locks = RedisLocks(client)
        send = RedisSendLimiter(client, per_bot_per_second=10**6, per_chat_per_second=10**6)
        mailbox = RedisChatMailbox(client)
        envelope = UpdateEnvelope("bot", 1, 0.0, "r", {"update_id": 1, "message": {"chat": {"id": 1}, "text": "x"}})

        def lock_cycle(i: int) -> None:
            owner = locks.acquire(f"k{i % 64}", 5)
            if owner:
                locks.release(f"k{i % 64}", owner)

        def mailbox_cycle(i: int) -> None:
            mailbox.push("1", envelope)
            item = mailbox.peek("bot", "1")
            assert item is not None
            mailbox.pop("bot", "1", item)

        baseline = timed(lambda i: client.ping())
        results = {
            "SET (plain)": timed(lambda i: client.set(f"plain:{i % 64}", b"1", px=5000)),
            "rate limiter (GCRA Lua)": timed(lambda i: rate.hit(f"u{i % 64}", 10**6, 60)),
            "lock acquire+release (Lua)": timed(lock_cycle),
            "send limiter (sliding-window Lua)": timed(lambda i: send.acquire(uuid.uuid4().hex[:4], i % 500 + 1)),
            "mailbox push+peek+pop (Lua)": timed(mailbox_cycle),
        }
        print(f"baseline PING: {baseline * 1e6:.1f} µs per call ({CALLS} calls × {ROUNDS} rounds, median)")
        for name, seconds in results.items():
            print(f"{name:<36} {seconds * 1e6:8.1f} µs   {seconds / baseline:5.2f}× PING")
        client.close()
    finally:
        stop_redis(process, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
