"""aiogram 3's multibot webhook server (TokenBasedRequestHandler on aiohttp), a dispatcher with no handlers.

Runs in the bench's own venv (bench/.venv-peers, from bench/requirements-peers.txt), never tgm's. aiogram routes by
the bot token in the URL (that is how its multibot example works); the secret header is checked per bot, in
constant time, because the stock multibot handler does not check it at all.
Usage: python bench/peers/aiogram_multibot.py PORT BOTS_JSON   (BOTS_JSON: [{"token", "secret"}, ...])
"""

from __future__ import annotations

import json
import secrets
import sys

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import TokenBasedRequestHandler, setup_application
from aiohttp import web


class CheckedTokenHandler(TokenBasedRequestHandler):
    def __init__(self, dispatcher: Dispatcher, secrets_by_token: dict[str, str]) -> None:
        super().__init__(dispatcher=dispatcher)
        self._secrets = secrets_by_token

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        expected = self._secrets.get(bot.token)
        return expected is not None and secrets.compare_digest(telegram_secret_token, expected)


def main() -> None:
    port = int(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as handle:
        bots = json.load(handle)
    dispatcher = Dispatcher()
    app = web.Application()
    handler = CheckedTokenHandler(dispatcher, {bot["token"]: bot["secret"] for bot in bots})
    handler.register(app, path="/webhook/bot/{bot_token}")
    setup_application(app, dispatcher)
    try:
        import uvloop

        uvloop.install()  # the peer at its best: a stricter comparison for tgm
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
