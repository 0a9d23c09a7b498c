"""Feedback inbox (issue 15, the Livegram pattern): a hosted bot in inbox mode hands its users' messages to its admins.

- A user's message the bot does not answer otherwise (text, photo, anything) reaches each admin's private chat with
  the bot as two messages: a header naming the sender, written by tgm (with a signed "Block" button), then a copy of
  the message (copyMessage). forwardMessage is not used: when the user's privacy settings hide forwards, Telegram
  shows only a name and no id, and the admin could not tell who wrote.
- Each delivered message is linked, once Telegram gave it an id, to the user's chat: (bot, admin chat, message id) →
  user chat, with a TTL (InboxLinks). An admin's reply to a linked message goes back to that user as the bot
  (copyMessage). Nothing written in the header is ever read back: a reply or a button press finds the user through
  the link only, in the bot's own namespace, so an admin of another bot (or a forged reply) reaches nobody.
- The "Block" button blocks the sender through the registry (BotAdmin, the same change as /block, checked against
  the presser); the header then offers "Unblock". Blocked users' updates are dropped before they get here.
- Admins writing to their own bot are never looped into the inbox; their private messages mark them reachable
  (Telegram lets a bot write only to users who started it), which the manager checks when the mode is switched on.
- "The admins" are the bot's team (owner and co-admins, `BotTeams`), read for every delivery, reply and press
  through a short cache the dispatcher forgets as soon as the team changes: a revoked admin gets nothing more and
  can answer or block no one. When the team cannot be learnt (the registry is unreachable) the inbox fails
  closed: deliveries go to the owner only, whom the bot's own record names, and nobody else may act from it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tgm.domain.administration.ports import BlockUser, SettingsChange, UnblockUser
from tgm.domain.administration.setting_rules import MAX_BLOCK_SECONDS
from tgm.domain.bots import Bot
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.effects import EffectIds
from tgm.domain.errors import DomainError
from tgm.domain.events import Event, EventKind, EventRecorder, Outcome, telegram_actor
from tgm.domain.inbound import sender_of
from tgm.domain.outbound import CopyMessage
from tgm.domain.ports import Clock, Cooldowns, Outbox
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.view import Button, Buttons, Chat, ChatView, Prerendered, Text

logger = logging.getLogger(__name__)

# Delivered messages stay answerable this long; the header's buttons live as long (see inbox_tokens).
LINK_TTL_SECONDS = 7 * 24 * 3600
# A user is told "delivered" at most once per this many seconds (not after every message of a conversation).
ACK_COOLDOWN_SECONDS = 300.0


def inbox_recipients(bot: Bot, team: Sequence[int] | None = None) -> frozenset[int]:
    """Who receives a bot's inbox (and may answer and block from it): its team (`BotTeams.members`: owner first,
    then the admins). Without a team, or one naming another owner (read before the bot changed hands), the owner
    only. A private chat's id is its user's, so these are also the chats the inbox writes to."""
    if not team or team[0] != bot.owner_id:
        return frozenset({bot.owner_id})
    return frozenset(team)


class BotTeams(Protocol):
    """Who runs a bot now: the owner, then its admins (the registry's GetBotTeam, cached briefly)."""

    def members(self, bot_id: str) -> tuple[int, ...]:
        """Raises a DomainError when it cannot be learnt (the registry unreachable, the bot gone)."""
        ...


class InboxLinks(Protocol):
    """Delivered inbox messages → the user's chat, per bot, with a TTL; and which admins can be written to."""

    def link(self, bot_id: str, admin_chat_id: int, message_id: int, user_chat_id: int) -> None: ...

    def user_chat(self, bot_id: str, admin_chat_id: int, message_id: int) -> int | None:
        """The user's chat a delivered message came from; None when unknown, expired or another bot's."""
        ...

    def mark_reachable(self, bot_id: str, admin_id: int) -> None:
        """The admin wrote to the bot in private: the bot may write to them."""
        ...

    def reachable(self, bot_id: str, admin_id: int) -> bool: ...


class SettingsChanger(Protocol):
    """The registry's settings RPC (BotAdmin.update_settings): checks that `actor_id` administers the bot."""

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot: ...


@dataclass(frozen=True)
class InboxPolicy:
    ack: bool = True
    ack_cooldown_seconds: float = ACK_COOLDOWN_SECONDS
    # An admin's chat with the bot takes one message a second (Telegram's per-chat limit) and each delivery is two:
    # past this many waiting there, new deliveries to that admin are dropped (the user is told, once per cooldown)
    # rather than queued behind minutes of someone's flood.
    max_admin_backlog: int = 100


class InboxBacklog(Protocol):
    """How many outbound messages wait in a bot's chat (the outbox lane) before a new one would go."""

    def pending(self, bot_id: str, chat_id: int) -> int: ...


class InboxView(ChatView, Protocol):
    """Shows the inbox's messages in the bot's chats; how they look is the adapter's (docs/adr/007)."""

    def deliver_header(self, chat: Chat, header: Text, buttons: Buttons, *, link_chat_id: int) -> None:
        """Sends the header that names a user's message to an admin, linked to the user's chat once Telegram numbered
        it (Outbox.send's `link_chat_id`)."""
        ...


class FeedbackInbox:
    """Delivers users' messages to the admins, their replies back, and the Block/Unblock buttons."""

    def __init__(
        self,
        links: InboxLinks,
        outbox: Outbox,
        view: InboxView,
        tokens: CallbackTokens,
        admin: SettingsChanger,
        cooldowns: Cooldowns | None = None,
        policy: InboxPolicy | None = None,
        teams: BotTeams | None = None,
        events: EventRecorder | None = None,
        clock: Clock | None = None,
        backlog: InboxBacklog | None = None,
    ) -> None:
        self._backlog = backlog
        self._teams = teams
        self._events = events
        self._clock = clock
        self._links = links
        self._outbox = outbox  # copies of the users' and the admins' messages: nothing of the inbox's own look
        self._view = view
        self._tokens = tokens
        self._admin = admin
        self._cooldowns = cooldowns
        self._policy = policy or InboxPolicy()

    def handle_message(self, bot: Bot, envelope: UpdateEnvelope, answered: bool, effects: EffectIds) -> str | None:
        """A private message to the bot. `answered`: the bot answers it itself (a command it knows); `effects`: the
        update's. The outcome's action when the inbox took the message; None to let the bot go on as without an
        inbox."""
        message = envelope.message
        sender = sender_of(envelope)
        sender_id = envelope.view.sender_id
        chat_id = envelope.chat_id
        if message is None or sender is None or sender_id is None or chat_id != sender_id:
            return None  # private chats only: a private chat's id is its user's
        enabled = bot.settings.inbox_enabled
        owner = sender_id == bot.owner_id
        if not enabled and not owner and not (envelope.text or "").startswith("/start"):
            return None  # off: only an admin's /start (they become reachable) needs the team, not every message
        # The owner's own messages need no lookup: the bot's record names them.
        members, known = (inbox_recipients(bot), True) if owner else self._members(bot)
        reply_to = envelope.view.reply_to_message_id
        if sender_id in members:
            self._links.mark_reachable(bot.id, sender_id)
            if not enabled:
                return None
            if reply_to is not None:
                return self._relay_reply(bot, envelope, chat_id, reply_to, effects)
            return None if answered else "inbox:admin_ignored"  # never looped into their own inbox
        if not enabled or answered:
            return None
        if reply_to is not None and self._linked(bot, chat_id, reply_to) is not None:
            # A reply to an inbox delivery in their own chat: they were an admin when it came. No longer one (revoked,
            # left) or not known now (registry unreachable): nothing is relayed, nor handed to the team as theirs.
            chat = Chat(bot.id, chat_id, envelope.view.language or bot.settings.language, effects)
            self._view.say(chat, Text("inbox_not_admin" if known else "inbox_unavailable"))
            return "inbox:reply_refused"
        return self._deliver(bot, envelope, sender, chat_id, message, members, effects)

    def _members(self, bot: Bot) -> tuple[frozenset[int], bool]:
        """(who runs the bot, whether that is known). Unknown (the registry unreachable): the owner only, whom the
        bot's own record names; an admin is not let in on a guess (they may just have been revoked)."""
        if self._teams is None:
            return inbox_recipients(bot), True  # no co-admins wired: the owner is the whole team
        try:
            team = self._teams.members(bot.id)
        except DomainError as error:
            logger.warning("bot team unknown: inbox for the owner only", extra={"error": type(error).__name__})
            return inbox_recipients(bot), False
        members = inbox_recipients(bot, team)
        return members, bool(team) and team[0] == bot.owner_id

    def _linked(self, bot: Bot, chat_id: int, replied_id: int) -> int | None:
        return self._links.user_chat(bot.id, chat_id, replied_id)

    def _deliver(
        self,
        bot: Bot,
        envelope: UpdateEnvelope,
        sender: dict[str, Any],
        chat_id: int,
        message: dict[str, Any],
        members: frozenset[int],
        effects: EffectIds,
    ) -> str:
        message_id = envelope.view.message_id
        user_id = envelope.view.sender_id
        if message_id is None or user_id is None:
            return "inbox:ignored"
        lang = bot.settings.language  # the admins' language is not known here: the bot's
        limit, backlog = self._policy.max_admin_backlog, self._backlog
        open_chats = [a for a in sorted(members) if backlog is None or backlog.pending(bot.id, a) < limit]
        if not open_chats:
            logger.warning("inbox backlog full: a user's message was not delivered", extra={"bot_id": bot.id})
            if self._cooldowns is None or self._cooldowns.start(
                f"inbox-busy:{bot.id}:{user_id}", self._policy.ack_cooldown_seconds
            ):
                self._view.say(Chat(bot.id, chat_id, envelope.view.language or lang, effects), Text("inbox_busy"))
            return "inbox:busy"
        for admin_id in open_chats:
            header = Text("inbox_header", {"sender": sender_text(sender), "user_id": user_id})
            block = self._buttons(bot, CallbackAction.INBOX_BLOCK, "btn_inbox_block", admin_id)
            self._view.deliver_header(Chat(bot.id, admin_id, lang, effects), header, block, link_chat_id=chat_id)
            copy = CopyMessage(admin_id, chat_id, message_id)
            self._outbox.send(bot.id, copy, effect_id=effects.next(), link_chat_id=chat_id)
        if self._policy.ack and (
            self._cooldowns is None
            or self._cooldowns.start(f"inbox-ack:{bot.id}:{user_id}", self._policy.ack_cooldown_seconds)
        ):
            self._view.say(Chat(bot.id, chat_id, envelope.view.language or lang, effects), Text("inbox_ack"))
        return "inbox:delivered"

    def _relay_reply(
        self, bot: Bot, envelope: UpdateEnvelope, chat_id: int, replied_id: int, effects: EffectIds
    ) -> str:
        user_chat = self._linked(bot, chat_id, replied_id)
        message_id = envelope.view.message_id
        if user_chat is None or message_id is None:
            chat = Chat(bot.id, chat_id, envelope.view.language or bot.settings.language, effects)
            self._view.say(chat, Text("inbox_reply_unknown"))
            return "inbox:reply_unknown"
        self._outbox.send(bot.id, CopyMessage(user_chat, chat_id, message_id), effect_id=effects.next())
        return "inbox:replied"

    def handle_callback(self, bot: Bot, envelope: UpdateEnvelope, effects: EffectIds) -> str | None:
        """A press of an inbox button; None when the press is not one (another feature's, or forged). `effects`: the
        update's."""
        view = envelope.view
        presser, data, held_id, chat_id = view.sender_id, view.callback_data, view.message_id, view.chat_id
        if view.callback_id is None or presser is None or data is None:
            return None
        if held_id is None or chat_id is None:  # the header the button is under
            return None
        claim = self._tokens.verify(data, presser, chat_id)
        if (
            claim is None
            or claim.action not in (CallbackAction.INBOX_BLOCK, CallbackAction.INBOX_UNBLOCK)
            or claim.bot_id != bot.id  # a button of another bot's inbox
        ):
            return None
        callback_id = view.callback_id
        chat = Chat(bot.id, chat_id, envelope.view.language or bot.settings.language, effects)
        user_chat = self._links.user_chat(bot.id, chat_id, held_id)
        members, known = self._members(bot)
        # Unknown team: only the owner may press (fail closed); the registry re-checks the presser's role anyway.
        if presser not in members or user_chat is None:
            self._view.answer_button(chat, callback_id, Text("callback_invalid" if known else "inbox_unavailable"))
            return "inbox:button_refused"
        block = claim.action is CallbackAction.INBOX_BLOCK
        change: SettingsChange = BlockUser(user_chat, MAX_BLOCK_SECONDS) if block else UnblockUser(user_chat)
        try:
            self._admin.update_settings(presser, bot.id, change)
        except DomainError as exc:
            # Refused (not theirs any more, already unblocked…) or the registry is down: said, nothing changed.
            reason = getattr(exc, "code", "")
            said = Text("inbox_unblocked" if reason == "user_not_blocked" else "callback_invalid")
            self._view.answer_button(chat, callback_id, said)
            return "inbox:button_failed"
        self._view.answer_button(chat, callback_id, Text("inbox_blocked" if block else "inbox_unblocked"))
        self._record(bot, presser, user_chat, block)
        text = view.text
        # The header as Telegram shows it (its formatting gone), sent back unchanged; the next button undoes this one.
        if text:
            undo = CallbackAction.INBOX_UNBLOCK if block else CallbackAction.INBOX_BLOCK
            buttons = self._buttons(bot, undo, "btn_inbox_unblock" if block else "btn_inbox_block", chat_id)
            self._view.edit(chat, held_id, Prerendered(text), buttons)
        return "inbox:blocked" if block else "inbox:unblocked"

    def _record(self, bot: Bot, presser: int, user_id: int, block: bool) -> None:
        """The trail's line for a block from the inbox (the registry's own `settings_changed` does not say where it
        came from). The registry adds the presser's role from its own records."""
        if self._events is None or self._clock is None:
            return
        kind = EventKind.INBOX_SENDER_BLOCKED if block else EventKind.INBOX_SENDER_UNBLOCKED
        details = {"user": str(user_id)}
        self._events.record(Event(self._clock.now(), kind, telegram_actor(presser), bot.id, Outcome.DONE, details))

    def _buttons(self, bot: Bot, action: CallbackAction, key: str, admin_id: int) -> Buttons:
        # Signed for this bot, and for the admin in their own chat with it (a private chat's id is its user's).
        data = self._tokens.sign(action, bot.id, admin_id, admin_id)
        return Buttons.of([[Button(Text(key), action, data)]])


def unreachable_members(bot: Bot, actor_id: int, links: InboxLinks, teams: BotTeams | None) -> tuple[bool, int]:
    """For the manager's `/inbox on`: (whether the bot cannot write to `actor_id` yet, how many other members of its
    team it cannot write to). The others are left out when the team cannot be learnt now."""
    try:
        team = teams.members(bot.id) if teams is not None else ()
    except DomainError:
        team = ()
    others = inbox_recipients(bot, team) - {actor_id}
    return not links.reachable(bot.id, actor_id), sum(not links.reachable(bot.id, member) for member in others)


def sender_text(sender: dict[str, Any]) -> Text:
    """The sender as the header names them: their name and @username are values (the user's own text, never read as
    markup)."""
    names = [sender.get("first_name"), sender.get("last_name")]
    name = " ".join(part for part in names if isinstance(part, str) and part) or "?"
    username = sender.get("username")
    if isinstance(username, str) and username:
        return Text("inbox_sender_with_username", {"name": name, "username": username})
    return Text("inbox_sender", {"name": name})
