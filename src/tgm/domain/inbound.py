"""What the dispatcher checks before a handler sees an update: who sent it, which chat it belongs to,
which action it is, and whether that user may do it now (rate limits and cooldowns).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tgm.domain.bots import RateRule
from tgm.domain.effects import EffectIds
from tgm.domain.messages import render
from tgm.domain.outbound import AnswerCallbackQuery, OutboundCall, SendMessage
from tgm.domain.ports import Cooldowns, Outbox, RateLimiter
from tgm.domain.telegram_update import MalformedUpdate, UpdateKind
from tgm.domain.updates import UpdateEnvelope

NO_CHAT = "none"
_MAX_ACTION_CHARS = 32


def sender_of(envelope: UpdateEnvelope) -> dict[str, Any] | None:
    """The sender's user object (`from` of a message, an edit or a button press; `user` of managed_bot)."""
    return envelope.view.sender_object


def sender_id_of(envelope: UpdateEnvelope) -> int | None:
    return envelope.view.sender_id


def chat_key_of(envelope: UpdateEnvelope) -> str:
    """The ordering domain of an update: its chat, else its sender, else one shared key.

    A malformed update gets the shared key: it still needs a lane to be refused in (DrainChat dead-letters it)."""
    try:
        view = envelope.view
    except MalformedUpdate:
        return NO_CHAT
    if view.chat_id is not None:
        return str(view.chat_id)
    return f"u{view.sender_id}" if view.sender_id is not None else NO_CHAT


def action_of(envelope: UpdateEnvelope) -> str:
    """'cmd:/start' for commands, 'cb:<action>' for callbacks, 'msg' for other text, 'other' otherwise."""
    view = envelope.view
    if view.kind is UpdateKind.CALLBACK_QUERY:
        data = view.callback_data
        name = data.split(":", 1)[0] if data else "none"
        return f"cb:{name[:_MAX_ACTION_CHARS]}"
    text = envelope.text
    if text is None:
        return "other"
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0].partition("@")[0].lower()
        return f"cmd:{command[:_MAX_ACTION_CHARS]}"
    return "msg"


@dataclass(frozen=True)
class BotActions:
    """What a bot handles; the guard limits (and answers) only these, so chatter the bot ignores (plain
    group messages, commands for nobody) is neither counted nor answered with a warning."""

    commands: frozenset[str] = frozenset()
    callbacks: frozenset[str] | None = None  # callback actions known by name (None: none)
    other_commands: bool = False  # the bot answers commands it does not define (limited together, as cmd:*)
    private_text: bool = False  # the bot reads plain text in private chats ("msg")
    rate_limits: Mapping[str, RateRule] = field(default_factory=dict)  # the bot's own, over the policy's
    cooldowns: Mapping[str, float] = field(default_factory=dict)


ActionCatalog = Callable[[str], "BotActions | None"]  # bot_id → its actions (None: unknown, be conservative)


def limited_action(envelope: UpdateEnvelope, actions: BotActions | None, named: Callable[[str], bool]) -> str | None:
    """The key the guard limits `envelope` under, or None when the bot does not handle it.

    Unknown commands and callback actions share `cmd:*` / `cb:*` unless named in the configuration
    (`named`) or defined by the bot: a user cannot get a fresh budget by inventing command names.
    """
    action = action_of(envelope)
    if action.startswith("cb:"):  # every callback is answered (answerCallbackQuery), so always limited
        known = actions is not None and actions.callbacks is not None and action[3:] in actions.callbacks
        return action if known or named(action) else "cb:*"
    if action.startswith("cmd:"):
        if actions is None:
            return action if named(action) else "cmd:*"
        defined = action[4:] in actions.commands
        if not defined and not actions.other_commands:
            return None  # the bot ignores it: nothing to limit, nothing to say
        return action if defined or named(action) else "cmd:*"
    view = envelope.view
    # A bot in inbox mode reads every private message, stickers and photos too: all are limited as "msg", or a
    # user could flood the admins' chats with messages that have no text.
    private_message = view.is_private and (
        action == "msg" or (action == "other" and view.kind is UpdateKind.MESSAGE and actions is not None)
    )
    if private_message and (actions is None or actions.private_text):
        return "msg"
    return None


