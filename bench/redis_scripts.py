"""The cost of the dispatcher's Redis Lua scripts against the cheapest Redis round trip (PING), same run,
same server (a throwaway redis-server on a free port). Ratios, not absolute numbers, are what to compare.

Fair to the baseline: one warm-up pass over every case first (connections, script loading, server caches), then
ROUNDS rounds in which the baseline and every case run interleaved, in a rotating order; each case's ratio is the
median of its per-round ratios to that round's PING, so a slow or warm phase of the machine hits both sides.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from bench.common import QUICK
from testbed.redis_server import start_redis, stop_redis
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import RedisChatMailbox
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks, RedisRateLimiter, RedisSendLimiter

ROUNDS = 7
CALLS = 1000
QUICK_ROUNDS = 3
BASELINE = "PING (baseline)"


def per_call(fn: Callable[[int], object], calls: int = CALLS) -> float:
    """Mean seconds per call over `calls` calls."""
    started = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - started) / calls


def measure(
    cases: dict[str, Callable[[int], object]], rounds: int = ROUNDS
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per call and median ratio to the same round's baseline, for every case."""
    for fn in cases.values():  # warm-up, not recorded
        per_call(fn, CALLS // 4)
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(rounds):
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


def run(report: Callable[[str], None] = print) -> dict[str, Any]:
    """Median µs per call and ratio to PING for each case."""
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
        rounds = QUICK_ROUNDS if QUICK else ROUNDS
        seconds, ratios = measure(cases, rounds)
        report(f"redis scripts: PING {seconds[BASELINE] * 1e6:.1f} µs per call ({CALLS} calls × {rounds} rounds)")
        client.close()
        return {
            "rounds": rounds,
            "calls": CALLS,
            "cases": {name: {"us": seconds[name] * 1e6, "x_ping": ratios[name]} for name in cases},
        }
    finally:
        stop_redis(process, workdir)


if __name__ == "__main__":
    print(run())
