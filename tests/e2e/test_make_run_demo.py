"""`make run`'s demo (src/tgm/tools/devstack/__main__.py `_demo`) on embedded defaults with the emulator, as the README
promises it: a user's /start, the manager bot, the shop bot's feedback inbox and a broadcast, each checked at the
emulator (what Telegram would have delivered), not only in the printed transcript."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgm.tools.devstack.__main__ import _demo
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, free_port

pytestmark = pytest.mark.e2e


def test_the_demo_plays_the_inbox_and_a_broadcast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path / "run", gateway_port=free_port())).start()
    try:
        _demo(stack)
        printed = capsys.readouterr().out
        emulator = EmulatorControl(stack.emulator_url)
        shop = next(bot for bot in emulator.bots() if str(bot["username"]).startswith("shop_"))
        customer = [m["plain_text"] for m in emulator.bot_messages(int(shop["id"]), 5005)]
        emulator.close()
    finally:
        stack.stop()
    # Inbox: the admin's reply reached the customer as the bot, once.
    assert customer.count("Desculpe! Ele sai hoje.") == 1
    assert "[admin chat] bot: 📨 Mensagem de Carla · id 5005" in printed
    # Broadcast: every active subscriber (the admin, the inbox's customer and two more) got it once.
    assert customer.count("Sale today: 20% off everything") == 1
    assert "broadcast is done · ✅ Sent: 4 · ❌ Failed: 0" in printed
    assert printed.count("got: Sale today: 20% off everything") == 2
