"""What every part of the manager bot shares: its collaborators, its settings and the chat it answers."""

from __future__ import annotations

from dataclasses import dataclass

from tgm.domain.administration.ports import BotAdmin
from tgm.domain.broadcast import BroadcastScheduler, BroadcastStore
from tgm.domain.callback_tokens import CallbackTokens
from tgm.domain.clock import SystemClock
from tgm.domain.effects import EffectIds
from tgm.domain.events import EventRecorder
from tgm.domain.inbox import BotTeams, InboxLinks
from tgm.domain.manager_bot.ports import AdminSessions, ConversationStore, ManagerView, UsedButtons
from tgm.domain.ports import Clock
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.view import Chat


@dataclass(frozen=True)
class ManagerConfig:
    allowed_admin_ids: frozenset[int] = frozenset()
    session_ttl_seconds: int = 1800
    conversation_ttl_seconds: int = 600


@dataclass(frozen=True)
class Ctx:
    manager_id: str
    chat_id: int
    user_id: int
    lang: str | None
    effects: EffectIds  # the update's: every reply made while answering it takes the next id

    @property
    def chat(self) -> Chat:
        return Chat(self.manager_id, self.chat_id, self.lang, self.effects)


def ctx_for_update(envelope: UpdateEnvelope, chat_id: int, user_id: int, lang: str | None) -> Ctx:
    """The chat an update is answered in; its replies' effect ids derive from the update (a redelivery answers once)."""
    return Ctx(envelope.bot_id, chat_id, user_id, lang, EffectIds.for_update(envelope))


class ManagerDependencies:
    """The manager bot's collaborators; the constructor is ManagerBot's."""

    def __init__(
        self,
        admin: BotAdmin,
        view: ManagerView,
        tokens: CallbackTokens,
        conversations: ConversationStore,
        sessions: AdminSessions,
        config: ManagerConfig,
        used_buttons: UsedButtons | None = None,
        events: EventRecorder | None = None,
        clock: Clock | None = None,
        broadcasts: BroadcastStore | None = None,
        broadcast_scheduler: BroadcastScheduler | None = None,
        inbox_links: InboxLinks | None = None,
        bot_teams: BotTeams | None = None,
    ) -> None:
        self._inbox_links = inbox_links
        self._bot_teams = bot_teams
        self._admin = admin
        self._broadcasts = broadcasts
        self._broadcast_scheduler = broadcast_scheduler
        self._events = events
        self._clock = clock or SystemClock()
        self._view = view
        self._tokens = tokens
        self._conversations = conversations
        self._sessions = sessions
        self._config = config
        self._used_buttons = used_buttons

    def _allowed(self, user_id: int) -> bool:
        allowed = self._config.allowed_admin_ids
        return not allowed or user_id in allowed
