"""The drain's view of a chat (the ChatLane port) built from the fine-grained ports.

`ComposedChatLane` is the lane for stores without scripts (in memory, embedded mode) and for tests with fakes;
on Redis the dispatcher uses one Lua script per step instead (src/tgm/services/dispatcher/adapters/redis_chat_lane.py).
"""

from __future__ import annotations

from tgm.domain.ports import ChatMailbox, LaneClaim, LaneItem, Locks, MailboxItem, UpdateDeduplicator


def lock_key(bot_id: str, chat_key: str) -> str:
    return f"chat:{bot_id}:{chat_key}"


class ComposedChatLane:
    def __init__(self, mailbox: ChatMailbox, locks: Locks, dedup: UpdateDeduplicator) -> None:
        self._mailbox = mailbox
        self._locks = locks
        self._dedup = dedup

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> LaneClaim | None:
        self._mailbox.clear_drain_pending(bot_id, chat_key)
        owner = self._locks.acquire(lock_key(bot_id, chat_key), ttl_seconds)
        if owner is None:
            return None
        # One item at a time: fine-grained stores are cheap to ask, and the head is what the drain works on.
        head = self._mailbox.peek(bot_id, chat_key)
        if head is None:
            return LaneClaim(owner, ())
        return LaneClaim(owner, (self._describe(bot_id, chat_key, head),))

    def _describe(self, bot_id: str, chat_key: str, item: MailboxItem) -> LaneItem:
        envelope = item.envelope
        if envelope is None:
            return LaneItem(item, done=False, attempts=0, retry_at=0.0)
        done = self._dedup.already_done(envelope.bot_id, envelope.update_id)
        attempts, retry_at = self._mailbox.failures(bot_id, chat_key, envelope.update_id)
        return LaneItem(item, done=done, attempts=attempts, retry_at=retry_at)

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(lock_key(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
        ttl_seconds: float,
    ) -> bool:
        if not self._locks.renew(lock_key(bot_id, chat_key), owner, ttl_seconds):
            return False  # another drain holds the chat: it runs this item again
        envelope = item.envelope
        if envelope is not None and mark_done:
            self._dedup.mark_done(envelope.bot_id, envelope.update_id)
        self._mailbox.pop(bot_id, chat_key, item)
        if update_id is not None:
            self._mailbox.clear_failures(bot_id, chat_key, update_id)
        return True

    def complete_and_release(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
    ) -> int | None:
        # The renewal inside `complete` is the ownership check; its TTL does not matter, the lock goes next.
        if not self.complete(bot_id, chat_key, owner, item, update_id, mark_done=mark_done, ttl_seconds=1.0):
            return None
        return self.release(bot_id, chat_key, owner)

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        return self._mailbox.record_failure(bot_id, chat_key, update_id, retry_at)

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        self._locks.release(lock_key(bot_id, chat_key), owner)
        return self._mailbox.size(bot_id, chat_key)
