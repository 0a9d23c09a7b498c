"""`tgm events [--bot ID] [--since 7d] [--limit N]`: the registry's event trail, newest first (operator certificate).

Admin actions (bots added, enabled, disabled, deleted, webhook secrets rotated, settings changed), the manager
bot's refused buttons and key rotations recorded by `tgm keys rotate`. The vault's own tamper-evident audit log
(`tgm audit verify`) stays the authority on key operations.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from tgm.domain.administration.setting_rules import parse_duration
from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc

TIMEOUT_SECONDS = 10.0


def add_parser(sub: Any) -> None:
    events = sub.add_parser("events", help="the event trail, newest first: [--bot ID] [--since 7d] [--limit N]")
    events.add_argument("--bot", default="", help="only this bot's events")
    events.add_argument("--since", default="", help="only the last 30m, 12h, 7d …")
    events.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")


def describe(event: registry_pb2.Event) -> str:
    at = datetime.fromtimestamp(event.at_unix_ms / 1000, UTC)
    details = " ".join(f"{key}={value}" for key, value in sorted(event.details.items()))
    who = f"{event.kind:22s} {event.outcome:7s} {event.actor:20s}"  # inbox_sender_unblocked: 22
    return f"{at:%Y-%m-%d %H:%M:%S}Z  {who} {event.bot_id or '-'}  {details}"


def run(args: argparse.Namespace, channel: grpc.Channel, clock: Clock | None = None) -> int:
    since_ms = 0
    if args.since:
        seconds = parse_duration(args.since, seconds=True)
        if seconds is None:
            print("tgm events: --since takes a time, e.g. 30m, 12h, 7d", file=sys.stderr)
            return 2
        since_ms = int(((clock or SystemClock()).now().timestamp() - seconds) * 1000)
    if not 1 <= args.limit <= 1000:
        print("tgm events: --limit is 1-1000", file=sys.stderr)
        return 2
    request = registry_pb2.ListEventsRequest(bot_id=args.bot, since_unix_ms=max(since_ms, 0), limit=args.limit)
    try:
        reply = registry_pb2_grpc.RegistryServiceStub(channel).ListEvents(request, timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        code = error.code() if callable(getattr(error, "code", None)) else None
        print(f"tgm events: {code.name if code else 'failed'}: {error.details()}", file=sys.stderr)
        return 1
    for event in reply.events:
        print(describe(event))
    return 0


def main(args: argparse.Namespace) -> int:
    from tgm.apps.cli.bots import registry_channel

    channel = registry_channel("events")
    if channel is None:
        return 2
    try:
        return run(args, channel)
    finally:
        channel.close()
