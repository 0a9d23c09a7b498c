"""CAPTCHA for a managed bot's new users (issue 12): while a bot is under attack (its new users per minute crossed
a threshold) or its admin turned it on, a user the bot does not know yet must tap the right button before the bot
serves them; known users are never asked.

- Known users: everyone the bot served while the CAPTCHA was off, and everyone who passed it (CaptchaStore keeps
  them per bot). The store counts the new ones and says when a bot is under attack, without a round trip per update.
- A challenge: "tap the 🍎" among OPTIONS emoji buttons, each button signed for the user and the chat
  (CallbackTokens, action CAPTCHA); the answer stays on the server. A wrong tap draws a new challenge in the same
  message; after `max_attempts` wrong taps the user is locked out for `lock_seconds` and their updates are dropped.
- At most one challenge message per user while one is open: an attacker's flood costs one message each, not one
  per update. Challenges go to private chats only; an unknown user's group messages are dropped meanwhile.
- Each button carries the challenge's nonce with the option: a button of an earlier challenge never passes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tgm.domain.bots import Bot, CaptchaMode
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.effects import EffectIds
from tgm.domain.telegram_update import UpdateKind
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.view import Button, Buttons, Chat, ChatView, Text

OPTIONS = 6
# Distinct at a glance on every platform's emoji font.
EMOJI = ("🍎", "🚗", "🐶", "⚽", "🎸", "🌵", "🍕", "🚀", "🐟", "🌙", "🔑", "🎈")


NONCE_BITS = 24


@dataclass(frozen=True)
class Challenge:
    options: tuple[str, ...]
    answer: int  # index into options
    nonce: int  # this challenge's: a button of an earlier one never matches (it carries that one's nonce)

    @property
    def target(self) -> str:
        return self.options[self.answer]

    def code(self, index: int) -> int:
        """What the button of option `index` carries (signed) and what the store keeps for the right one."""
        return self.nonce << 3 | index

    @property
    def answer_code(self) -> int:
        return self.code(self.answer)


def new_challenge(rng: random.Random) -> Challenge:
    options = tuple(rng.sample(EMOJI, OPTIONS))
    return Challenge(options, rng.randrange(OPTIONS), rng.getrandbits(NONCE_BITS))


@dataclass(frozen=True)
class Gate:
    """Where one user stands with one bot's CAPTCHA (one store read)."""

    known: bool
    open_answer: int | None = None  # the open challenge's answer; None when none is open
    locked_for_seconds: float = 0.0


class AnswerOutcome(StrEnum):
    PASSED = "passed"
    WRONG = "wrong"
    LOCKED = "locked"
    NONE_OPEN = "none_open"


class CaptchaStore(Protocol):
    def served(self, bot_id: str, user_id: int) -> None:
        """Notes a user the bot served (it knows them from now on); counted towards the new-user rate. Cheap: the
        store may batch these."""
        ...

    def under_attack(self, bot_id: str) -> bool:
        """True while the bot's new-user rate crossed the threshold recently (no round trip per call)."""
        ...

    def gate(self, bot_id: str, user_id: int) -> Gate: ...

    def open(self, bot_id: str, user_id: int, answer: int, ttl_seconds: float) -> bool:
        """Opens a challenge unless one is open (then False: the user already has one)."""
        ...

    def answer(
        self, bot_id: str, user_id: int, choice: int, new_answer: int, max_attempts: int, lock_seconds: float
    ) -> tuple[AnswerOutcome, int]:
        """Atomically: right → the user is known (PASSED); wrong → attempts + 1 and the challenge's answer becomes
        `new_answer` (WRONG, attempts left), or the user is locked out after `max_attempts` (LOCKED, 0)."""
        ...


@dataclass(frozen=True)
class CaptchaPolicy:
    max_attempts: int = 3
    lock_seconds: float = 600.0
    challenge_seconds: float = 300.0  # an open challenge (and its buttons) lives this long


