"""The registry's admin RPCs over a real in-process gRPC server: tenant isolation, every illegal move, settings
validation, stats, sealed and managed registrations. The Container on SQLite (Alembic), fakes for Telegram/vault."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from dependency_injector import providers

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.domain.administration.ports import BlockedByUser, SubscriberStatus
from tgm.domain.bots import BotToken
from tgm.domain.errors import BotNotFound
from tgm.domain.ports import SecretKind
from tgm.domain.sealing import inbound_text_ref
from tgm.grpc_runtime.channels import build_server
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.services.botregistry import migrate
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.manager_bot_identity import register_manager
from tgm.services.botregistry.settings import RegistrySettings

ALICE, MALLORY = 1001, 2002
MANAGER_TOKEN = "555555555:CCManagerBotTokenForTestsOnly_abcdefgh"
MANAGED_TOKEN = "444444444:DDManagedBotTokenForTestsOnly_ijklmnop"


class AdminTelegram(FakeTelegram):
    def __init__(self) -> None:
        super().__init__()
        self.known.update({555555555: "mgr_bot", 444444444: "made_bot"})
        self.deleted: list[int] = []

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        self.deleted.append(token.telegram_bot_id)

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        assert manager_token.reveal() == MANAGER_TOKEN
        return BotToken(MANAGED_TOKEN)


@dataclass
class Rig:
    stub: registry_pb2_grpc.RegistryServiceStub
    telegram: AdminTelegram
    vault: InMemoryTokenVault
    manager_id: str
    channel: grpc.Channel

    def register(self, owner: int = ALICE, token: str = TOKEN) -> registry_pb2.Bot:
        return self.stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=owner, token=token), timeout=5).bot

    def code(self, call: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as error:
            call()
        return error.value.code()  # type: ignore[no-any-return]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    telegram, vault = AdminTelegram(), InMemoryTokenVault()
    container = Container()
    container.settings.override(RegistrySettings(db_url=db_url, webhook_base_url="https://hooks.test"))
    container.telegram.override(providers.Object(telegram))
    container.vault.override(providers.Object(vault))
    assert register_manager(container.register_bot(), MANAGER_TOKEN)
    manager = container.bots().manager_bot()
    assert manager is not None and manager.owner_id == 0
    server, _health = build_server(max_workers=4)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(container.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(registry_pb2_grpc.RegistryServiceStub(channel), telegram, vault, manager.id, channel)
    finally:
        channel.close()
        server.stop(0)
        container.engine().dispose()


def test_manager_bot_is_registered_with_managed_bot_updates(rig: Rig) -> None:
    _token, registration = rig.telegram.webhooks[0]
    assert "managed_bot" in registration.allowed_updates
    bot = rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=rig.manager_id), timeout=5).bot
    assert bot.is_manager
    # Nobody may administer the manager bot, not even with its id.
    assert (
        rig.code(
            lambda: rig.stub.DeleteBot(registry_pb2.DeleteBotRequest(actor_id=ALICE, bot_id=rig.manager_id), timeout=5)
        )
        == grpc.StatusCode.NOT_FOUND
    )


def test_every_admin_rpc_refuses_another_admins_bot_as_not_found(rig: Rig) -> None:
    bot = rig.register()
    unknown = "00000000-0000-0000-0000-000000000000"
    for bot_id in (bot.bot_id, unknown):
        calls = [
            lambda: rig.stub.GetBotDetails(registry_pb2.GetBotDetailsRequest(actor_id=MALLORY, bot_id=bot_id)),
            lambda: rig.stub.SetBotStatus(registry_pb2.SetBotStatusRequest(actor_id=MALLORY, bot_id=bot_id)),
            lambda: rig.stub.RotateWebhookSecret(
                registry_pb2.RotateWebhookSecretRequest(actor_id=MALLORY, bot_id=bot_id)
            ),
            lambda: rig.stub.DeleteBot(registry_pb2.DeleteBotRequest(actor_id=MALLORY, bot_id=bot_id)),
            lambda: rig.stub.GetSubscriberStats(
                registry_pb2.GetSubscriberStatsRequest(actor_id=MALLORY, bot_id=bot_id)
            ),
            lambda: rig.stub.ListSubscribers(
                registry_pb2.ListSubscribersRequest(actor_id=MALLORY, bot_id=bot_id, limit=10)
            ),
            lambda: rig.stub.UpdateBotSettings(
                registry_pb2.UpdateBotSettingsRequest(actor_id=MALLORY, bot_id=bot_id, welcome_text="pwned")
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as raised:
                call()
            error = raised.value
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error.details() == "no such bot"  # the same words whether it exists or not
    assert rig.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=MALLORY)).bots == []
    details = rig.stub.GetBotDetails(registry_pb2.GetBotDetailsRequest(actor_id=ALICE, bot_id=bot.bot_id))
    assert details.bot.welcome_text == "" and details.bot.status == registry_pb2.BOT_STATUS_ACTIVE


def test_every_illegal_move_is_refused_through_the_rpcs(rig: Rig) -> None:
    bot = rig.register()

    def status(enabled: bool) -> Any:
        return lambda: rig.stub.SetBotStatus(
            registry_pb2.SetBotStatusRequest(actor_id=ALICE, bot_id=bot.bot_id, enabled=enabled), timeout=5
        )

    def delete() -> Any:
        return rig.stub.DeleteBot(registry_pb2.DeleteBotRequest(actor_id=ALICE, bot_id=bot.bot_id), timeout=5)

    def rotate() -> Any:
        return rig.stub.RotateWebhookSecret(
            registry_pb2.RotateWebhookSecretRequest(actor_id=ALICE, bot_id=bot.bot_id), timeout=5
        )

    failed = grpc.StatusCode.FAILED_PRECONDITION
    assert rig.code(status(True)) == failed  # active → active (enable is only from disabled)
    assert status(False)().bot.status == registry_pb2.BOT_STATUS_DISABLED
    assert rig.code(status(False)) == failed  # disabled → disabled
    assert status(True)().bot.status == registry_pb2.BOT_STATUS_ACTIVE
    assert delete().bot.status == registry_pb2.BOT_STATUS_DELETED
    assert rig.telegram.deleted == [123456789]
    for move in (status(True), status(False), delete, rotate):  # deleted is terminal
        assert rig.code(move) == failed
    settings = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, welcome_text="x")
    assert rig.code(lambda: rig.stub.UpdateBotSettings(settings)) == failed
    assert rig.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=ALICE)).bots == []


def test_settings_are_validated_and_round_trip(rig: Rig) -> None:
    bot = rig.register()

    def update(**change: Any) -> registry_pb2.UpdateBotSettingsResponse:
        request = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, **change)
        return rig.stub.UpdateBotSettings(request, timeout=5)

    update(set_command=registry_pb2.CustomCommand(command="/Price", reply="10 <b>coins</b>"))
    api = registry_pb2.ApiCommand(command="/w", url="https://api.test/w", method="post", timeout_seconds=3)
    reply = update(set_api_command=api)
    assert dict(reply.bot.custom_commands) == {"/price": "10 <b>coins</b>"}
    assert [(a.command, a.url, a.method) for a in reply.bot.api_commands] == [("/w", "https://api.test/w", "POST")]
    for bad in (
        {"set_api_command": registry_pb2.ApiCommand(command="/x", url="javascript:alert(1)", timeout_seconds=3)},
        {"set_api_command": registry_pb2.ApiCommand(command="/x", url="JavaScript:alert(1)", timeout_seconds=3)},
        {"set_api_command": registry_pb2.ApiCommand(command="/x", url="file:///etc/passwd", timeout_seconds=3)},
        {"set_api_command": registry_pb2.ApiCommand(command="/x", url="https://a.test", method="DELETE")},
        {"set_api_command": registry_pb2.ApiCommand(command="/x", url="https://a.test", timeout_seconds=99)},
        {"set_command": registry_pb2.CustomCommand(command="/start", reply="hi")},
        {"set_command": registry_pb2.CustomCommand(command="nope", reply="hi")},
        {"set_command": registry_pb2.CustomCommand(command="/ok", reply="x" * 5000)},
        {"remove_command": "/missing"},
        {},
    ):
        assert rig.code(lambda bad=bad: update(**bad)) == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[misc]
    reply = update(remove_command="/price")
    assert dict(reply.bot.custom_commands) == {}
    assert rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id)).bot.api_commands[0].command == "/w"


def test_stats_count_users_and_messages_today(rig: Rig) -> None:
    bot = rig.register()
    for user in (1, 2, 1):
        rig.stub.RecordInteraction(registry_pb2.RecordInteractionRequest(bot_id=bot.bot_id, telegram_user_id=user))
    stats = rig.stub.GetBotDetails(registry_pb2.GetBotDetailsRequest(actor_id=ALICE, bot_id=bot.bot_id)).stats
    assert (stats.users_total, stats.users_today, stats.messages_today) == (2, 2, 3)


def test_subscribers_who_block_the_bot_and_come_back(rig: Rig) -> None:
    bot = rig.register()
    now_ms = int(time.time() * 1000)
    rig.stub.RecordInteractions(
        registry_pb2.RecordInteractionsRequest(
            interactions=[
                registry_pb2.Interaction(
                    bot_id=bot.bot_id, telegram_user_id=user, seen_at_unix_ms=now_ms - 120_000, messages=1
                )
                for user in (1, 2, 3)
            ]
        )
    )
    blocked = [
        registry_pb2.BlockedSubscriber(bot_id=bot.bot_id, telegram_user_id=user, blocked_at_unix_ms=now_ms - 60_000)
        for user in (1, 2, 99)  # 99 never started the bot: nothing to mark
    ]
    marked = rig.stub.MarkSubscribersBlocked(registry_pb2.MarkSubscribersBlockedRequest(subscribers=blocked))
    assert marked.marked == 2
    rig.stub.UpdateBotSettings(
        registry_pb2.UpdateBotSettingsRequest(
            actor_id=ALICE, bot_id=bot.bot_id, block_user=registry_pb2.BlockUser(telegram_user_id=2, seconds=3600)
        )
    )

    def stats() -> registry_pb2.SubscriberStats:
        request = registry_pb2.GetSubscriberStatsRequest(actor_id=ALICE, bot_id=bot.bot_id)
        return rig.stub.GetSubscriberStats(request, timeout=5).stats

    first = stats()
    assert (first.total, first.active, first.blocked_bot, first.blocked_by_admin) == (3, 1, 1, 1)
    assert first.new_7_days == 3
    # User 1 writes again (now): they unblocked the bot.
    rig.stub.RecordInteractions(
        registry_pb2.RecordInteractionsRequest(
            interactions=[registry_pb2.Interaction(bot_id=bot.bot_id, telegram_user_id=1, messages=1)]
        )
    )
    after = stats()
    assert (after.total, after.active, after.blocked_bot, after.blocked_by_admin) == (3, 2, 0, 1)
    listed: list[tuple[int, int]] = []
    after = 0
    while True:  # pages of two: the cursor is the last user id of a full page, 0 after the last one
        request = registry_pb2.ListSubscribersRequest(actor_id=ALICE, bot_id=bot.bot_id, after_user_id=after, limit=2)
        page = rig.stub.ListSubscribers(request, timeout=5)
        listed += [(item.telegram_user_id, item.status) for item in page.subscribers]
        if not page.next_after_user_id:
            break
        after = page.next_after_user_id
    assert listed == [
        (1, registry_pb2.SUBSCRIBER_STATUS_ACTIVE),
        (2, registry_pb2.SUBSCRIBER_STATUS_BLOCKED_BY_ADMIN),
        (3, registry_pb2.SUBSCRIBER_STATUS_ACTIVE),
    ]
    assert page.subscribers[0].first_seen_unix_ms == now_ms - 120_000
    too_many = registry_pb2.MarkSubscribersBlockedRequest(subscribers=[blocked[0]] * 1001)
    assert rig.code(lambda: rig.stub.MarkSubscribersBlocked(too_many)) == grpc.StatusCode.INVALID_ARGUMENT


def test_the_dispatchers_client_reports_blocks_and_reads_subscribers(rig: Rig) -> None:
    bot = rig.register()
    client = GrpcBotAdmin(rig.channel)
    rig.stub.RecordInteractions(
        registry_pb2.RecordInteractionsRequest(
            interactions=[
                registry_pb2.Interaction(
                    bot_id=bot.bot_id, telegram_user_id=5, seen_at_unix_ms=int(time.time() * 1000) - 60_000, messages=1
                )
            ]
        )
    )
    assert client.mark_blocked([BlockedByUser(bot.bot_id, 5, datetime.now(UTC))]) == 1
    _bot, stats = client.subscriber_stats(ALICE, bot.bot_id)
    assert (stats.total, stats.active, stats.blocked_bot) == (1, 0, 1)
    [subscriber] = client.list_subscribers(ALICE, bot.bot_id, 0, 10)
    assert (subscriber.telegram_user_id, subscriber.status) == (5, SubscriberStatus.BLOCKED_BOT)
    with pytest.raises(BotNotFound):
        client.list_subscribers(MALLORY, bot.bot_id, 0, 10)


def _sealed_request(
    rig: Rig, text: str, sender: int, chat: int, owner: int | None = None, chat_claimed: int | None = None
) -> registry_pb2.RegisterBotRequest:
    """What the gateway seals (bound to manager:sender:chat) and what the dispatcher then claims."""
    ciphertext = rig.vault.encrypt(inbound_text_ref(rig.manager_id, sender, chat), SecretKind.INBOUND_TEXT, text)
    return registry_pb2.RegisterBotRequest(
        owner_id=sender if owner is None else owner,
        sealed_token=registry_pb2.SealedToken(
            ciphertext=ciphertext,
            sealed_by_bot_id=rig.manager_id,
            chat_id=chat if chat_claimed is None else chat_claimed,
        ),
    )


def test_sealed_registration_opens_only_text_sealed_for_the_manager(rig: Rig) -> None:
    request = _sealed_request(rig, TOKEN, ALICE, ALICE)
    reply = rig.stub.RegisterBot(request, timeout=5)
    assert reply.bot.username == "first_bot" and not reply.refreshed
    assert rig.stub.RegisterBot(request, timeout=5).refreshed
    # Sealed for another bot id, or the manager's own token: refused.
    other = rig.register(owner=MALLORY, token=OTHER_BOT_TOKEN)
    forged = registry_pb2.RegisterBotRequest(
        owner_id=ALICE,
        sealed_token=registry_pb2.SealedToken(
            ciphertext=rig.vault.encrypt(other.bot_id, SecretKind.INBOUND_TEXT, TOKEN),
            sealed_by_bot_id=other.bot_id,
            chat_id=ALICE,
        ),
    )
    assert rig.code(lambda: rig.stub.RegisterBot(forged, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    own = _sealed_request(rig, MANAGER_TOKEN, ALICE, ALICE)
    assert rig.code(lambda: rig.stub.RegisterBot(own, timeout=5)) == grpc.StatusCode.ALREADY_EXISTS
    # Someone else's bot: refused without naming the owner.
    taken = _sealed_request(rig, OTHER_BOT_TOKEN, ALICE, ALICE)
    with pytest.raises(grpc.RpcError) as raised:
        rig.stub.RegisterBot(taken, timeout=5)
    error = raised.value
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and str(MALLORY) not in (error.details() or "")


def test_managed_bot_registration_fetches_the_token_in_the_registry(rig: Rig) -> None:
    request = registry_pb2.RegisterManagedBotRequest(owner_id=ALICE, managed_bot_user_id=444444444)
    reply = rig.stub.RegisterManagedBot(request, timeout=5)
    assert reply.bot.username == "made_bot" and reply.bot.owner_id == ALICE
    bad = registry_pb2.RegisterManagedBotRequest(owner_id=ALICE, managed_bot_user_id=123)
    assert rig.code(lambda: rig.stub.RegisterManagedBot(bad, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_sealed_token_replayed_under_another_owner_or_chat_does_not_open(rig: Rig) -> None:
    # Alice pasted a token; Mallory gets hold of the ciphertext and claims it as hers (or Alice's, from her chat).
    for replay in (
        _sealed_request(rig, TOKEN, ALICE, ALICE, owner=MALLORY),
        _sealed_request(rig, TOKEN, ALICE, ALICE, owner=MALLORY, chat_claimed=MALLORY),
        _sealed_request(rig, TOKEN, ALICE, ALICE, chat_claimed=MALLORY),
        # Sealed under the bare manager id (the old, unbound form): refused too.
        registry_pb2.RegisterBotRequest(
            owner_id=ALICE,
            sealed_token=registry_pb2.SealedToken(
                ciphertext=rig.vault.encrypt(rig.manager_id, SecretKind.INBOUND_TEXT, TOKEN),
                sealed_by_bot_id=rig.manager_id,
                chat_id=ALICE,
            ),
        ),
    ):
        assert rig.code(lambda replay=replay: rig.stub.RegisterBot(replay, timeout=5)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    assert rig.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=MALLORY)).bots == []
    assert rig.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=ALICE)).bots == []
    # The genuine claim still works.
    assert rig.stub.RegisterBot(_sealed_request(rig, TOKEN, ALICE, ALICE), timeout=5).bot.owner_id == ALICE


def test_maintenance_and_user_blocks_are_validated_and_round_trip(rig: Rig) -> None:
    bot = rig.register()

    def update(**change: Any) -> registry_pb2.Bot:
        request = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, **change)
        return rig.stub.UpdateBotSettings(request, timeout=5).bot

    assert update(maintenance_text="Back at 6").maintenance_text == "Back at 6"
    assert update(maintenance_text="").maintenance_text == ""  # off; nothing else changed
    assert rig.code(lambda: update(maintenance_text="x" * 5000)) == grpc.StatusCode.INVALID_ARGUMENT

    before = time.time()
    blocked = update(block_user=registry_pb2.BlockUser(telegram_user_id=42, seconds=3600))
    assert set(blocked.blocked_users) == {42}
    assert before + 3600 - 5 <= blocked.blocked_users[42] <= time.time() + 3600 + 5
    for bad in (
        {"block_user": registry_pb2.BlockUser(telegram_user_id=0, seconds=3600)},
        {"block_user": registry_pb2.BlockUser(telegram_user_id=-5, seconds=3600)},
        {"block_user": registry_pb2.BlockUser(telegram_user_id=43, seconds=10)},
        {"block_user": registry_pb2.BlockUser(telegram_user_id=43, seconds=31 * 86400)},
        {"unblock_user": 43},  # not blocked
    ):
        assert rig.code(lambda bad=bad: update(**bad)) == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[misc]
    assert dict(rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id)).bot.blocked_users).keys() == {42}
    assert dict(update(unblock_user=42).blocked_users) == {}
    mallory = registry_pb2.UpdateBotSettingsRequest(
        actor_id=ALICE + 1, bot_id=bot.bot_id, block_user=registry_pb2.BlockUser(telegram_user_id=42, seconds=600)
    )
    assert rig.code(lambda: rig.stub.UpdateBotSettings(mallory, timeout=5)) == grpc.StatusCode.NOT_FOUND


def test_a_bots_own_limits_are_validated_and_round_trip(rig: Rig) -> None:
    bot = rig.register()

    def update(**change: Any) -> registry_pb2.Bot:
        request = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, **change)
        return rig.stub.UpdateBotSettings(request, timeout=5).bot

    limited = update(set_rate_limit=registry_pb2.SetRateLimit(action="/Start", limit=5, window_seconds=60))
    assert {a: (r.limit, r.window_seconds) for a, r in limited.rate_limits.items()} == {"cmd:/start": (5, 60.0)}
    cooled = update(set_cooldown=registry_pb2.SetCooldown(action="msg", seconds=10))
    assert dict(cooled.cooldowns) == {"msg": 10.0} and set(cooled.rate_limits) == {"cmd:/start"}
    stored = rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id)).bot
    assert set(stored.rate_limits) == {"cmd:/start"} and dict(stored.cooldowns) == {"msg": 10.0}
    assert stored.version > bot.version, "the dispatchers' caches see the change by its version"
    for bad in (
        {"set_rate_limit": registry_pb2.SetRateLimit(action="cmd:/<b>", limit=5, window_seconds=60)},
        {"set_rate_limit": registry_pb2.SetRateLimit(action="anything", limit=5, window_seconds=60)},
        {"set_rate_limit": registry_pb2.SetRateLimit(action="msg", limit=10_001, window_seconds=60)},
        {"set_rate_limit": registry_pb2.SetRateLimit(action="msg", limit=-1, window_seconds=60)},
        {"set_rate_limit": registry_pb2.SetRateLimit(action="msg", limit=5, window_seconds=0.5)},
        {"set_cooldown": registry_pb2.SetCooldown(action="msg", seconds=86_401)},
        {"set_cooldown": registry_pb2.SetCooldown(action="msg", seconds=-3)},
    ):
        assert rig.code(lambda bad=bad: update(**bad)) == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[misc]
    unchanged = rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id)).bot
    assert unchanged.version == stored.version, "a refused change changes nothing"
    removed = update(set_rate_limit=registry_pb2.SetRateLimit(action="/start", limit=0))
    assert dict(removed.rate_limits) == {} and dict(removed.cooldowns) == {"msg": 10.0}
    assert dict(update(reset_limits=True).cooldowns) == {}
    mallory = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE + 1, bot_id=bot.bot_id, reset_limits=True)
    assert rig.code(lambda: rig.stub.UpdateBotSettings(mallory, timeout=5)) == grpc.StatusCode.NOT_FOUND


def test_at_most_fifty_own_limits_per_bot(rig: Rig) -> None:
    bot = rig.register()
    for n in range(50):
        rule = registry_pb2.SetRateLimit(action=f"cb:a{n}", limit=5, window_seconds=60)
        rig.stub.UpdateBotSettings(
            registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, set_rate_limit=rule), timeout=5
        )
    one_more = registry_pb2.UpdateBotSettingsRequest(
        actor_id=ALICE, bot_id=bot.bot_id, set_cooldown=registry_pb2.SetCooldown(action="cb:extra", seconds=5)
    )
    assert rig.code(lambda: rig.stub.UpdateBotSettings(one_more, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


def test_the_captcha_mode_is_validated_and_round_trips(rig: Rig) -> None:
    bot = rig.register()
    assert bot.captcha_mode == "auto", "the default"

    def update(mode: str) -> registry_pb2.Bot:
        request = registry_pb2.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, captcha_mode=mode)
        return rig.stub.UpdateBotSettings(request, timeout=5).bot

    assert update(" ON ").captcha_mode == "on"
    assert rig.code(lambda: update("sometimes")) == grpc.StatusCode.INVALID_ARGUMENT
    assert rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id)).bot.captcha_mode == "on"
    assert update("off").captcha_mode == "off"
