"""`make run`: the whole stack on embedded defaults (SQLite, in-process broker) with the Telegram emulator.

With MANAGER_BOT_TOKEN and a public https WEBHOOK_BASE_URL it skips the emulator and runs the manager bot on the
real Telegram API (TELEGRAM_API_BASE_URL picks another API); with REDIS_URL and DB_URL set it runs gateway and
dispatchers as separate processes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.preflight import (
    PreflightError,
    check_port_free,
    check_python,
    check_run_dir_format,
    hold_run_dir,
)
from tgm.tools.devstack.stack import REPO_ROOT, Stack, StackConfig, new_encryption_key, wait_for


def _persistent_key(run_dir: Path) -> str:
    """The demo's vault key, kept 0600 in .run/ so the SQLite data stays readable across runs."""
    path = run_dir / "vault.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(new_encryption_key())
    return path.read_text().strip()


REAL_TELEGRAM_API = "https://api.telegram.org"


def telegram_settings(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """(API base URL, webhook base URL, manager bot token): all empty for the emulator. A manager token alone
    means the real Telegram API, which delivers webhooks only to a public HTTPS address."""
    token = environ.get("MANAGER_BOT_TOKEN", "").strip()
    api = environ.get("TELEGRAM_API_BASE_URL", "").strip().rstrip("/")
    webhook = environ.get("WEBHOOK_BASE_URL", "").strip().rstrip("/")
    if token and not api:
        api = REAL_TELEGRAM_API
    if not api:
        return "", "", ""
    if not webhook:
        raise ValueError("WEBHOOK_BASE_URL is required with a real Telegram API: the public address of the gateway")
    if api == REAL_TELEGRAM_API and not webhook.startswith("https://"):
        raise ValueError("WEBHOOK_BASE_URL must start with https:// (Telegram delivers webhooks over HTTPS only)")
    return api, webhook, token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", default=str(REPO_ROOT / ".run"))
    parser.add_argument("--no-demo", action="store_true", help="skip registering a demo bot")
    args = parser.parse_args(argv)
    try:
        api_base_url, webhook_base_url, manager_token = telegram_settings(os.environ)
    except ValueError as error:
        parser.error(str(error))
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    gateway_port = os.environ.get("GATEWAY_PORT") or "0"
    if not gateway_port.isdigit() or int(gateway_port) > 65_535:
        parser.error(f"GATEWAY_PORT must be a port number (0-65535), not {gateway_port!r}")
    try:
        check_python()
        lock = hold_run_dir(run_dir)  # noqa: F841 - held until the process exits
        check_run_dir_format(run_dir)
        check_port_free(int(gateway_port))
    except PreflightError as error:
        parser.exit(2, f"make run: {error}\n")
    config = StackConfig(
        run_dir=run_dir,
        redis_url=os.environ.get("REDIS_URL", ""),
        db_url=os.environ.get("DB_URL", ""),
        encryption_key=os.environ.get("ENCRYPTION_KEY") or _persistent_key(run_dir),
        telegram_api_base_url=api_base_url,
        webhook_base_url=webhook_base_url,
        manager_bot_token=manager_token,
        gateway_port=int(gateway_port),
    )
    stack = Stack(config)
    print("starting tgm (logs in", stack.logs_dir, ")...", flush=True)
    try:
        stack.start()
    except Exception as error:
        parser.exit(1, f"make run: tgm did not start: {error}\n  what each process said: {stack.logs_dir}\n")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not config.telegram_api_base_url:
            print(f"  chat page {stack.emulator_url}/  (open it in a browser: play Telegram users, talk to the bots)")
        print(f"  gateway   {stack.gateway_url}  (webhooks at /webhook/<public_id>)")
        print(f"  registry  {stack.registry_addr}  (gRPC)")
        print(f"  vault     {stack.vault_addr}  (gRPC)")
        print(f"  telegram  {stack.emulator_url}" + ("" if config.telegram_api_base_url else "  (emulator)"))
        if not config.telegram_api_base_url and not args.no_demo:
            _demo(stack)
        elif config.telegram_api_base_url:
            print(
                f"\nTelegram delivers webhooks to {config.webhook_base_url}/webhook/<public_id>: forward that address"
            )
            print(f"to {stack.gateway_url} (a reverse proxy with a certificate, or a tunnel you run).")
            if config.manager_bot_token:
                print("The registry set the manager bot's webhook; send it /start in Telegram.")
        print("\nRunning. Ctrl-C stops everything.", flush=True)
        while not stopping:
            stack._check_alive()
            time.sleep(0.5)
    finally:
        print("stopping...", flush=True)
        stack.stop()


def _demo(stack: Stack) -> None:
    emulator = EmulatorControl(stack.emulator_url)
    bot = emulator.create_bot(f"demo_{int(time.time())}_bot", "Demo bot")
    with stack.channel(stack.registry_addr) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        registry.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=1001, token=bot["token"]), timeout=15)
    user_id = 2002
    user = {"id": user_id, "first_name": "Ana", "language_code": "pt-br"}
    emulator.send_text(bot["id"], user, "/start")
    wait_for(lambda: bool(emulator.bot_messages(bot["id"], user_id)), 30, "the demo bot's reply")
    reply = emulator.bot_messages(bot["id"], user_id)[-1]["text"]
    base = f"{stack.emulator_url}/_emulator"
    print(f"\nDemo: registered @{bot['username']} (emulator bot id {bot['id']}); user 2002 sent /start and got:")
    print(f"  {reply}")
    print(f"\nNext, play a user yourself: open {stack.emulator_url}/ in a browser, or with curl:")
    print(
        f"  curl -s -X POST {base}/bots/{bot['id']}/messages -H 'content-type: application/json' \\\n"
        "       -d '"
        + json.dumps({"user": {"id": 3003, "first_name": "Bob", "language_code": "en"}, "text": "/start"})
        + "'"
    )
    print(f"  curl -s {base}/bots/{bot['id']}/chats/3003/messages")
    if stack.manager is not None:
        _manager_demo(stack, emulator)
    emulator.close()


