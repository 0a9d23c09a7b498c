"""The cost of the dispatcher's Redis Lua scripts against the cheapest Redis round trip (PING), same run,
same server (a throwaway redis-server on a free port). Ratios, not absolute numbers, are what to compare.

Fair to the baseline: one warm-up pass over every case first (connections, script loading, server caches), then
ROUNDS rounds in which the baseline and every case run interleaved, in a rotating order; each case's ratio is the
median of its per-round ratios to that round's PING, so a slow or warm phase of the machine hits both sides.
"""

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

ROUNDS = 7
CALLS = 1000
BASELINE = "PING (baseline)"


def per_call(fn: Callable[[int], object], calls: int = CALLS) -> float:
    """Mean seconds per call over `calls` calls."""
    started = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - started) / calls


def measure(cases: dict[str, Callable[[int], object]]) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per call and median ratio to the same round's baseline, for every case."""
    for fn in cases.values():  # warm-up, not recorded
        per_call(fn, CALLS // 4)
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(ROUNDS):
        shift = round_no % len(names)
        order = names[shift:] + names[:shift]  # rotate: no case always runs right after another
        times = {name: per_call(cases[name]) for name in order}
        for name in names:
            samples[name].append(times[name])
            ratios[name].append(times[name] / times[BASELINE])
    return (
        {name: statistics.median(values) for name, values in samples.items()},
        {name: statistics.median(values) for name, values in ratios.items()},
    )


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

        cases: dict[str, Callable[[int], object]] = {
            BASELINE: lambda i: client.ping(),
            "SET (plain)": lambda i: client.set(f"plain:{i % 64}", b"1", px=5000),
            "rate limiter (GCRA Lua)": lambda i: rate.hit(f"u{i % 64}", 10**6, 60),
            "lock acquire+release (Lua)": lock_cycle,
            "send limiter (sliding-window Lua)": lambda i: send.acquire(uuid.uuid4().hex[:4], i % 500 + 1),
            "mailbox push+peek+pop (Lua)": mailbox_cycle,
        }
        seconds, ratios = measure(cases)
        print(
            f"baseline PING: {seconds[BASELINE] * 1e6:.1f} µs per call "
            f"({CALLS} calls × {ROUNDS} interleaved rounds after a warm-up; medians)"
        )
        for name in cases:
            if name != BASELINE:
                print(f"{name:<36} {seconds[name] * 1e6:8.1f} µs   {ratios[name]:5.2f}× PING")
        client.close()
    finally:
        stop_redis(process, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
