"""ManagerBot: what the manager bot answers. Admins register and run their bots by chatting with it.

Never holds a token: token-shaped text arrives sealed by the gateway and goes, still sealed, to the registry.
Every reply comes from the catalogue (HTML parse mode, user text escaped, link previews off). Ids in
buttons and arguments are claims only: the registry re-checks that the bot is the actor's.
"""

from __future__ import annotations

from tgm.domain.manager_bot.routing import Routing
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome


class ManagerBot(Routing):
    """The manager bot's update handler (the dispatcher's router calls it for the manager bot's updates)."""

    def __call__(self, envelope: UpdateEnvelope) -> HandleOutcome:
        update = envelope.update
        if isinstance(update.get("managed_bot"), dict):
            return self._managed_bot(envelope, update["managed_bot"])
        if isinstance(update.get("callback_query"), dict):
            return self._callback(envelope, update["callback_query"])
        message = envelope.message
        if message is None:
            return HandleOutcome("manager:ignored")
        return self._message(envelope, message)
