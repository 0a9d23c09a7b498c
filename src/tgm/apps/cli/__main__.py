"""`tgm` — one command for operators. Each verb runs the service tool that owns the job:

tgm run                                   the whole stack on embedded defaults, with the emulator (= make run)
tgm health [--stack-file F]               every component of a running stack: ok or failing, exit 1 if any fails
tgm queue                                 messages waiting per dispatcher queue, and the chats with the most
tgm keys status|rotate|retire N           vault key versions (operator certificate: TLS_* env)
tgm audit verify [--file F] [--anchor A]  the vault's keyed, anchored audit log
tgm rewrap                                re-seal every stored token under the vault's primary key
tgm dead-letters list|show|replay|purge   work that failed for good
tgm bots list --owner N|show|enable|disable|maintenance BOT_ID   any bot (operator certificate, REGISTRY_ADDR)
tgm users block|unblock BOT_ID USER_ID [--for 1h]                 a user of any bot
tgm limits show|reset BOT_ID, set BOT_ID ACTION --rate 5/1m --cooldown 10s   a bot's own limits
tgm backup --out FILE | tgm restore FILE   database + vault keyring and audit log, encrypted with BACKUP_KEY
tgm events [--bot ID] [--since 7d] [--limit N]                    the event trail: admin actions, security events
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

DEFAULT_STACK_FILE = Path(".run") / "stack.json"


def _vault(args: Sequence[str]) -> int:
    from tgm.apps.cli.vault import main

    return main(list(args))


def _registry(args: Sequence[str]) -> int:
    from tgm.services.botregistry.__main__ import main

    return main(list(args))


def _dispatcher(args: Sequence[str]) -> int:
    from tgm.services.dispatcher.__main__ import main

    return main(list(args))


def _run(args: Sequence[str]) -> int:
    from tgm.tools.devstack.__main__ import main

    main(list(args))
    return 0


def health(stack_file: Path, timeout: float = 3.0) -> int:
    """Asks each component's probe (written by the stack to `stack_file`); prints one line each."""
    import httpx

    try:
        probes: dict[str, str] = json.loads(stack_file.read_text())["probes"]
    except (OSError, ValueError, KeyError) as error:
        print(f"tgm health: no running stack described in {stack_file} ({type(error).__name__})", file=sys.stderr)
        return 2
    failing = 0
    for name, url in probes.items():
        try:
            answer = httpx.get(url, timeout=timeout)
            ok, detail = answer.status_code == 200, f"HTTP {answer.status_code}"
        except httpx.HTTPError as error:
            ok, detail = False, type(error).__name__
        failing += not ok
        print(f"{name:14s} {'ok' if ok else 'FAILING':8s} {detail}  {url}")
    return 1 if failing else 0


def queue(redis_url: str, top: int = 10) -> int:
    """Depth of each dispatcher queue (ready + delayed), then the chats whose mailboxes hold the most updates."""
    import redis

    from tgm.messaging.mailbox import KEY_PREFIX
    from tgm.observability.metrics import QueueSizeCollector
    from tgm.services.dispatcher.workers.actors import DISPATCHER_QUEUES

    client = redis.Redis.from_url(redis_url)
    for name, (ready, delayed) in QueueSizeCollector(client, DISPATCHER_QUEUES).depths().items():
        print(f"queue {name:9s} ready {ready:>7,}  delayed {delayed:>7,}")
    sizes: list[tuple[int, str]] = []
    for key in client.scan_iter(match=f"{KEY_PREFIX}:*", count=1000):
        if client.type(key) == b"list":
            sizes.append((cast(int, client.llen(key)), key.decode()))  # sync reply, typed as maybe-Awaitable
    sizes.sort(reverse=True)
    for size, key in sizes[:top]:
        print(f"mailbox {key}  {size:,} updates")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tgm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    passthrough: dict[str, tuple[Callable[[Sequence[str]], int], list[str]]] = {
        "audit": (_vault, ["audit"]),
        "rewrap": (_registry, ["rewrap"]),
        "dead-letters": (_dispatcher, ["dead-letters"]),
        "run": (_run, []),
    }
    helps = {
        "audit": "the vault's audit log: verify [--file F] [--anchor SEQ:HASH]",
        "rewrap": "re-seal every stored token under the vault's primary key",
        "dead-letters": "list | show ID | replay ID | purge --yes",
        "run": "the whole stack with the emulator (make run)",
    }
    for verb in passthrough:
        command = sub.add_parser(verb, help=helps[verb], add_help=False)
        command.add_argument("rest", nargs=argparse.REMAINDER)
    health_parser = sub.add_parser("health", help="every component of a running stack")
    health_parser.add_argument("--stack-file", type=Path, default=DEFAULT_STACK_FILE)
    queue_parser = sub.add_parser("queue", help="queue depths and the fullest chat mailboxes (needs REDIS_URL)")
    queue_parser.add_argument("--top", type=int, default=10)
    from tgm.apps.cli import backup, bots, events, keys

    bots.add_parsers(sub)
    keys.add_parser(sub)
    backup.add_parsers(sub)
    events.add_parser(sub)
    args = parser.parse_args(argv)
    if args.verb in ("backup", "restore"):
        return backup.main(args.verb, args)
    if args.verb in ("bots", "users", "limits"):
        return bots.main(args.verb, args)
    if args.verb == "keys":
        return keys.main(args)
    if args.verb == "events":
        return events.main(args)
    if args.verb == "health":
        return health(args.stack_file)
    if args.verb == "queue":
        import os

        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            print("tgm queue: set REDIS_URL (embedded mode keeps its queues in memory)", file=sys.stderr)
            return 2
        return queue(redis_url, args.top)
    target, prefix = passthrough[args.verb]
    return target([*prefix, *args.rest])


def main_exit() -> None:
    """The `tgm` console script."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
