"""ManagerBot: what the manager bot answers. Admins register and run their bots by chatting with it.

Never holds a token: token-shaped text arrives sealed by the gateway and goes, still sealed, to the registry.
Every reply is a catalogue text with its values, shown by the view (in the dispatcher: HTML, values escaped,
no link previews; docs/adr/007). Ids in buttons and arguments are claims only: the registry re-checks that the bot
is the actor's.
"""

from __future__ import annotations

from tgm.domain.manager_bot.routing import Routing
from tgm.domain.telegram_update import UpdateKind
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome


class ManagerBot(Routing):
    """The manager bot's update handler (the dispatcher's router calls it for the manager bot's updates)."""

    def __call__(self, envelope: UpdateEnvelope) -> HandleOutcome:
        view = envelope.view  # src/tgm/domain/telegram_update.py: the one reader of the update's shape
        if view.kind is UpdateKind.MANAGED_BOT:
            return self._managed_bot(envelope, view)
        if view.kind is UpdateKind.CALLBACK_QUERY:
            return self._callback(envelope, view)
        message = envelope.message
        if message is None:
            return HandleOutcome("manager:ignored")
        return self._message(envelope, message)