def _manager_demo(stack: Stack, emulator: EmulatorControl) -> None:
    """An admin talks to the manager bot: /start, then /addbot with a fresh bot's token (deleted at once)."""
    manager_id = int(str(stack.manager["id"])) if stack.manager else 0
    admin = {"id": 4004, "first_name": "Admin", "language_code": "en"}
    fresh = emulator.create_bot(f"shop_{int(time.time())}_bot", "Shop bot")
    for text, replies in (("/start", 1), (f"/addbot {fresh['token']}", 3), ("/mybots", 4)):
        emulator.send_text(manager_id, admin, text)

        def answered(n: int = replies) -> bool:
            return len(emulator.bot_messages(manager_id, 4004)) >= n

        wait_for(answered, 30, "the manager bot")
    print(
        f"\nManager bot @{stack.manager['username'] if stack.manager else ''} (emulator id {manager_id}); admin 4004:"
    )
    for message in emulator.chat(manager_id, 4004):
        who = "bot  " if message["from_bot"] else "admin"
        text = "<deleted: it held a token>" if message["deleted"] else message["plain_text"].splitlines()[0]
        print(f"  {who}: {text}")
    _inbox_demo(emulator, manager_id, fresh, admin)
    _broadcast_demo(emulator, manager_id, fresh, admin)


