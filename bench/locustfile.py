"""The seed's 5,000-user scenario for machines bigger than the 2-core one `make bench` targets.

Users talk to bots through the Telegram emulator's control API: mostly /start, sometimes a custom command or
plain text, with human think times. Replies are counted by the emulator (its /_emulator/metrics and timeline).
Locust is NOT a dependency of tgm; install it where you run it:

    pip install locust==2.47.0
    make run   # or your own stack; note the emulator URL and register some bots (README)
    BENCH_BOT_IDS=111,222,333 locust -f bench/locustfile.py --host http://127.0.0.1:8081 \
        --users 5000 --spawn-rate 100 --run-time 10m --headless

BENCH_BOT_IDS: the emulator's Telegram ids of registered bots (comma separated). BENCH_COMMANDS: custom commands
the bots know (default "/help,/price").
"""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, task

BOT_IDS = [int(x) for x in os.environ.get("BENCH_BOT_IDS", "").split(",") if x.strip()]
COMMANDS = [c for c in os.environ.get("BENCH_COMMANDS", "/help,/price").split(",") if c]
_user_ids = itertools.count(600_000_000)


class TelegramUser(HttpUser):
    """One person: picks a bot, says /start, then now and then a command or a line of text."""

    wait_time = between(3, 20)  # seconds a person takes between messages

    def on_start(self) -> None:
        if not BOT_IDS:
            raise RuntimeError("set BENCH_BOT_IDS to the emulator ids of registered bots")
        self.user = {"id": next(_user_ids), "first_name": "Ana", "language_code": random.choice(["pt-br", "en"])}
        self.bot_id = random.choice(BOT_IDS)
        self._send("/start")

    def _send(self, text: str) -> None:
        message = {"bot_id": self.bot_id, "user": self.user, "text": text}
        self.client.post("/_emulator/load", json={"messages": [message]}, name="/_emulator/load")

    @task(5)
    def start(self) -> None:
        self._send("/start")

    @task(3)
    def custom_command(self) -> None:
        self._send(random.choice(COMMANDS))

    @task(1)
    def chatter(self) -> None:
        self._send(random.choice(["oi", "obrigado!", "quanto custa?"]))
