"""Co-admins in the domain (issue 15): BotAdministration with in-memory adapters and a manual clock.

Roles and what each may do, invites (one-time, expiring, hashed, bound to one bot), revocation taking effect on the
next call, leaving, tenant isolation between bots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.ports import BlockUser, SetWelcome
from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.bot_roles import (
    OWNER_ONLY,
    BotAction,
    BotRole,
    invite_code_hash,
    may,
)
from tgm.domain.bots import Bot, BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import ActionNotPermitted, BotNotFound
from tgm.services.botregistry.adapters.memory import (
    InMemoryBotAdminStore,
    InMemoryBotRepository,
    InMemoryInteractionStats,
)

OWNER, HELPER, STRANGER = 1001, 2002, 3003
MANAGER_TOKEN = "555555555:AAManagerFakeTokenForTests_abcdefghij"


class Telegram(FakeTelegram):
    def __init__(self) -> None:
        super().__init__()
        self.known[555555555] = "mgr_bot"

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        pass

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        return BotToken(TOKEN)  # "first_bot": OWNER's, until Telegram says it moved


@dataclass
class World:
    admin: BotAdministration
    store: InMemoryBotAdminStore
    clock: ManualClock
    bot: Bot  # OWNER's
    other: Bot  # STRANGER's

    def invite(self, bot: Bot | None = None) -> str:
        return self.admin.create_invite(OWNER if bot is None else bot.owner_id, (bot or self.bot).id).code

    def refused(self, code: str, actor: int = HELPER) -> str:
        with pytest.raises(InvalidSetting) as raised:
            self.admin.redeem_invite(actor, code)
        return raised.value.code


@pytest.fixture
def w() -> World:
    bots, telegram, vault, clock = InMemoryBotRepository(), Telegram(), InMemoryTokenVault(), ManualClock()
    register = RegisterBot(bots, telegram, vault, clock, "https://hooks.test")
    register.register(RegisterBotCommand(owner_id=0, token=BotToken(MANAGER_TOKEN), is_manager=True))
    store = InMemoryBotAdminStore()
    admin = BotAdministration(
        bots=bots,
        manager=bots,  # type: ignore[arg-type]
        telegram=telegram,
        vault=vault,
        clock=clock,
        register_bot=register,
        stats=InMemoryInteractionStats(),
        admins=store,
    )
    bot, _ = register.register(RegisterBotCommand(owner_id=OWNER, token=BotToken(TOKEN)))
    other, _ = register.register(RegisterBotCommand(owner_id=STRANGER, token=BotToken(OTHER_BOT_TOKEN)))
    return World(admin, store, clock, bot, other)


def test_an_admin_may_do_everything_but_delete_rotate_and_manage_admins() -> None:
    for action in BotAction:
        assert may(BotRole.OWNER, action)
        assert may(BotRole.ADMIN, action) is (action not in OWNER_ONLY)
        assert not may(None, action)
    assert {BotAction.DELETE, BotAction.ROTATE_SECRET, BotAction.MANAGE_ADMINS} == OWNER_ONLY


def test_an_invite_is_a_link_and_a_code_stored_only_as_its_hash(w: World) -> None:
    issued = w.admin.create_invite(OWNER, w.bot.id)
    assert issued.link == f"https://t.me/mgr_bot?start={issued.code}"
    assert len(issued.code) >= 32 and issued.code not in repr(issued)
    assert issued.expires_at == w.clock.now() + timedelta(hours=24)
    (stored,) = w.store.pending_invites(w.bot.id, w.clock.now())
    assert stored.code_sha256 == invite_code_hash(issued.code) != issued.code.encode()
    assert issued.code not in repr(stored)
    assert w.admin.create_invite(OWNER, w.bot.id).code != issued.code  # a fresh random code each time


def test_redeeming_makes_an_admin_who_may_run_the_bot_but_not_own_it(w: World) -> None:
    bot = w.admin.redeem_invite(HELPER, w.invite())
    assert bot.id == w.bot.id and bot.owner_id == OWNER
    assert [b.id for b in w.admin.list_bots(HELPER)] == [w.bot.id]
    assert w.admin.authorized(HELPER, w.bot.id, BotAction.CONFIGURE)[1] is BotRole.ADMIN
    assert w.admin.update_settings(HELPER, w.bot.id, SetWelcome("hi from the helper")).settings.welcome_text
    w.admin.update_settings(HELPER, w.bot.id, BlockUser(77, 3600))
    w.admin.set_enabled(HELPER, w.bot.id, False)
    w.admin.set_enabled(HELPER, w.bot.id, True)
    w.admin.details(HELPER, w.bot.id)
    w.admin.subscriber_stats(HELPER, w.bot.id)
    for owner_only in (
        lambda: w.admin.delete(HELPER, w.bot.id),
        lambda: w.admin.rotate_secret(HELPER, w.bot.id),
        lambda: w.admin.create_invite(HELPER, w.bot.id),
        lambda: w.admin.admins(HELPER, w.bot.id),
    ):
        with pytest.raises(ActionNotPermitted):
            owner_only()
    assert w.admin.details(OWNER, w.bot.id)[0].status.value == "active"  # nothing was deleted
    assert w.admin.team(w.bot.id).member_ids == (OWNER, HELPER)


def test_an_admin_of_one_bot_cannot_touch_another(w: World) -> None:
    w.admin.redeem_invite(HELPER, w.invite())
    for call in (
        lambda: w.admin.details(HELPER, w.other.id),
        lambda: w.admin.update_settings(HELPER, w.other.id, SetWelcome("pwned")),
        lambda: w.admin.set_enabled(HELPER, w.other.id, False),
        lambda: w.admin.list_subscribers(HELPER, w.other.id, 0, 10),
        lambda: w.admin.delete(HELPER, w.other.id),
    ):
        with pytest.raises(BotNotFound):  # the same answer as for a bot that does not exist
            call()
    assert w.admin.details(STRANGER, w.other.id)[0].settings.welcome_text == ""


def test_own_expired_used_unknown_and_withdrawn_invites_change_nothing(w: World) -> None:
    assert w.refused(w.invite(), actor=OWNER) == "invite_own_bot"
    assert w.refused("x" * 40) == "invite_invalid"
    assert w.refused("not a code!") == "invite_invalid"
    expiring = w.invite()
    w.clock.advance(24 * 3600 - 1)
    late = w.invite()
    w.clock.advance(1)
    assert w.refused(expiring) == "invite_expired"
    withdrawn = w.invite()
    (pending,) = [
        i for i in w.store.pending_invites(w.bot.id, w.clock.now()) if i.code_sha256 == invite_code_hash(withdrawn)
    ]
    w.admin.revoke_invite(OWNER, pending.id)
    assert w.refused(withdrawn) == "invite_invalid"
    assert w.store.admin_ids(w.bot.id) == frozenset()  # none of these added anyone
    w.admin.redeem_invite(HELPER, late)
    assert w.refused(late, actor=STRANGER) == "invite_used"
    assert w.store.admin_ids(w.bot.id) == {HELPER}
    assert w.refused(w.invite()) == "invite_already_admin"


def test_an_invite_binds_its_own_bot_only(w: World) -> None:
    code = w.invite(w.other)  # STRANGER invites HELPER to their bot
    w.admin.redeem_invite(HELPER, code)
    assert [b.id for b in w.admin.list_bots(HELPER)] == [w.other.id]
    with pytest.raises(BotNotFound):
        w.admin.details(HELPER, w.bot.id)


def test_a_revoked_admin_is_refused_at_once_and_may_not_revoke_others(w: World) -> None:
    w.admin.redeem_invite(HELPER, w.invite())
    w.clock.advance(1)  # listed by the time they joined
    w.admin.redeem_invite(STRANGER, w.invite())
    _bot, admins, _ = w.admin.admins(OWNER, w.bot.id)
    helper, stranger = admins
    assert (helper.telegram_user_id, helper.added_by) == (HELPER, OWNER)
    with pytest.raises(ActionNotPermitted):
        w.admin.revoke_admin(HELPER, stranger.id)
    bot, removed = w.admin.revoke_admin(OWNER, helper.id)
    assert removed.telegram_user_id == HELPER and bot.id == w.bot.id
    with pytest.raises(BotNotFound):
        w.admin.update_settings(HELPER, w.bot.id, SetWelcome("still here?"))
    assert w.admin.list_bots(HELPER) == []
    with pytest.raises(InvalidSetting) as again:
        w.admin.revoke_admin(OWNER, helper.id)
    assert again.value.code == "admin_unknown"


def test_an_admin_may_leave_and_the_owner_may_not(w: World) -> None:
    w.admin.redeem_invite(HELPER, w.invite())
    assert w.admin.leave(HELPER, w.bot.id).id == w.bot.id
    with pytest.raises(BotNotFound):
        w.admin.details(HELPER, w.bot.id)
    with pytest.raises(InvalidSetting) as raised:
        w.admin.leave(OWNER, w.bot.id)
    assert raised.value.code == "owner_cannot_leave"
    with pytest.raises(BotNotFound):
        w.admin.leave(STRANGER, w.bot.id)


def test_invites_and_admins_are_bounded_per_bot(w: World) -> None:
    for _ in range(10):
        w.invite()
    with pytest.raises(InvalidSetting) as raised:
        w.invite()
    assert raised.value.code == "too_many_invites"
    w.clock.advance(24 * 3600)  # the open ones expired: room again
    w.invite()


def test_a_bot_taken_over_by_a_new_owner_drops_the_previous_owners_admins_and_invites(w: World) -> None:
    w.admin.redeem_invite(HELPER, w.invite())
    pending = w.invite()
    registration = w.admin.register_managed(STRANGER, w.bot.telegram_bot_id)  # Telegram: the bot is STRANGER's now
    assert registration.bot.id == w.bot.id and registration.bot.owner_id == STRANGER
    with pytest.raises(BotNotFound):
        w.admin.details(HELPER, w.bot.id)
    assert w.refused(pending) == "invite_invalid"
    assert w.admin.team(w.bot.id).member_ids == (STRANGER,)
    w.admin.register_managed(STRANGER, w.bot.telegram_bot_id)  # a refresh by the same owner keeps their admins


def test_nobody_blocks_the_bots_owner_or_admins_as_users(w: World) -> None:
    w.admin.redeem_invite(HELPER, w.invite())
    for actor, target in ((HELPER, OWNER), (OWNER, HELPER), (HELPER, HELPER)):
        with pytest.raises(InvalidSetting) as raised:
            w.admin.update_settings(actor, w.bot.id, BlockUser(target, 3600))
        assert raised.value.code == "block_team_member"
    assert w.admin.update_settings(HELPER, w.bot.id, BlockUser(STRANGER, 3600)).settings.blocked_users.keys() == {
        STRANGER
    }
