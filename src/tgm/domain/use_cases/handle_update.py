"""HandleUpdate: what a managed bot answers to one update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgm.domain.bots import Bot
from tgm.domain.clock import SystemClock
from tgm.domain.effects import EffectIds
from tgm.domain.messages import render
from tgm.domain.outbound import AnswerCallbackQuery, SendMessage
from tgm.domain.ports import BotDirectory, Clock, Cooldowns, Outbox
from tgm.domain.telegram_update import UpdateKind
from tgm.domain.updates import UpdateEnvelope

if TYPE_CHECKING:
    from tgm.domain.captcha import CaptchaGuard
    from tgm.domain.inbox import FeedbackInbox
    from tgm.domain.use_cases.run_api_call import StartApiCall


@dataclass(frozen=True)
class HandleOutcome:
    """What happened, for logs and tests."""

    action: str
    replied: bool = False


# Inbox outcomes that answered the update's sender (a button press's spinner, the "delivered" note…).
_INBOX_REPLIED = frozenset(
    {
        "inbox:delivered",
        "inbox:reply_unknown",
        "inbox:blocked",
        "inbox:unblocked",
        "inbox:button_refused",
        "inbox:button_failed",
    }
)

# While a bot is in maintenance, each user gets its text at most once per this many seconds.
MAINTENANCE_NOTICE_SECONDS = 60.0


class HandleUpdate:
    def __init__(
        self,
        bots: BotDirectory,
        outbox: Outbox,
        api_calls: StartApiCall | None = None,
        cooldowns: Cooldowns | None = None,
        maintenance_notice_seconds: float = MAINTENANCE_NOTICE_SECONDS,
        clock: Clock | None = None,
        captcha: CaptchaGuard | None = None,
        inbox: FeedbackInbox | None = None,
    ) -> None:
        self._inbox = inbox
        self._clock = clock or SystemClock()
        self._captcha = captcha
        self._bots = bots
        self._outbox = outbox
        self._api_calls = api_calls
        self._cooldowns = cooldowns
        self._maintenance_notice_seconds = maintenance_notice_seconds

    def __call__(self, envelope: UpdateEnvelope) -> HandleOutcome:
        # Every answer's effect id derives from the update: a redelivered update answers once (domain/effects.py).
        effects = EffectIds.for_update(envelope)
        bot = self._bots.get_bot(envelope.bot_id)
        if bot is None or not bot.serves_updates:
            return HandleOutcome("ignored:bot_inactive")
        view = envelope.view
        chat_id = view.chat_id
        sender_id = view.sender_id  # of a message, a button press or an edit
        if (
            bot.settings.blocked_users
            and sender_id is not None
            and bot.settings.blocks(sender_id, self._clock.now().timestamp())
        ):
            return HandleOutcome("ignored:blocked")  # before any answer, the maintenance text included
        if self._captcha is not None:
            stopped = self._captcha.intercept(bot, envelope, sender_id, effects)
            if stopped is not None:  # a new user while the CAPTCHA applies: challenged, answered or dropped
                return HandleOutcome(stopped, replied=stopped in ("captcha:challenged", "captcha:wrong"))
        if bot.settings.maintenance_text:
            return self._maintenance_notice(bot, chat_id, envelope, sender_id, effects)
        text = envelope.text
        command = _command_of(text, bot.username) if text is not None else None
        if self._inbox is not None:
            taken = self._inbox_takes(self._inbox, bot, envelope, command, effects)
            if taken is not None:
                return HandleOutcome(taken, replied=taken in _INBOX_REPLIED)
        if chat_id is None or text is None:
            return HandleOutcome("ignored:no_text")
        if command == "/start":
            reply = bot.settings.welcome_text or render(
                "welcome", envelope.view.language or bot.settings.language, username=bot.username
            )
        elif command is not None and command in bot.settings.custom_commands:
            reply = bot.settings.custom_commands[command]
        elif command is not None and command in bot.settings.api_commands and self._api_calls is not None:
            user_id = sender_id
            if user_id is None:
                return HandleOutcome("ignored:no_sender")
            argument = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
            action = self._api_calls(
                bot,
                command,
                bot.settings.api_commands[command],
                chat_id,
                user_id,
                argument,
                envelope.view.language,
                effects=effects,
            )
            return HandleOutcome(action, replied=action != "api:scheduled")
        else:
            return HandleOutcome("ignored:unknown_command")
        self._outbox.send(bot.id, SendMessage(chat_id, reply), effect_id=effects.next())
        return HandleOutcome(f"command:{command}", replied=True)

    def _inbox_takes(
        self, inbox: FeedbackInbox, bot: Bot, envelope: UpdateEnvelope, command: str | None, effects: EffectIds
    ) -> str | None:
        """The feedback inbox's outcome when it took the update (a message for the admins, an admin's reply, an
        inbox button), else None. Commands the bot answers stay the bot's."""
        if envelope.view.kind is UpdateKind.CALLBACK_QUERY:
            return inbox.handle_callback(bot, envelope, effects)
        settings = bot.settings
        answered = command is not None and (
            command == "/start"
            or command in settings.custom_commands
            or (command in settings.api_commands and self._api_calls is not None)
        )
        return inbox.handle_message(bot, envelope, answered, effects)

    def _maintenance_notice(
        self, bot: Bot, chat_id: int | None, envelope: UpdateEnvelope, sender_id: int | None, effects: EffectIds
    ) -> HandleOutcome:
        """The admin's text instead of the usual answers: to a button press (its spinner stops with the text), to
        anything in a private chat, and in groups only to a command addressed to this bot (group chatter is not
        answered, as outside maintenance); once per user per window. Everything else is dropped."""
        text = bot.settings.maintenance_text
        view = envelope.view
        if view.callback_id is not None:
            # Always answered (Telegram shows a spinner until then); the text is cut to Telegram's 200 characters.
            answer = AnswerCallbackQuery(view.callback_id, text[:200])
            self._outbox.send(bot.id, answer, effect_id=effects.next())
            return HandleOutcome("maintenance:callback", replied=True)
        private = view.is_message and view.is_private
        words = envelope.text
        if chat_id is None or not (private or (words is not None and _command_of(words, bot.username))):
            return HandleOutcome("maintenance:ignored")
        who = sender_id if sender_id is not None else chat_id
        key = f"maintenance:{bot.id}:{who}"
        if self._cooldowns is not None and not self._cooldowns.start(key, self._maintenance_notice_seconds):
            return HandleOutcome("maintenance:quiet")
        self._outbox.send(bot.id, SendMessage(chat_id, text), effect_id=effects.next())
        return HandleOutcome("maintenance:notice", replied=True)


def _command_of(text: str, bot_username: str) -> str | None:
    """'/start@MyBot payload' → '/start' (None when addressed to another bot or not a command)."""
    if not text.startswith("/"):
        return None
    head = text.split(maxsplit=1)[0]
    name, _, addressee = head.partition("@")
    if addressee and addressee.lower() != bot_username.lower():
        return None
    return name.lower()
