"""One least-privilege Redis user per tgm service (SECURITY.md finding 5): what each may run, on which keys.

Redis 7 checks a user's ACL on every command, also on the ones a Lua script runs, so these rules are what the
services really do, and the Redis-mode end-to-end tests run every service under its own user (an ACL denial there
fails the test run). The `default` user is the operator's, behind its own password: a client that does not
authenticate gets nothing. (It cannot be turned off: Redis 7.0 replays the transactions in its append-only file as
`default` and checks them against its ACL, so a restart would drop every update a script had stored; the restart
test in tests/reliability/test_stack_faults.py lost them all that way.)

- gateway: the one script that appends an update to its chat's mailbox and schedules the drain
  (libs/messaging/update_queue.py) on the mailbox keys and the `updates` queue, and PING for /readyz. It cannot
  read a mailbox, a lock, a sent mark or a CAPTCHA, nor touch any other queue.
- dispatcher: reads and writes tgm's and Dramatiq's keys, scripts, transactions, tgm's pub/sub channel; nothing
  @admin or @dangerous (no FLUSHALL, CONFIG, DEBUG, MONITOR, ACL, SHUTDOWN) but TIME (the scripts' clock) and
  KEYS (Dramatiq's maintenance lists a dead worker's ack keys with it, in its dispatch.lua).
- monitor: read-only on the same keys, for `tgm queue` and dashboards.

Passwords are given to Redis as SHA-256 hashes (`#<hex>`), so they never sit in its command line or ACL file.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from libs.messaging.mailbox import KEY_PREFIX as MAILBOX_PREFIX
from libs.messaging.update_queue import DRAMATIQ_NAMESPACE, UPDATES_QUEUE

# Connection set-up and health checks. (Redis 7.0, the tested and deployed version, has no CLIENT SETINFO: redis-py
# tries it on connect and ignores the error.)
_CONNECTION = "+ping +hello +client|setname +client|id"
# Dramatiq passes its bare namespace as the key of its dispatch script.
_TGM_KEYS = f"~tgm:* ~{DRAMATIQ_NAMESPACE} ~{DRAMATIQ_NAMESPACE}:*"

SERVICE_RULES: dict[str, str] = {
    "gateway": (
        f"~{MAILBOX_PREFIX}:* ~{MAILBOX_PREFIX}-due:* ~{DRAMATIQ_NAMESPACE}:{UPDATES_QUEUE} "
        f"~{DRAMATIQ_NAMESPACE}:{UPDATES_QUEUE}.msgs resetchannels -@all {_CONNECTION} "
        "+evalsha +eval +script|load +llen +rpush +set +hset"
    ),
    "dispatcher": (
        f"{_TGM_KEYS} resetchannels &tgm:* -@all {_CONNECTION} "
        "+@read +@write +@scripting +@transaction +@pubsub -@admin -@dangerous +time +keys"
    ),
    "monitor": f"{_TGM_KEYS} resetchannels -@all {_CONNECTION} +@read -@admin -@dangerous",
}


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_rule(name: str, password: str) -> list[str]:
    """One `user` directive's words: a Redis config line, or `--user` + these words on redis-server's command line."""
    if not password:
        raise ValueError(f"the Redis user {name!r} needs a password")
    return [name, "reset", "on", f"#{password_hash(password)}", *SERVICE_RULES[name].split()]


def server_arguments(admin_password: str, passwords: dict[str, str]) -> list[str]:
    """redis-server arguments: `default` (the operator) behind `admin_password`, one user per service."""
    unknown = sorted(set(passwords) - set(SERVICE_RULES))
    if unknown:
        raise ValueError(f"no ACL rules for Redis users {unknown}")
    if not admin_password:
        raise ValueError("the Redis user 'default' needs a password")
    arguments = ["--user", "default", "reset", "on", f"#{password_hash(admin_password)}", "~*", "&*", "+@all"]
    for name, password in passwords.items():
        arguments += ["--user", *user_rule(name, password)]
    return arguments


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def redis_url_problem(url: str, *, insecure_dev: bool) -> str | None:
    """Why a service must not use this REDIS_URL, or None: it must name its own user and password (the `default`
    user is off), and use TLS (`rediss://`) unless Redis is on this host. TGM_INSECURE_DEV=1 allows anything."""
    if insecure_dev:
        return None
    parsed = urlsplit(url)
    if not parsed.username or not parsed.password:
        return (
            "REDIS_URL must name this service's Redis user and password (redis://<user>:<password>@host; "
            "libs/messaging/redis_acl.py); TGM_INSECURE_DEV=1 allows a development run without them"
        )
    if parsed.scheme == "redis" and (parsed.hostname or "") not in _LOOPBACK_HOSTS:
        return f"REDIS_URL reaches {parsed.hostname} without TLS: use rediss:// (ssl_ca_certs=...) across hosts"
    return None