class CaptchaGuard:
    """Stops a new user's update at the CAPTCHA when it applies; lets everything else through (None)."""

    def __init__(
        self,
        store: CaptchaStore,
        tokens: CallbackTokens,
        view: ChatView,
        policy: CaptchaPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._view = view
        self._policy = policy or CaptchaPolicy()
        self._rng = rng or random.SystemRandom()

    def applies(self, bot: Bot) -> bool:
        mode = bot.settings.captcha_mode
        return mode == CaptchaMode.ON or (mode == CaptchaMode.AUTO and self._store.under_attack(bot.id))

    def intercept(self, bot: Bot, envelope: UpdateEnvelope, user_id: int | None, effects: EffectIds) -> str | None:
        """None to let the update through; else the outcome's action (the update was answered or dropped here).
        `effects`: the update's, for what it answers."""
        if user_id is None:
            return None
        chat_id = envelope.chat_id
        private = chat_id == user_id  # Telegram: a private chat's id is the user's
        if not self.applies(bot):
            if private:  # group chatter neither makes users known nor counts towards an attack
                self._store.served(bot.id, user_id)
            return None
        gate = self._store.gate(bot.id, user_id)
        if gate.known:
            return None
        if not private:
            return "captcha:group"  # dropped: challenges go to private chats only, never posted in a group
        view = envelope.view
        # A private chat's id is its user's (checked above).
        chat = Chat(bot.id, user_id, _language(envelope, bot), effects)
        if gate.locked_for_seconds > 0:
            if view.callback_id is not None:
                self._view.answer_button(chat, view.callback_id)  # stop the spinner, say nothing
            return "captcha:locked"
        if view.kind is UpdateKind.CALLBACK_QUERY and chat_id is not None:
            choice = self._choice_of(view.callback_data, user_id, chat_id)
            if choice is not None:
                return self._answer(bot, envelope, user_id, chat, choice)
        if chat_id is None:
            return "captcha:no_chat"
        challenge = new_challenge(self._rng)
        if not self._store.open(bot.id, user_id, challenge.answer_code, self._policy.challenge_seconds):
            if view.callback_id is not None:
                self._view.answer_button(chat, view.callback_id)
            return "captcha:pending"  # one challenge message per user while it is open
        text = Text("captcha_challenge", {"emoji": challenge.target})
        self._view.say(chat, text, self._options(challenge, user_id, chat_id))
        return "captcha:challenged"

    def _choice_of(self, data: str | None, user_id: int, chat_id: int) -> int | None:
        claim = self._tokens.verify(data, user_id, chat_id) if data is not None else None
        if claim is None or claim.action is not CallbackAction.CAPTCHA:
            return None
        return claim.page  # a challenge's code (nonce and option): compared with the open one's by the store

    def _answer(self, bot: Bot, envelope: UpdateEnvelope, user_id: int, chat: Chat, choice: int) -> str:
        retry = new_challenge(self._rng)
        outcome, left = self._store.answer(
            bot.id, user_id, choice, retry.answer_code, self._policy.max_attempts, self._policy.lock_seconds
        )
        callback_id = envelope.view.callback_id
        message_id = envelope.view.message_id  # the challenge message the button is under
        if outcome is AnswerOutcome.PASSED:
            if callback_id is not None:
                self._view.answer_button(chat, callback_id, Text("captcha_pass_notice"))
            if message_id is not None:
                self._view.edit(chat, message_id, Text("captcha_passed"))
            return "captcha:passed"
        if outcome is AnswerOutcome.WRONG:
            if callback_id is not None:
                self._view.answer_button(chat, callback_id, Text("captcha_wrong", {"left": left}))
            text = Text("captcha_challenge", {"emoji": retry.target})
            options = self._options(retry, user_id, chat.chat_id)
            if message_id is not None:  # the same message, a new challenge: the old buttons are gone
                self._view.edit(chat, message_id, text, options)
            else:
                self._view.say(chat, text, options)
            return "captcha:wrong"
        if outcome is AnswerOutcome.LOCKED:
            locked = Text("captcha_locked", {"minutes": max(1, math.ceil(self._policy.lock_seconds / 60))})
            if callback_id is not None:
                self._view.answer_button(chat, callback_id, locked)
            if message_id is not None:
                self._view.edit(chat, message_id, locked)
            return "captcha:locked"
        if callback_id is not None:  # an expired challenge's button: answered, a new one on the next message
            self._view.answer_button(chat, callback_id, Text("captcha_expired"))
        return "captcha:expired"

    def _options(self, challenge: Challenge, user_id: int, chat_id: int) -> Buttons:
        """The challenge's emoji, each signed for the user and the chat with its code, in two rows."""
        action = CallbackAction.CAPTCHA
        buttons = [
            Button(emoji, action, self._tokens.sign(action, None, user_id, chat_id, challenge.code(i)))
            for i, emoji in enumerate(challenge.options)
        ]
        return Buttons.of([buttons[: OPTIONS // 2], buttons[OPTIONS // 2 :]])


def _language(envelope: UpdateEnvelope, bot: Bot) -> str:
    return envelope.view.language or bot.settings.language  # a button press's sender too, not only a message's
