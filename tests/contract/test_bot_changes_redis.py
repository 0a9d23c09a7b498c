"""Bot changes made through the manager reach the other dispatcher processes' bot caches (Redis pub/sub)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.administration.ports import SetMaintenance
from tgm.domain.bots import Bot, BotSettings, BotStatus
from tgm.services.dispatcher.adapters.bot_changes import CHANNEL, AnnouncingBotAdmin, announcer, start_listener

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class RecordingDirectory:
    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.invalidations = 0
        self._lock = threading.Lock()

    def forget(self, bot_id: str) -> None:
        with self._lock:
            self.forgotten.append(bot_id)

    def invalidate(self) -> None:
        with self._lock:
            self.invalidations += 1


class FakeAdmin:
    def __init__(self) -> None:
        self.refuse = False

    def update_settings(self, actor_id: int, bot_id: str, change: object) -> Bot:
        if self.refuse:
            raise PermissionError("not yours")
        settings = BotSettings(maintenance_text=getattr(change, "text", ""))
        return Bot(bot_id, "p", actor_id, 1, "shop_bot", BotStatus.ACTIVE, b"s", b"h", settings, NOW, NOW)

    def list_bots(self, owner_id: int) -> list[Bot]:
        return []


def test_a_change_in_one_process_is_forgotten_in_the_others(redis_server: RedisServer) -> None:
    here, there = RecordingDirectory(), RecordingDirectory()
    other_process = start_listener(redis.Redis.from_url(redis_server.url), there)
    try:
        _wait(lambda: there.invalidations == 1)  # subscribed (and started from an empty cache)
        _wait(lambda: redis.Redis.from_url(redis_server.url).pubsub_numsub(CHANNEL)[0][1] >= 1)
        admin = AnnouncingBotAdmin(FakeAdmin(), announcer(redis.Redis.from_url(redis_server.url), here))

        changed = admin.update_settings(7, "bot-1", SetMaintenance("back soon"))

        assert changed.settings.maintenance_text == "back soon"
        assert here.forgotten == ["bot-1"]  # this process at once, before the manager answers the admin
        _wait(lambda: there.forgotten == ["bot-1"])
        assert admin.list_bots(7) == []  # reads pass straight through, announcing nothing
        assert here.forgotten == ["bot-1"]
    finally:
        other_process()


def test_a_refused_change_announces_nothing() -> None:
    here = RecordingDirectory()
    fake = FakeAdmin()
    fake.refuse = True
    admin = AnnouncingBotAdmin(fake, announcer(None, here))
    with pytest.raises(PermissionError):
        admin.update_settings(7, "bot-1", SetMaintenance("x"))
    assert here.forgotten == []


def test_a_failed_publish_does_not_undo_or_fail_the_change() -> None:
    here = RecordingDirectory()
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    admin = AnnouncingBotAdmin(FakeAdmin(), announcer(unreachable, here))
    assert admin.update_settings(7, "bot-1", SetMaintenance("")).settings.maintenance_text == ""
    assert here.forgotten == ["bot-1"]


def test_junk_on_the_channel_is_ignored(redis_server: RedisServer) -> None:
    there = RecordingDirectory()
    stop = start_listener(redis.Redis.from_url(redis_server.url), there)
    try:
        client = redis.Redis.from_url(redis_server.url)
        _wait(lambda: client.pubsub_numsub(CHANNEL)[0][1] >= 1)
        client.publish(CHANNEL, "x" * 65)
        client.publish(CHANNEL, "")
        client.publish(CHANNEL, "bot-2")
        _wait(lambda: there.forgotten == ["bot-2"])
    finally:
        stop()
