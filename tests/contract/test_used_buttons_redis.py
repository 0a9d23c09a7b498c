"""One-time buttons on a real redis-server: one press wins across worker processes (issue 11, item 8)."""

from __future__ import annotations

import redis

from testbed.redis_server import RedisServer
from tgm.services.dispatcher.manager_bot.state import RedisUsedButtons


def test_only_the_first_use_of_a_token_counts_across_clients(redis_server: RedisServer) -> None:
    first, second = redis.Redis.from_url(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:
        first.delete("tgm:mgr:used:abc")
        assert RedisUsedButtons(first).use_once("abc", 900)
        assert not RedisUsedButtons(second).use_once("abc", 900)
        assert 0 < first.ttl("tgm:mgr:used:abc") <= 900
        assert RedisUsedButtons(second).use_once("another", 900)
    finally:
        first.close()
        second.close()
