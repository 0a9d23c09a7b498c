"""/inbox @bot on with co-admins (issue 15): the acting admin is warned when the bot cannot write to them yet, and
told how many others of the team it cannot reach; a team that cannot be learnt leaves only the first warning."""

from __future__ import annotations

from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, NOW, FakeOutbox
from tests.unit.manager.test_manager_inbox import Rig, SwitchingAdmin
from tgm.domain.callback_tokens import CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.errors import DomainError
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks
from tgm.services.dispatcher.manager_bot.state import InMemoryAdminSessions, InMemoryConversationStore
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView

HELPER, OTHER = 2002, 3003


class Teams:
    def __init__(self) -> None:
        self.team: tuple[int, ...] = (ADMIN, HELPER, OTHER)
        self.down = False

    def members(self, bot_id: str) -> tuple[int, ...]:
        if self.down or bot_id != BOT_ID:
            raise DomainError("registry unreachable")
        return self.team


class TeamRig(Rig):
    def __init__(self) -> None:
        clock = ManualClock(NOW)
        self.admin, self.outbox, self.links = SwitchingAdmin(), FakeOutbox(), InMemoryInboxLinks(clock=clock)
        self.teams = Teams()
        self.bot = ManagerBot(
            self.admin,
            TelegramManagerView(self.outbox),
            CallbackTokens(b"s" * 32, clock),
            InMemoryConversationStore(clock),
            InMemoryAdminSessions(clock),
            ManagerConfig(),
            clock=clock,
            inbox_links=self.links,
            bot_teams=self.teams,
        )
        self.update_id = 0


def test_the_team_members_the_bot_cannot_reach_are_counted() -> None:
    rig = TeamRig()
    _, said = rig.say("/inbox @shop_bot on")
    assert len(said) == 3 and "cannot write to you yet" in said[1] and "2 admin(s) of @shop_bot" in said[2]
    rig.links.mark_reachable(BOT_ID, ADMIN)
    rig.links.mark_reachable(BOT_ID, HELPER)
    _, said = rig.say("/inbox @shop_bot on")
    assert len(said) == 2 and "1 admin(s)" in said[1]
    rig.links.mark_reachable(BOT_ID, OTHER)
    _, said = rig.say("/inbox @shop_bot on")
    assert len(said) == 1


def test_a_revoked_admin_is_no_longer_counted_and_an_unknown_team_warns_only_the_actor() -> None:
    rig = TeamRig()
    rig.links.mark_reachable(BOT_ID, ADMIN)
    rig.teams.team = (ADMIN, HELPER)
    _, said = rig.say("/inbox @shop_bot on")
    assert "1 admin(s)" in said[-1]
    rig.teams.down = True
    _, said = rig.say("/inbox @shop_bot on")
    assert len(said) == 1 and "on" in said[0]