def _inbox_demo(emulator: EmulatorControl, manager_id: int, shop: dict[str, Any], admin: dict[str, Any]) -> None:
    """The shop bot's feedback inbox (issue 15): a customer writes, the admin gets it in their own chat with the bot
    and answers with a reply."""
    admin_id, customer = int(admin["id"]), {"id": 5005, "first_name": "Carla", "language_code": "pt-br"}
    emulator.send_text(shop["id"], admin, "/start")  # a bot writes only to people who started it
    wait_for(lambda: bool(emulator.bot_messages(shop["id"], admin_id)), 30, "the shop bot's welcome")
    before = len(emulator.bot_messages(manager_id, admin_id))
    emulator.send_text(manager_id, admin, f"/inbox @{shop['username']} on")
    wait_for(lambda: len(emulator.bot_messages(manager_id, admin_id)) > before, 30, "the manager's answer")

    # The mode change reached the dispatcher's bot cache before the manager answered (adapters/bot_changes.py).
    emulator.send_text(shop["id"], customer, "Olá! Meu pedido não chegou.")
    # Welcome, header and copy: the admin's chat takes one message a second (Telegram's per-chat limit).
    wait_for(
        lambda: len(emulator.bot_messages(shop["id"], admin_id)) >= 3, 30, "the customer's message in the admin's chat"
    )
    copy = emulator.bot_messages(shop["id"], admin_id)[2]
    answer = "Desculpe! Ele sai hoje."
    emulator.send_text(shop["id"], admin, answer, reply_to_message_id=copy["message_id"])
    wait_for(lambda: answer in [m["text"] for m in emulator.bot_messages(shop["id"], 5005)], 30, "the admin's answer")
    print(f"\nInbox of @{shop['username']} on: customer 5005 wrote, admin 4004 replied in their chat with it:")
    for chat_id, who in ((5005, "customer"), (admin_id, "admin")):
        for message in emulator.chat(shop["id"], chat_id):
            side = "bot" if message["from_bot"] else who
            print(f"  [{who} chat] {side}: {message['plain_text'].splitlines()[0]}")


def _inline_button(message: dict[str, Any], label: str) -> str:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for item in row:
            if label in item["text"]:
                return str(item["callback_data"])
    raise RuntimeError(f"the manager's message has no {label!r} button")


def _broadcast_demo(emulator: EmulatorControl, manager_id: int, shop: dict[str, Any], admin: dict[str, Any]) -> None:
    """A broadcast (issue 15): two more customers start the shop bot, the admin sends one message to every active
    subscriber through the manager (preview, signed Send button, one progress message edited until done)."""
    admin_id, username = int(admin["id"]), shop["username"]
    customers: list[dict[str, Any]] = [
        {"id": 6006 + i, "first_name": name, "language_code": "en"} for i, name in enumerate(("Dan", "Eva"))
    ]
    for customer in customers:
        emulator.send_text(shop["id"], customer, "/start")
    for customer in customers:

        def welcomed(chat_id: int = int(customer["id"])) -> bool:
            return bool(emulator.bot_messages(shop["id"], chat_id))

        wait_for(welcomed, 30, "the shop bot's welcome")

    def manager_says(text: str, count: int = 1) -> list[dict[str, Any]]:
        before = len(emulator.bot_messages(manager_id, admin_id))
        emulator.send_text(manager_id, admin, text)
        wait_for(lambda: len(emulator.bot_messages(manager_id, admin_id)) >= before + count, 30, "the manager bot")
        return emulator.bot_messages(manager_id, admin_id)[before : before + count]

    def all_subscribed() -> bool:  # users reach the registry's subscriber list in batches
        (stats,) = manager_says(f"/subscribers @{username}")
        return f"Active: {len(customers) + 2}" in stats["plain_text"]  # + the admin and the inbox's customer

    wait_for(all_subscribed, 30, "the new subscribers", interval=1.0)
    manager_says(f"/broadcast @{username}")
    text = "Sale today: 20% off everything"
    _preview, prompt = manager_says(text, 2)
    emulator.press(manager_id, admin, admin_id, prompt["message_id"], _inline_button(prompt, "Send"))

    def progress() -> str:
        return str(
            next(m for m in emulator.chat(manager_id, admin_id) if m["message_id"] == prompt["message_id"])[
                "plain_text"
            ]
        )

    wait_for(lambda: "broadcast is done" in progress(), 60, "the broadcast to finish", interval=0.5)
    print(f"\nBroadcast from @{username}'s admin 4004 through the manager bot (preview, Send, live progress):")
    print("  " + progress().replace("\n", " · "))
    for customer in customers:
        got = [m["plain_text"] for m in emulator.bot_messages(shop["id"], int(customer["id"]))]
        print(f"  customer {customer['id']} got: {got[-1]}")


if __name__ == "__main__":
    main()
