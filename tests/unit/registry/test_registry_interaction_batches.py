"""RecordInteractions over a real in-process gRPC server on SQLite (Alembic): a batch in one call, bad entries
skipped and counted, an oversized batch refused. The SQL upsert on PostgreSQL: tests/contract."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc
import pytest

from tests.unit.registry import test_registry_admin_rpcs as admin_rpcs
from tests.unit.registry.test_registry_admin_rpcs import ALICE, Rig
from tgm.domain.administration.ports import Interaction
from tgm.registry.v1 import registry_pb2 as pb
from tgm.registry_client.admin import GrpcBotAdmin

rig = admin_rpcs.rig  # the admin RPC tests' fixture: the Container on SQLite behind a real gRPC server


def now_ms() -> int:
    return int(time.time() * 1000)


def entry(bot_id: str, user: int, messages: int = 1, language: str = "", seen_ms: int | None = None) -> pb.Interaction:
    return pb.Interaction(
        bot_id=bot_id,
        telegram_user_id=user,
        language_code=language,
        seen_at_unix_ms=now_ms() if seen_ms is None else seen_ms,
        messages=messages,
    )


def stats(rig: Rig, bot_id: str) -> tuple[int, int, int]:
    got = rig.stub.GetBotDetails(pb.GetBotDetailsRequest(actor_id=ALICE, bot_id=bot_id), timeout=5).stats
    return got.users_total, got.users_today, got.messages_today


def test_a_batch_is_stored_with_its_message_counts(rig: Rig) -> None:
    bot = rig.register()
    reply = rig.stub.RecordInteractions(
        pb.RecordInteractionsRequest(interactions=[entry(bot.bot_id, 7, 3, "de"), entry(bot.bot_id, 8)]), timeout=5
    )
    assert (reply.stored, reply.skipped_unknown_bot, reply.skipped_invalid) == (2, 0, 0)
    assert stats(rig, bot.bot_id) == (2, 2, 4)
    # A second batch adds to the counters and upserts the known user.
    rig.stub.RecordInteractions(pb.RecordInteractionsRequest(interactions=[entry(bot.bot_id, 7, 2)]), timeout=5)
    assert stats(rig, bot.bot_id) == (2, 2, 6)


def test_unknown_bots_and_malformed_entries_are_skipped_and_counted_the_rest_stored(rig: Rig) -> None:
    bot = rig.register()
    batch = [
        entry(bot.bot_id, 7, 2),
        entry("00000000-0000-0000-0000-000000000000", 7),  # no such bot
        entry("", 7),  # no bot id
        entry(bot.bot_id, 0),  # not a Telegram user id
        entry(bot.bot_id, 9, messages=0),  # counts nothing
        entry(bot.bot_id, 10, messages=-5),
        entry("x" * 65, 7),
    ]
    reply = rig.stub.RecordInteractions(pb.RecordInteractionsRequest(interactions=batch), timeout=5)
    assert (reply.stored, reply.skipped_unknown_bot, reply.skipped_invalid) == (1, 1, 5)
    assert stats(rig, bot.bot_id) == (1, 1, 2)


def test_an_oversized_batch_is_refused_with_a_clear_error(rig: Rig) -> None:
    bot = rig.register()
    batch = [entry(bot.bot_id, user) for user in range(1, 1002)]
    with pytest.raises(grpc.RpcError) as error:
        rig.stub.RecordInteractions(pb.RecordInteractionsRequest(interactions=batch), timeout=10)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "at most 1000 interactions per call"
    assert stats(rig, bot.bot_id) == (0, 0, 0)  # nothing of it stored
    reply = rig.stub.RecordInteractions(pb.RecordInteractionsRequest(interactions=batch[:1000]), timeout=10)
    assert reply.stored == 1000


def test_a_time_in_the_future_or_missing_counts_as_now(rig: Rig) -> None:
    bot = rig.register()
    future = now_ms() + 10 * 86_400_000
    batch = [entry(bot.bot_id, 7, seen_ms=future), entry(bot.bot_id, 8, seen_ms=0), entry(bot.bot_id, 9, seen_ms=2**62)]
    assert rig.stub.RecordInteractions(pb.RecordInteractionsRequest(interactions=batch), timeout=5).stored == 3
    assert stats(rig, bot.bot_id) == (3, 3, 3)  # all today, not on a day that has not come yet


def test_an_old_seen_at_counts_on_its_own_day_not_today(rig: Rig) -> None:
    bot = rig.register()
    two_days_ago = now_ms() - 2 * 86_400_000
    rig.stub.RecordInteractions(
        pb.RecordInteractionsRequest(interactions=[entry(bot.bot_id, 7, 4, seen_ms=two_days_ago)]), timeout=5
    )
    assert stats(rig, bot.bot_id) == (1, 0, 0)


def test_an_empty_batch_is_fine_and_the_single_rpc_still_works(rig: Rig) -> None:
    bot = rig.register()
    reply = rig.stub.RecordInteractions(pb.RecordInteractionsRequest(), timeout=5)
    assert (reply.stored, reply.skipped_unknown_bot, reply.skipped_invalid) == (0, 0, 0)
    rig.stub.RecordInteraction(pb.RecordInteractionRequest(bot_id=bot.bot_id, telegram_user_id=7), timeout=5)
    assert stats(rig, bot.bot_id) == (1, 1, 1)


def test_the_client_sends_domain_batches(rig: Rig) -> None:
    """GrpcBotAdmin.record_interactions: what the dispatcher's flusher calls."""
    bot = rig.register()
    unused = grpc.insecure_channel("127.0.0.1:9")
    admin = GrpcBotAdmin(unused)
    admin._stub = rig.stub  # the rig does not expose its channel; its stub is the same thing
    seen = datetime.now(UTC)
    try:
        result = admin.record_interactions(
            [Interaction(bot.bot_id, 7, "de", seen, 2), Interaction("no-such-bot", 7, None, seen, 1)]
        )
    finally:
        unused.close()
    assert (result.stored, result.skipped_unknown_bot, result.skipped_invalid) == (1, 1, 0)
    assert stats(rig, bot.bot_id) == (1, 1, 2)
