"""`python -m tgm.services.dispatcher dead-letters list|show ID|replay ID|purge [--yes]` (needs REDIS_URL).

Replay puts the job back where it came from: an update into its chat's mailbox (+ a drain), an API
call as a fresh first attempt, an outbound call into its chat's outbox (+ a drain); then removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from tgm.domain.inbound import chat_key_of
from tgm.domain.ports import ApiCallJob, DeadLetter
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.drain_chat import describe_failure
from tgm.domain.use_cases.run_api_call import job_from_message, job_to_message
from tgm.messaging.envelope_signing import EnvelopeSigner, signer_from_key
from tgm.messaging.mailbox import RedisChatMailbox
from tgm.messaging.update_queue import drain_chat_message
from tgm.services.dispatcher.adapters.dead_letters import RedisDeadLetters
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.scheduling import drain_outbox_message
from tgm.services.dispatcher.outbound.store import RedisOutboxStore
from tgm.services.dispatcher.workers.actors import api_call_message

REPLAY_LOCK_SECONDS = 300.0  # as EXTERNAL_API_LOCK_SECONDS' default; the job releases it when done


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("dead-letters", help="list, show, replay or purge failed jobs (needs REDIS_URL)")
    commands = parser.add_subparsers(dest="dl_command", required=True)
    listing = commands.add_parser("list", help="the oldest first")
    listing.add_argument("--limit", type=int, default=100)
    commands.add_parser("show", help="one dead letter, whole").add_argument("id")
    commands.add_parser("replay", help="queue the job again and remove it").add_argument("id")
    commands.add_parser("purge", help="remove every dead letter").add_argument("--yes", action="store_true")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def replay(letter: DeadLetter, client: Any, broker: Any, signer: EnvelopeSigner | None = None) -> None:
    if letter.kind == "update":
        envelope = UpdateEnvelope.from_message(letter.payload)
        chat_key = chat_key_of(envelope)
        RedisChatMailbox(client, signer=signer).push(chat_key, envelope)  # tagged as the gateway tags it
        broker.enqueue(drain_chat_message(envelope.bot_id, chat_key, envelope.request_id))
    elif letter.kind == "api_call":
        job = job_from_message(letter.payload)
        # A fresh lock (the failed run released its own) and a fresh job id: the replay's reply must not be
        # taken for the failed run's (effect ids derive from the job id).
        owner = RedisLocks(client).acquire(job.lock_key, REPLAY_LOCK_SECONDS)
        if owner is None:
            raise RuntimeError("this user's call of the command is running; replay it later")
        fresh = ApiCallJob(**{**job_to_message(job), "attempt": 0, "job_id": uuid.uuid4().hex, "lock_owner": owner})
        try:
            broker.enqueue(api_call_message(fresh))
        except Exception:
            RedisLocks(client).release(job.lock_key, owner)
            raise
    elif letter.kind == "outbound":
        # A new call (the old id is marked queued already), refused here if it cannot be decoded.
        queued = QueuedCall.from_wire({**letter.payload, "id": uuid.uuid4().hex})
        RedisOutboxStore(client).push(queued.bot_id, queued.chat_key, queued.encode(), queued.id)
        broker.enqueue(drain_outbox_message(queued.bot_id, queued.chat_key))
    else:
        raise ValueError(f"cannot replay a dead letter of kind {letter.kind!r}")


def run(args: argparse.Namespace, redis_url: str, out: TextIO = sys.stdout) -> int:
    if not redis_url:
        print("dead-letters: REDIS_URL is required (embedded mode keeps dead letters in memory)", file=sys.stderr)
        return 2
    import redis
    from dramatiq.brokers.redis import RedisBroker

    client = redis.Redis.from_url(redis_url)
    store = RedisDeadLetters(client)
    try:
        if args.dl_command == "list":
            for letter in store.list(args.limit):
                print(
                    f"{letter.id}  {letter.kind:<9} attempts={letter.attempts} "
                    f"first={_when(letter.first_failure_at)} last={_when(letter.last_failure_at)}  {letter.reason}",
                    file=out,
                )
            return 0
        if args.dl_command == "purge":
            if not args.yes:
                print("purge removes every dead letter; run again with --yes", file=sys.stderr)
                return 1
            print(f"purged {store.purge()}", file=out)
            return 0
        if args.dl_command == "show":
            found = store.get(args.id)
            if found is None:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            print(json.dumps(vars(found), ensure_ascii=False, indent=2), file=out)
            return 0
        claimed = store.claim(args.id)  # atomic: a second replay of the same letter finds nothing
        if claimed is None:
            print(f"no dead letter {args.id} (already replayed?)", file=sys.stderr)
            return 1
        broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
        try:
            # The dispatchers' ENVELOPE_SIGNING_KEY: a replayed update must verify like one from the gateway.
            replay(claimed, client, broker, signer_from_key(os.environ.get("ENVELOPE_SIGNING_KEY", "")))
        except Exception as exc:
            store.restore(claimed)
            print(f"could not replay {claimed.id}: {describe_failure(exc)}", file=sys.stderr)
            return 1
        finally:
            broker.close()
        print(f"replayed {claimed.id}", file=out)
        return 0
    finally:
        client.close()
