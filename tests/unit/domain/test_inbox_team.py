"""The feedback inbox goes to the bot's team (issue 15, co-admins): owner and admins receive, answer and block; a
revoked admin does none of it from the next update on; an unknown team (registry unreachable) fails closed — the
owner only, nobody else may act. The trail gets a line for each block or unblock from the inbox."""

from __future__ import annotations

from tests.unit.domain.test_inbox import BOT_A, BOT_B, OWNER_A, OWNER_B, USER, Bots, Rig, make_bot
from tgm.domain.administration.ports import BlockUser, SettingsChange
from tgm.domain.administration.setting_rules import MAX_BLOCK_SECONDS
from tgm.domain.bots import Bot
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import BotNotFound, DomainError
from tgm.domain.events import Event, EventKind, Outcome
from tgm.domain.inbox import FeedbackInbox, inbox_recipients
from tgm.domain.use_cases.handle_update import HandleUpdate
from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns
from tgm.services.dispatcher.presentation.inbox_view import TelegramInboxView

ADMIN = 3003  # OWNER_A's co-admin on bot A


class Teams:
    """BotTeams: the registry's answer (owner first), or a failure while `down`."""

    def __init__(self) -> None:
        self.teams: dict[str, tuple[int, ...]] = {BOT_A: (OWNER_A, ADMIN), BOT_B: (OWNER_B,)}
        self.down = False
        self.asked: list[str] = []

    def members(self, bot_id: str) -> tuple[int, ...]:
        self.asked.append(bot_id)
        if self.down:
            raise DomainError("registry unreachable")
        return self.teams[bot_id]


class TeamBots(Bots):
    """The registry's settings RPC checking the team, as BotAdministration does (no role: "no such bot")."""

    def __init__(self, teams: Teams, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.teams = teams

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        if actor_id not in self.teams.teams.get(bot_id, ()):
            raise BotNotFound(bot_id)
        owner = self.bots[bot_id].owner_id
        bot = super().update_settings(owner, bot_id, change)  # applied as the parent fake does
        self.changes[-1] = (actor_id, bot_id, change)
        return bot


class Events:
    def __init__(self) -> None:
        self.recorded: list[Event] = []

    def record(self, event: Event) -> None:
        self.recorded.append(event)


class TeamRig(Rig):
    def __init__(self) -> None:
        super().__init__()
        self.teams, self.events = Teams(), Events()
        self.bots = TeamBots(self.teams, self.clock, *self.bots.bots.values())
        self.inbox = FeedbackInbox(
            self.links,
            self.outbox,
            TelegramInboxView(self.outbox),
            self.tokens,
            self.bots,
            cooldowns=InMemoryCooldowns(self.clock),
            teams=self.teams,
            events=self.events,
            clock=self.clock,
        )
        self.handle = HandleUpdate(self.bots, self.outbox, clock=self.clock, inbox=self.inbox)  # type: ignore[arg-type]

    def deliver(self, text: str = "hello", message_id: int = 10) -> dict[int, tuple[int, int]]:
        """USER writes to bot A: {admin: (header id, copy id)} for each chat it reached."""
        assert self.message(BOT_A, USER, text, message_id=message_id) == "inbox:delivered"
        reached: dict[int, list[int]] = {}
        for call in self.outbox.take():
            if call["chat"] != USER:
                reached.setdefault(call["chat"], []).append(call["id"])
        return {chat: (ids[0], ids[1]) for chat, ids in reached.items()}


def test_the_team_is_the_owner_then_the_admins_and_a_team_of_another_owner_is_not_trusted() -> None:
    bot = make_bot(BOT_A, OWNER_A, "shop_bot")
    assert inbox_recipients(bot, (OWNER_A, ADMIN)) == {OWNER_A, ADMIN}
    assert inbox_recipients(bot, (OWNER_B, ADMIN)) == {OWNER_A}  # read before the bot changed hands
    assert inbox_recipients(bot, ()) == inbox_recipients(bot) == {OWNER_A}


def test_every_admin_receives_each_message_with_their_own_signed_button_and_links() -> None:
    rig = TeamRig()
    rig.links.mark_reachable(BOT_A, ADMIN)
    reached = rig.deliver()
    assert set(reached) == {OWNER_A, ADMIN}
    header, copy = reached[ADMIN]
    assert rig.links.user_chat(BOT_A, ADMIN, header) == USER and rig.links.user_chat(BOT_A, ADMIN, copy) == USER


def test_an_admin_answers_and_blocks_and_the_trail_says_who() -> None:
    rig = TeamRig()
    header, copy = rig.deliver()[ADMIN]
    assert rig.message(BOT_A, ADMIN, "we are on it", message_id=900, reply_to=copy) == "inbox:replied"
    [relayed] = rig.outbox.take()
    assert (relayed["method"], relayed["chat"], relayed["from"], relayed["of"]) == ("copy", USER, ADMIN, 900)
    data = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, ADMIN, ADMIN)
    assert rig.press(BOT_A, ADMIN, data, header) == "inbox:blocked"
    assert rig.bots.changes == [(ADMIN, BOT_A, BlockUser(USER, MAX_BLOCK_SECONDS))]  # as the presser
    [event] = rig.events.recorded
    assert (event.kind, event.actor, event.bot_id, event.outcome) == (
        EventKind.INBOX_SENDER_BLOCKED,
        f"telegram:{ADMIN}",
        BOT_A,
        Outcome.DONE,
    )
    assert dict(event.details) == {"user": str(USER)}  # the registry adds the role from its own records
    unblock = rig.tokens.sign(CallbackAction.INBOX_UNBLOCK, BOT_A, ADMIN, ADMIN)
    assert rig.press(BOT_A, ADMIN, unblock, header) == "inbox:unblocked"
    assert rig.events.recorded[-1].kind is EventKind.INBOX_SENDER_UNBLOCKED


