"""The inbox mode through the registry's RPCs (migration 0012 on SQLite, the servicer, the gRPC clients): off by
default, switched by the bot's owner only, and seen by the dispatcher's directory."""

from __future__ import annotations

import grpc

from tests.unit.registry.test_registry_admin_rpcs import ALICE, MALLORY, Rig, rig  # noqa: F401 - the fixture
from tgm.domain.administration.ports import SetInboxMode
from tgm.registry.v1 import registry_pb2
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.registry_client.client import bot_from_proto


def test_the_inbox_is_off_by_default_and_its_owner_switches_it(rig: Rig) -> None:  # noqa: F811
    bot = rig.register()
    assert bot.inbox_enabled is False
    assert bot_from_proto(bot).settings.inbox_enabled is False
    admin = GrpcBotAdmin(rig.channel)
    assert admin.update_settings(ALICE, bot.bot_id, SetInboxMode(True)).settings.inbox_enabled
    stored = rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id), timeout=5).bot
    assert bot_from_proto(stored).settings.inbox_enabled, "what the dispatcher reads"
    assert not admin.update_settings(ALICE, bot.bot_id, SetInboxMode(False)).settings.inbox_enabled


def test_another_admin_cannot_switch_it(rig: Rig) -> None:  # noqa: F811
    bot = rig.register()
    request = registry_pb2.UpdateBotSettingsRequest(actor_id=MALLORY, bot_id=bot.bot_id, inbox_enabled=True)
    assert rig.code(lambda: rig.stub.UpdateBotSettings(request, timeout=5)) == grpc.StatusCode.NOT_FOUND
    assert not rig.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id), timeout=5).bot.inbox_enabled
