"""The InboxLinks contract, in memory and on a real redis-server: a delivered message leads back to its user only in
its own bot's namespace and admin chat, for the link's TTL; reachable admins per bot."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.clock import ManualClock
from tgm.services.dispatcher.adapters.inbox_links import KEY_PREFIX, InMemoryInboxLinks, RedisInboxLinks

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@pytest.fixture(params=["memory", "redis"])
def links(request: pytest.FixtureRequest, client: redis.Redis) -> Any:
    if request.param == "memory":
        return InMemoryInboxLinks()
    return RedisInboxLinks(client, prefix=f"tgm:test-inbox-{uuid.uuid4().hex[:8]}")


def test_a_link_leads_back_only_from_its_bot_and_admin_chat(links: Any) -> None:
    links.link("bot-a", 1001, 501, 77)
    assert links.user_chat("bot-a", 1001, 501) == 77
    assert links.user_chat("bot-b", 1001, 501) is None, "another bot, same admin and message number"
    assert links.user_chat("bot-a", 2002, 501) is None, "another admin's chat"
    assert links.user_chat("bot-a", 1001, 502) is None
    links.link("bot-b", 1001, 501, 88)
    assert (links.user_chat("bot-a", 1001, 501), links.user_chat("bot-b", 1001, 501)) == (77, 88)


def test_reachable_admins_are_per_bot(links: Any) -> None:
    assert not links.reachable("bot-a", 1001)
    links.mark_reachable("bot-a", 1001)
    links.mark_reachable("bot-a", 1001)
    assert links.reachable("bot-a", 1001)
    assert not links.reachable("bot-b", 1001) and not links.reachable("bot-a", 2002)


def test_links_expire_on_redis(client: redis.Redis) -> None:
    prefix = f"tgm:test-inbox-{uuid.uuid4().hex[:8]}"
    RedisInboxLinks(client, ttl_seconds=3600, prefix=prefix).link("bot-a", 1001, 501, 77)
    assert 3590 <= client.ttl(f"{prefix}:link:bot-a:1001:501") <= 3600
    short = RedisInboxLinks(client, ttl_seconds=1, prefix=prefix)
    short.link("bot-a", 1001, 502, 77)
    deadline = time.monotonic() + 5.0
    while short.user_chat("bot-a", 1001, 502) is not None:
        assert time.monotonic() < deadline, "the link outlived its TTL"
        time.sleep(0.05)


def test_links_expire_in_memory_by_the_clock() -> None:
    clock = ManualClock()
    links = InMemoryInboxLinks(ttl_seconds=60, clock=clock)
    links.link("bot-a", 1001, 501, 77)
    clock.advance(59)
    assert links.user_chat("bot-a", 1001, 501) == 77
    clock.advance(2)
    assert links.user_chat("bot-a", 1001, 501) is None


def test_keys_live_under_tgms_prefix() -> None:
    assert KEY_PREFIX.startswith("tgm:"), "the dispatcher's Redis ACL user covers tgm:* only"