def test_a_revoked_admin_receives_nothing_more_and_can_neither_answer_nor_block() -> None:
    rig = TeamRig()
    header, copy = rig.deliver()[ADMIN]
    rig.teams.teams[BOT_A] = (OWNER_A,)  # revoked (the cache forgot the bot: adapters/bot_teams.py)
    assert set(rig.deliver("second", message_id=11)) == {OWNER_A}
    assert rig.message(BOT_A, ADMIN, "still here?", message_id=901, reply_to=copy) == "inbox:reply_refused"
    [said] = rig.outbox.take()
    assert said["chat"] == ADMIN and "no longer administer" in said["text"]  # nothing reached USER
    data = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, ADMIN, ADMIN)
    assert rig.press(BOT_A, ADMIN, data, header) == "inbox:button_refused"
    assert rig.bots.changes == [] and rig.events.recorded == []
    assert [call["method"] for call in rig.outbox.take()] == ["answer"]
    # Anything else they write is an ordinary user's message now: it goes to the team, they are not in it.
    assert rig.message(BOT_A, ADMIN, "hello as a user", message_id=902) == "inbox:delivered"
    assert {call["chat"] for call in rig.outbox.take()} == {OWNER_A, ADMIN}  # the owner, and the ack to them


def test_an_unknown_team_delivers_to_the_owner_only_and_only_the_owner_acts() -> None:
    rig = TeamRig()
    header, copy = rig.deliver()[ADMIN]
    owner_header, owner_copy = rig.deliver("again", message_id=11)[OWNER_A]
    rig.teams.down = True
    assert set(rig.deliver("while down", message_id=12)) == {OWNER_A}
    assert rig.message(BOT_A, ADMIN, "answer", message_id=903, reply_to=copy) == "inbox:reply_refused"
    [said] = rig.outbox.take()
    assert said["chat"] == ADMIN and "Could not check" in said["text"]
    data = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, ADMIN, ADMIN)
    assert rig.press(BOT_A, ADMIN, data, header) == "inbox:button_refused"
    assert rig.bots.changes == []
    [answer] = rig.outbox.take()
    assert "Could not check" in (answer["text"] or "")
    # The owner is named by the bot's own record: their answer still goes.
    assert rig.message(BOT_A, OWNER_A, "owner here", message_id=904, reply_to=owner_copy) == "inbox:replied"
    assert [call["chat"] for call in rig.outbox.take()] == [USER]
    assert rig.links.user_chat(BOT_A, OWNER_A, owner_header) == USER


def test_a_switched_off_inbox_asks_for_the_team_only_on_an_admins_start() -> None:
    rig = TeamRig()
    rig.bots.bots[BOT_A].settings.inbox_enabled = False
    assert rig.message(BOT_A, USER, "hello") == "ignored:unknown_command"
    assert rig.message(BOT_A, OWNER_A, "hi") == "ignored:unknown_command"
    assert rig.teams.asked == []  # ordinary traffic of a bot without an inbox costs no registry call
    assert rig.message(BOT_A, ADMIN, "/start") == "command:/start"
    assert rig.teams.asked == [BOT_A] and rig.links.reachable(BOT_A, ADMIN)
