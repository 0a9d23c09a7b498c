"""`make run` on a Telegram API it did not start (the real one in production): the manager bot's token comes from
the environment, goes to the registry only, and the manager answers. A separately started emulator stands in
for api.telegram.org here; embedded defaults (SQLite, in-process broker), as `make run` uses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, free_port, wait_for
from tgm.tools.telegram_emulator import EmulatorServer

WAIT = 60


@pytest.fixture
def outside_api() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


def test_a_manager_token_from_the_environment_runs_the_manager_bot_on_that_api(
    outside_api: EmulatorServer, tmp_path: Path
) -> None:
    api = EmulatorControl(outside_api.base_url)
    manager = api.create_bot("real_manager_bot", "Manager", can_manage_bots=True)
    port = free_port()
    config = StackConfig(
        run_dir=tmp_path / "run",
        telegram_api_base_url=outside_api.base_url,
        webhook_base_url=f"http://127.0.0.1:{port}",
        manager_bot_token=str(manager["token"]),
        gateway_port=port,
    )
    stack = Stack(config).start()
    try:
        assert stack.manager is None and stack.emulator_url == outside_api.base_url  # no emulator of its own
        assert all(process.name != "emulator" for process in stack.processes)
        wait_for(lambda: bool(api.webhook(int(manager["id"]))["url"]), WAIT, "the manager bot's webhook")
        assert api.webhook(int(manager["id"]))["url"].startswith(f"http://127.0.0.1:{port}/webhook/")

        admin = {"id": 88001, "first_name": "Op", "language_code": "en"}
        api.send_text(int(manager["id"]), admin, "/start")
        wait_for(lambda: bool(api.bot_messages(int(manager["id"]), admin["id"])), WAIT, "the manager's answer")
        assert "/addbot" in api.bot_messages(int(manager["id"]), admin["id"])[0]["text"]

        only_registry = [p.name for p in stack.processes if p.env.get("MANAGER_BOT_TOKEN") == manager["token"]]
        assert only_registry == ["botregistry"]
        for log in stack.logs_dir.glob("*.log"):
            assert str(manager["token"]) not in log.read_text(errors="replace"), log.name
    finally:
        stack.stop()
        api.close()
