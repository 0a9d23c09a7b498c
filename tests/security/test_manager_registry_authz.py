"""The registry authorizes each call by the caller's mTLS certificate identity: identity × method, real mTLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from dependency_injector import providers
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.grpc_runtime.authorization import AuthorizationInterceptor
from tgm.grpc_runtime.channels import add_server_port, build_server, mark_serving, open_channel
from tgm.grpc_runtime.tls import TlsFiles
from tgm.registry.v1 import registry_pb2 as pb
from tgm.registry.v1 import registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.authorization import ALL_PERMISSIONS, SERVICE_NAME, default_policy
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.settings import RegistrySettings

Stub = registry_pb2_grpc.RegistryServiceStub
ADMIN_WORK = (
    "broadcast_started",
    "broadcast_cancelled",
    "broadcast_finished",
    "inbox_sender_blocked",
    "inbox_sender_unblocked",
)
CALLS: dict[str, Callable[[Stub], Any]] = {
    "GetRoute": lambda s: s.GetRoute(pb.GetRouteRequest(public_id="nope")),
    "GetBot": lambda s: s.GetBot(pb.GetBotRequest(bot_id="nope")),
    "GetBotVersions": lambda s: s.GetBotVersions(pb.GetBotVersionsRequest(bot_ids=["nope"])),
    "ListBots": lambda s: s.ListBots(pb.ListBotsRequest(owner_id=7)),
    "GetBotDetails": lambda s: s.GetBotDetails(pb.GetBotDetailsRequest(actor_id=7, bot_id="nope")),
    "SetBotStatus": lambda s: s.SetBotStatus(pb.SetBotStatusRequest(actor_id=7, bot_id="nope")),
    "RotateWebhookSecret": lambda s: s.RotateWebhookSecret(pb.RotateWebhookSecretRequest(actor_id=7, bot_id="n")),
    "DeleteBot": lambda s: s.DeleteBot(pb.DeleteBotRequest(actor_id=7, bot_id="nope")),
    "UpdateBotSettings": lambda s: s.UpdateBotSettings(
        pb.UpdateBotSettingsRequest(actor_id=7, bot_id="nope", welcome_text="hi")
    ),
    "RecordInteraction": lambda s: s.RecordInteraction(pb.RecordInteractionRequest(bot_id="nope", telegram_user_id=7)),
    "RecordInteractions": lambda s: s.RecordInteractions(
        pb.RecordInteractionsRequest(interactions=[pb.Interaction(bot_id="nope", telegram_user_id=7, messages=1)])
    ),
    "GetSubscriberStats": lambda s: s.GetSubscriberStats(pb.GetSubscriberStatsRequest(actor_id=7, bot_id="nope")),
    "ListSubscribers": lambda s: s.ListSubscribers(pb.ListSubscribersRequest(actor_id=7, bot_id="nope", limit=10)),
    "MarkSubscribersBlocked": lambda s: s.MarkSubscribersBlocked(
        pb.MarkSubscribersBlockedRequest(subscribers=[pb.BlockedSubscriber(bot_id="nope", telegram_user_id=7)])
    ),
    "RegisterManagedBot": lambda s: s.RegisterManagedBot(
        pb.RegisterManagedBotRequest(owner_id=7, managed_bot_user_id=9)
    ),
    # Co-admins (issue 15).
    "CreateInvite": lambda s: s.CreateInvite(pb.CreateInviteRequest(actor_id=7, bot_id="nope")),
    "RedeemInvite": lambda s: s.RedeemInvite(pb.RedeemInviteRequest(actor_id=7, code="nope")),
    "ListBotAdmins": lambda s: s.ListBotAdmins(pb.ListBotAdminsRequest(actor_id=7, bot_id="nope")),
    "RevokeBotAdmin": lambda s: s.RevokeBotAdmin(pb.RevokeBotAdminRequest(actor_id=7, membership_id="nope")),
    "RevokeInvite": lambda s: s.RevokeInvite(pb.RevokeInviteRequest(actor_id=7, invite_id="nope")),
    "LeaveBot": lambda s: s.LeaveBot(pb.LeaveBotRequest(actor_id=7, bot_id="nope")),
    "GetBotTeam": lambda s: s.GetBotTeam(pb.GetBotTeamRequest(bot_id="nope")),
    # The event trail: each caller may add only its own kinds; reading it is the operator's.
    "RecordEvent:callback_refused": lambda s: s.RecordEvent(
        pb.RecordEventRequest(kind="callback_refused", telegram_user_id=7, outcome="refused")
    ),
    "RecordEvent:key_rotated": lambda s: s.RecordEvent(pb.RecordEventRequest(kind="key_rotated", outcome="done")),
    "RecordEvent:bot_deleted": lambda s: s.RecordEvent(
        pb.RecordEventRequest(kind="bot_deleted", telegram_user_id=7, bot_id="nope", outcome="done")
    ),
    # The admins' work the dispatcher does (issue 15): broadcasts and inbox blocks; the registry adds the role.
    **{
        f"RecordEvent:{kind}": (
            lambda kind: (
                lambda s: s.RecordEvent(
                    pb.RecordEventRequest(kind=kind, telegram_user_id=7, bot_id="nope", outcome="done")
                )
            )
        )(kind)
        for kind in ADMIN_WORK
    },
    "ListEvents": lambda s: s.ListEvents(pb.ListEventsRequest()),
    "RegisterBot:token": lambda s: s.RegisterBot(pb.RegisterBotRequest(owner_id=7, token=TOKEN)),
    "RegisterBot:sealed": lambda s: s.RegisterBot(
        pb.RegisterBotRequest(owner_id=7, sealed_token=pb.SealedToken(ciphertext=b"x", sealed_by_bot_id="m", chat_id=7))
    ),
}
ADMIN = {
    "GetBot",
    "ListBots",
    "GetBotDetails",
    "SetBotStatus",
    "RotateWebhookSecret",
    "DeleteBot",
    "UpdateBotSettings",
    "RecordInteraction",
    "RecordInteractions",
    "GetSubscriberStats",
    "MarkSubscribersBlocked",
    "ListSubscribers",
    "RegisterManagedBot",
    "RegisterBot:sealed",
    "RecordEvent:callback_refused",
    "CreateInvite",
    "RedeemInvite",
    "ListBotAdmins",
    "RevokeBotAdmin",
    "RevokeInvite",
    "LeaveBot",
    "GetBotTeam",
    *(f"RecordEvent:{kind}" for kind in ADMIN_WORK),
}
# Written out independently of src/tgm/services/botregistry/authorization.py.
ALLOWED = {
    "gateway": {"GetRoute", "GetBotVersions"},  # versions only: never a Bot, its sealed token or its settings
    "dispatcher": ADMIN | {"GetBotVersions"},
    "embedded": ADMIN | {"GetRoute", "GetBotVersions"},
    "operator": set(CALLS) - {"RecordEvent:bot_deleted"},  # the registry's own kinds: nobody may forge them
    "botregistry": set(),  # the registry's own client certificate calls the vault, not itself
    "stranger": set(),
}


def test_the_matrix_tries_every_permission() -> None:
    """A new RPC (or a new split of one) cannot slip past the matrix below untested."""
    assert set(ALL_PERMISSIONS) <= set(CALLS)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, TlsFiles]) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("registry")
    db_url = f"sqlite:///{tmp / 'registry.db'}"
    migrate.upgrade(db_url)
    container = Container()
    container.settings.override(RegistrySettings(db_url=db_url, webhook_base_url="https://hooks.test"))
    container.telegram.override(providers.Object(FakeTelegram()))
    container.vault.override(providers.Object(InMemoryTokenVault()))
    server, health = build_server(4, (AuthorizationInterceptor(SERVICE_NAME, default_policy().allows),))
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(container.servicer(), server)
    port = add_server_port(server, "127.0.0.1:0", tls=certs["botregistry"])
    server.start()
    mark_serving(health, SERVICE_NAME)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)
        container.engine().dispose()


@pytest.fixture
def connect(registry: str, certs: dict[str, TlsFiles]) -> Iterator[Callable[[str], grpc.Channel]]:
    channels: list[grpc.Channel] = []

    def channel(identity: str) -> grpc.Channel:
        channels.append(open_channel(registry, tls=certs[identity], server_name="botregistry"))
        return channels[-1]

    yield channel
    for item in channels:
        item.close()


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize("identity", sorted(ALLOWED))
def test_identity_method_matrix(connect: Callable[[str], grpc.Channel], identity: str, method: str) -> None:
    stub = Stub(connect(identity))
    try:
        CALLS[method](stub)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    if method in ALLOWED[identity]:
        assert code is not grpc.StatusCode.PERMISSION_DENIED
    else:
        assert code is grpc.StatusCode.PERMISSION_DENIED


def test_health_is_open_to_every_authenticated_caller(connect: Callable[[str], grpc.Channel]) -> None:
    reply = health_pb2_grpc.HealthStub(connect("stranger")).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_only_get_bot_carries_the_sealed_token(connect: Callable[[str], grpc.Channel]) -> None:
    operator, dispatcher = Stub(connect("operator")), Stub(connect("dispatcher"))
    bot = operator.RegisterBot(pb.RegisterBotRequest(owner_id=11, token=OTHER_BOT_TOKEN)).bot
    assert bot.sealed_token == b""
    assert all(item.sealed_token == b"" for item in dispatcher.ListBots(pb.ListBotsRequest(owner_id=11)).bots)
    details = dispatcher.GetBotDetails(pb.GetBotDetailsRequest(actor_id=11, bot_id=bot.bot_id))
    assert details.bot.sealed_token == b""
    assert dispatcher.GetBot(pb.GetBotRequest(bot_id=bot.bot_id)).bot.sealed_token != b""


def test_the_trail_shows_who_called_from_their_certificate(connect: Callable[[str], grpc.Channel]) -> None:
    """The actor is the caller's certificate identity unless a service acts for a Telegram user; the operator's
    CLI acting as a bot's owner is recorded as the operator."""
    operator, dispatcher = Stub(connect("operator")), Stub(connect("dispatcher"))
    # Owner 7, as in the matrix above (which may have registered TOKEN already: then this is a refresh).
    bot = operator.RegisterBot(pb.RegisterBotRequest(owner_id=7, token=TOKEN)).bot
    operator.SetBotStatus(pb.SetBotStatusRequest(actor_id=7, bot_id=bot.bot_id, enabled=False))
    dispatcher.SetBotStatus(pb.SetBotStatusRequest(actor_id=7, bot_id=bot.bot_id, enabled=True))
    operator.RecordEvent(pb.RecordEventRequest(kind="key_rotated", outcome="done", details={"version": "2"}))
    newest_first = operator.ListEvents(pb.ListEventsRequest(limit=1000)).events
    events = {e.kind: e for e in reversed(newest_first)}  # the newest of each kind (the matrix above added some)
    assert (events["bot_disabled"].actor, dict(events["bot_disabled"].details)) == (
        "operator",
        {"via": "operator", "as_owner": "7", "role": "owner"},
    )
    assert (events["bot_enabled"].actor, events["bot_enabled"].details["via"]) == ("telegram:7", "dispatcher")
    assert (events["key_rotated"].actor, dict(events["key_rotated"].details)) == (
        "operator",
        {"version": "2", "via": "operator"},
    )
