"""The dispatcher's cache of bot teams (adapters/bot_teams.py) and what makes it forget: a short TTL, and every team
change the manager makes (invite redeemed, admin revoked, admin left, bot registered by a new owner), announced
with the bot as the other bot changes are (adapters/bot_changes.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.domain.test_inbox import make_bot
from tgm.domain.administration.ports import Registration
from tgm.domain.bot_roles import CoAdmin
from tgm.domain.clock import ManualClock
from tgm.domain.errors import DomainError
from tgm.services.dispatcher.adapters.bot_changes import AnnouncingBotAdmin, announcer
from tgm.services.dispatcher.adapters.bot_teams import CachedBotTeams, ForgetEverywhere, TeamUnknown

BOT = "2b7f3f5e-8f1c-4d7e-9a53-0c6f0f3b1a11"
OWNER, ADMIN = 1001, 3003


class Registry:
    def __init__(self) -> None:
        self.team: tuple[int, ...] = (OWNER, ADMIN)
        self.calls = 0
        self.fail = False

    def fetch(self, bot_id: str) -> tuple[int, ...]:
        self.calls += 1
        if self.fail:
            raise DomainError("registry unreachable")
        return self.team


def cache(registry: Registry, clock: ManualClock, **kw: Any) -> CachedBotTeams:
    return CachedBotTeams(registry.fetch, clock, ttl_seconds=30.0, failure_ttl_seconds=2.0, **kw)


def test_one_registry_call_per_bot_per_ttl() -> None:
    clock, registry = ManualClock(), Registry()
    teams = cache(registry, clock)
    assert teams.members(BOT) == (OWNER, ADMIN)
    registry.team = (OWNER,)
    clock.advance(29.9)
    assert teams.members(BOT) == (OWNER, ADMIN) and registry.calls == 1
    clock.advance(0.1)
    assert teams.members(BOT) == (OWNER,) and registry.calls == 2


def test_forget_and_invalidate_read_afresh_at_once() -> None:
    clock, registry = ManualClock(), Registry()
    teams = cache(registry, clock)
    teams.members(BOT)
    registry.team = (OWNER,)
    teams.forget("another bot")
    assert teams.members(BOT) == (OWNER, ADMIN)  # only the bot named is forgotten
    teams.forget(BOT)
    assert teams.members(BOT) == (OWNER,)
    registry.team = (OWNER, 4004)
    teams.invalidate()
    assert teams.members(BOT) == (OWNER, 4004)


def test_a_failure_raises_is_remembered_briefly_and_no_stale_team_is_served_past_its_ttl() -> None:
    clock, registry = ManualClock(), Registry()
    teams = cache(registry, clock)
    teams.members(BOT)
    clock.advance(30)
    registry.fail = True
    with pytest.raises(DomainError):
        teams.members(BOT)
    with pytest.raises(TeamUnknown):
        teams.members(BOT)  # not asked again right away: a down registry costs one call per bot per 2 s
    assert registry.calls == 2
    registry.fail = False
    clock.advance(2)
    assert teams.members(BOT) == (OWNER, ADMIN) and registry.calls == 3


def test_an_answer_that_raced_a_forget_is_not_cached() -> None:
    clock = ManualClock()
    entered, release = threading.Event(), threading.Event()
    answers = iter([(OWNER, ADMIN), (OWNER,)])

    def slow_fetch(bot_id: str) -> tuple[int, ...]:
        answer = next(answers)
        if answer == (OWNER, ADMIN):
            entered.set()
            release.wait(5)
        return answer

    teams = CachedBotTeams(slow_fetch, clock)
    seen: list[tuple[int, ...]] = []
    reader = threading.Thread(target=lambda: seen.append(teams.members(BOT)))
    reader.start()
    assert entered.wait(5)
    teams.forget(BOT)  # the admin was revoked while the read was out
    release.set()
    reader.join(5)
    assert seen == [(OWNER, ADMIN)]  # that caller got the old answer; nobody after it does
    assert teams.members(BOT) == (OWNER,)


def test_the_oldest_bots_go_first_past_the_bound() -> None:
    clock, registry = ManualClock(), Registry()
    teams = cache(registry, clock, max_entries=2)
    for bot in ("a", "b", "c"):
        teams.members(bot)
    teams.members("c")
    teams.members("b")
    assert registry.calls == 3
    teams.members("a")
    assert registry.calls == 4


class Admin:
    """The registry's co-admin calls as GrpcBotAdmin answers them."""

    def __init__(self) -> None:
        self.bot = make_bot(BOT, OWNER, "shop_bot")

    def redeem_invite(self, actor_id: int, code: str) -> Any:
        return self.bot

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Any, CoAdmin]:
        return self.bot, CoAdmin(membership_id, BOT, ADMIN, OWNER, datetime(2026, 12, 1, tzinfo=UTC))

    def leave(self, actor_id: int, bot_id: str) -> Any:
        return self.bot

    def register_sealed(self, owner_id: int, sealed: bytes, by: str, chat_id: int) -> Registration:
        return Registration(self.bot, True)

    def create_invite(self, actor_id: int, bot_id: str) -> str:
        return "issued"


class Directory:
    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.invalidated = 0

    def forget(self, bot_id: str) -> None:
        self.forgotten.append(bot_id)

    def invalidate(self) -> None:
        self.invalidated += 1


@pytest.mark.parametrize(
    "call",
    [
        lambda admin: admin.redeem_invite(ADMIN, "code"),
        lambda admin: admin.revoke_admin(OWNER, "membership-1"),
        lambda admin: admin.leave(ADMIN, BOT),
        lambda admin: admin.register_sealed(4004, b"sealed", "manager", 4004),  # taken over by a new owner
    ],
    ids=["redeemed", "revoked", "left", "taken_over"],
)
def test_every_team_change_forgets_the_bots_team_at_once(call: Any) -> None:
    clock, registry = ManualClock(), Registry()
    teams, directory = cache(registry, clock), Directory()
    admin = AnnouncingBotAdmin(Admin(), announcer(None, ForgetEverywhere(directory, teams)))  # type: ignore[arg-type]
    assert teams.members(BOT) == (OWNER, ADMIN)
    registry.team = (OWNER,)
    call(admin)
    assert directory.forgotten == [BOT]
    assert teams.members(BOT) == (OWNER,)  # no TTL to wait out


def test_calls_that_change_no_team_forget_nothing_and_a_reconnect_forgets_everything() -> None:
    clock, registry = ManualClock(), Registry()
    teams, directory = cache(registry, clock), Directory()
    everywhere = ForgetEverywhere(directory, teams)
    admin = AnnouncingBotAdmin(Admin(), announcer(None, everywhere))  # type: ignore[arg-type]
    teams.members(BOT)
    assert admin.create_invite(OWNER, BOT) == "issued"
    assert directory.forgotten == [] and registry.calls == 1
    everywhere.invalidate()  # the listener after a Redis reconnect
    teams.members(BOT)
    assert directory.invalidated == 1 and registry.calls == 2
