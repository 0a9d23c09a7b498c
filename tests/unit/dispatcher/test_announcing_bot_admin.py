"""AnnouncingBotAdmin offers exactly the BotAdmin port, each method declared (no attribute forwarding), passes every
call through, and announces only the calls that change what a bot cache holds."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from tgm.domain.administration.ports import BotAdmin
from tgm.services.dispatcher.adapters.bot_changes import AnnouncingBotAdmin

PORT_METHODS = sorted(
    name for name, member in vars(BotAdmin).items() if inspect.isfunction(member) and not name.startswith("_")
)
CHANGES = {"set_enabled", "rotate_secret", "delete", "update_settings"}
TEAM_CHANGES = {"redeem_invite", "revoke_admin", "leave"}  # the inbox's cached team of the bot is forgotten too
REGISTRATIONS = {"register_sealed", "register_managed"}


class Bot:
    id = "bot-7"


class Registration:
    bot = Bot()


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            if name == "revoke_admin":
                return Bot(), object()
            return Registration() if name in REGISTRATIONS else Bot()

        return call


def test_every_port_method_is_declared_on_the_adapter_and_nothing_is_forwarded() -> None:
    declared = set(vars(AnnouncingBotAdmin))
    assert [name for name in PORT_METHODS if name not in declared] == []
    assert "__getattr__" not in declared
    with pytest.raises(AttributeError):
        AnnouncingBotAdmin(Recording(), lambda bot_id: None).record_interactions  # not on the port


@pytest.mark.parametrize("name", PORT_METHODS)
def test_each_call_goes_through_and_only_changes_are_announced(name: str) -> None:
    inner, announced = Recording(), []
    admin = AnnouncingBotAdmin(inner, announced.append)
    arity = len(inspect.signature(getattr(BotAdmin, name)).parameters) - 1
    args = tuple(f"arg{i}" for i in range(arity))
    getattr(admin, name)(*args)
    assert inner.calls == [(name, args)]
    assert announced == (["bot-7"] if name in CHANGES | TEAM_CHANGES | REGISTRATIONS else [])
