"""Co-admins over the registry's gRPC API (Container on SQLite, manual clock) and the manager's client: an admin's
owner-only call is PERMISSION_DENIED (ActionNotPermitted in the client), a stranger's NOT_FOUND, refusals carry their
reason, and every co-admin action lands in the event trail with the actor and their role, never the code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN
from tests.unit.registry.test_registry_events import ALICE, Rig, start
from tgm.domain.administration.ports import SetWelcome
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.errors import ActionNotPermitted, BotNotFound
from tgm.registry.v1 import registry_pb2 as pb
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.services.botregistry.manager_bot_identity import register_manager

HELPER, STRANGER = 2002, 3003


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    for started in start(tmp_path):
        assert register_manager(started.container.register_bot(), OTHER_BOT_TOKEN)  # "second_bot" is the manager
        yield started


def client(rig: Rig) -> GrpcBotAdmin:
    return GrpcBotAdmin(rig.channel)


def test_an_invite_redeemed_revoked_and_refused_through_the_client_and_the_trail(rig: Rig) -> None:
    admin = client(rig)
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    issued = admin.create_invite(ALICE, bot.bot_id)
    assert issued.link == f"https://t.me/second_bot?start={issued.code}"
    assert admin.redeem_invite(HELPER, issued.code).id == bot.bot_id
    with pytest.raises(InvalidSetting) as used:
        admin.redeem_invite(STRANGER, issued.code)
    assert used.value.code == "invite_used"  # the reason travels in the trailing metadata

    assert admin.update_settings(HELPER, bot.bot_id, SetWelcome("by the helper")).settings.welcome_text
    assert [b.id for b in admin.list_bots(HELPER)] == [bot.bot_id]
    for owner_only in (
        lambda: admin.delete(HELPER, bot.bot_id),
        lambda: admin.rotate_secret(HELPER, bot.bot_id),
        lambda: admin.create_invite(HELPER, bot.bot_id),
        lambda: admin.admins(HELPER, bot.bot_id),
    ):
        with pytest.raises(ActionNotPermitted):
            owner_only()
    with pytest.raises(BotNotFound):
        admin.details(STRANGER, bot.bot_id)

    assert admin.team(bot.bot_id) == (ALICE, HELPER)  # who a feedback message or a broadcast report reaches
    with pytest.raises(BotNotFound):
        admin.team("00000000-0000-0000-0000-000000000000")
    _bot, admins, invites = admin.admins(ALICE, bot.bot_id)
    assert [(a.telegram_user_id, a.added_by) for a in admins] == [(HELPER, ALICE)] and invites == []
    pending = admin.create_invite(ALICE, bot.bot_id)
    assert [i.id for i in admin.admins(ALICE, bot.bot_id)[2]] == [pending.invite_id]
    admin.revoke_invite(ALICE, pending.invite_id)
    removed = admin.revoke_admin(ALICE, admins[0].id)[1]
    assert removed.telegram_user_id == HELPER
    with pytest.raises(BotNotFound):
        admin.update_settings(HELPER, bot.bot_id, SetWelcome("again"))
    assert admin.team(bot.bot_id) == (ALICE,)

    events = list(reversed(rig.stub.ListEvents(pb.ListEventsRequest(bot_id=bot.bot_id), timeout=5).events))
    trail = [(e.kind, e.actor, e.details.get("role")) for e in events]
    refused = [e for e in events if e.kind == "action_refused"]
    assert [(e.outcome, e.details["action"]) for e in refused] == [
        ("refused", "delete"),
        ("refused", "rotate_secret"),
        ("refused", "manage_admins"),
        ("refused", "manage_admins"),
    ]
    assert {(e.actor, e.details["role"]) for e in refused} == {(f"telegram:{HELPER}", "admin")}
    assert [t for t in trail if t[0] != "action_refused"] == [
        ("bot_added", f"telegram:{ALICE}", "owner"),
        ("invite_created", f"telegram:{ALICE}", "owner"),
        ("invite_redeemed", f"telegram:{HELPER}", "admin"),
        ("settings_changed", f"telegram:{HELPER}", "admin"),
        ("invite_created", f"telegram:{ALICE}", "owner"),
        ("invite_revoked", f"telegram:{ALICE}", "owner"),
        ("admin_revoked", f"telegram:{ALICE}", "owner"),
    ]
    assert events[-1].details["admin"] == str(HELPER)
    everything = str(events)
    assert issued.code not in everything and pending.code not in everything


def test_an_admin_leaving_is_in_the_trail_and_the_owner_cannot_leave(rig: Rig) -> None:
    admin = client(rig)
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    admin.redeem_invite(HELPER, admin.create_invite(ALICE, bot.bot_id).code)
    admin.leave(HELPER, bot.bot_id)
    with pytest.raises(InvalidSetting) as owner:
        admin.leave(ALICE, bot.bot_id)
    assert owner.value.code == "owner_cannot_leave"
    assert rig.kinds()[0] == "admin_left"


def test_the_admin_rpcs_refuse_a_missing_actor(rig: Rig) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        rig.stub.RedeemInvite(pb.RedeemInviteRequest(actor_id=0, code="x" * 32), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