@dataclass(frozen=True)
class InboundPolicy:
    """Rate limits and cooldowns per action; parsed from RATE_LIMITS_JSON / COOLDOWNS_JSON."""

    default: RateRule = RateRule(limit=30, window_seconds=60.0)  # noqa: RUF009 - frozen, shared safely
    rules: Mapping[str, RateRule] = field(default_factory=dict)
    cooldowns: Mapping[str, float] = field(default_factory=dict)

    def rule_for(self, action: str, bot: BotActions | None = None) -> RateRule:
        """The bot's rule for the action, else the policy's, else the bot's default, else the policy's."""
        own = bot.rate_limits if bot is not None else {}
        return own.get(action) or self.rules.get(action) or own.get("default") or self.default

    def cooldown_for(self, action: str, bot: BotActions | None = None) -> float:
        own = bot.cooldowns if bot is not None else {}
        if action in own:
            return own[action]
        if action in self.cooldowns:
            return self.cooldowns[action]
        return own.get("default", 0.0)  # as rule_for: the bot's own default after the service's named rules

    def names(self, action: str) -> bool:
        return action in self.rules or action in self.cooldowns

    @classmethod
    def parse(cls, rate_limits_json: str, cooldowns_json: str = "", default: RateRule | None = None) -> InboundPolicy:
        """`{"cmd:/start": {"limit": 30, "window": 60}, "default": {...}}`; `{"cb:buy": 3}` for cooldowns.

        Raises ValueError on malformed configuration (better to refuse to start than to run unlimited).
        """
        rules: dict[str, RateRule] = {}
        base = default or RateRule(limit=30, window_seconds=60.0)
        raw = json.loads(rate_limits_json) if rate_limits_json.strip() else {}
        if not isinstance(raw, dict):
            raise ValueError("RATE_LIMITS_JSON must be an object")
        for action, spec in raw.items():
            if not isinstance(spec, dict):
                raise ValueError(f"RATE_LIMITS_JSON[{action!r}] must be an object")
            limit, window = spec.get("limit"), spec.get("window")
            if not isinstance(limit, int) or limit < 1 or not isinstance(window, int | float) or window <= 0:
                raise ValueError(f"RATE_LIMITS_JSON[{action!r}] needs limit ≥ 1 and window > 0")
            rule = RateRule(limit=limit, window_seconds=float(window))
            if action == "default":
                base = rule
            else:
                rules[str(action)] = rule
        cooldowns: dict[str, float] = {}
        raw_cd = json.loads(cooldowns_json) if cooldowns_json.strip() else {}
        if not isinstance(raw_cd, dict):
            raise ValueError("COOLDOWNS_JSON must be an object")
        for action, seconds in raw_cd.items():
            if not isinstance(seconds, int | float) or seconds < 0:
                raise ValueError(f"COOLDOWNS_JSON[{action!r}] must be seconds ≥ 0")
            cooldowns[str(action)] = float(seconds)
        return cls(default=base, rules=rules, cooldowns=cooldowns)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


class InboundGuard:
    """Rate limit then cooldown, per bot + user + action; tells the user (once per window) when refused."""

    def __init__(
        self,
        limiter: RateLimiter,
        cooldowns: Cooldowns,
        outbox: Outbox,
        policy: InboundPolicy,
        actions: ActionCatalog | None = None,
    ) -> None:
        self._limiter = limiter
        self._cooldowns = cooldowns
        self._outbox = outbox
        self._policy = policy
        self._actions = actions

    def check(self, envelope: UpdateEnvelope) -> Verdict:
        user_id = sender_id_of(envelope)
        if user_id is None:
            return Verdict(True)
        catalog = self._actions(envelope.bot_id) if self._actions is not None else None
        named = self._policy.names
        if catalog is not None and (catalog.rate_limits or catalog.cooldowns):
            # An action the bot set a limit for is limited under its own name (its own budget).
            def named(action: str) -> bool:
                return self._policy.names(action) or action in catalog.rate_limits or action in catalog.cooldowns

        action = limited_action(envelope, catalog, named)
        if action is None:
            return Verdict(True)
        key = f"{envelope.bot_id}:{user_id}:{action}"
        rule = self._policy.rule_for(action, catalog)
        decision = self._limiter.hit(key, rule.limit, rule.window_seconds)
        if not decision.allowed:
            if decision.notify:
                seconds = max(1, math.ceil(decision.retry_after_seconds))
                self._tell(envelope, render("rate_limited", envelope.view.language, seconds=seconds))
            else:
                self._stop_spinner(envelope)  # a refused button press is always answered, silently
            return Verdict(False, "rate_limited")
        cooldown = self._policy.cooldown_for(action, catalog)
        if cooldown > 0 and not self._cooldowns.start(key, cooldown):
            self._tell(envelope, render("cooldown", envelope.view.language))
            return Verdict(False, "cooldown")
        return Verdict(True)

    def _stop_spinner(self, envelope: UpdateEnvelope) -> None:
        callback_id = envelope.view.callback_id
        if callback_id is not None:
            self._send(envelope, AnswerCallbackQuery(callback_id))

    def _tell(self, envelope: UpdateEnvelope, text: str) -> None:
        callback_id = envelope.view.callback_id
        if callback_id is not None:
            self._send(envelope, AnswerCallbackQuery(callback_id, text))
            return
        if envelope.chat_id is not None:
            self._send(envelope, SendMessage(envelope.chat_id, text))

    def _send(self, envelope: UpdateEnvelope, notice: OutboundCall) -> None:
        """The one notice of a refusal: its id derives from the update, apart from its handler's answers (a refused
        update is not handled; one checked again after a crash tells the user once)."""
        effect_id = EffectIds.for_update(envelope, "guard").next()
        self._outbox.send(envelope.bot_id, notice, effect_id=effect_id)
