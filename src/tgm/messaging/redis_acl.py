"""One least-privilege Redis user per tgm service (SECURITY.md finding 5): what each may run, on which keys.

Redis 7 checks a user's ACL on every command, also on the ones a Lua script runs, so these rules are what the
services really do, and the Redis-mode end-to-end tests run every service under its own user (an ACL denial there
fails the test run). The `default` user is the operator's, behind its own password: a client that does not
authenticate gets nothing. (It cannot be turned off: Redis 7.0 replays the transactions in its append-only file as
`default` and checks them against its ACL, so a restart would drop every update a script had stored; the restart
test in tests/reliability/test_stack_faults.py lost them all that way.)

- gateway: the one script that appends an update to its chat's mailbox and schedules the drain
  (src/tgm/messaging/update_queue.py) on the mailbox keys and the `updates` queue, and PING for /readyz. It cannot
  read a mailbox, a lock, a sent mark or a CAPTCHA, nor touch any other queue.
- dispatcher: reads and writes tgm's and Dramatiq's keys, runs scripts (not SCRIPT FLUSH or FUNCTION), transactions,
  tgm's pub/sub channel; nothing @admin or @dangerous (no FLUSHALL, CONFIG, DEBUG, MONITOR, ACL, SHUTDOWN) but TIME
  (the scripts' clock) and KEYS (Dramatiq's maintenance lists a dead worker's ack keys with it, in its dispatch.lua).
- monitor: read-only on the same keys, for `tgm queue` and dashboards.

Passwords are given to Redis as SHA-256 hashes (`#<hex>`), so they never sit in its command line or ACL file:
`python -m tgm.messaging.redis_acl --out FILE` writes the ACL file a deployment's Redis loads (`--aclfile`) from the
REDIS_<USER>_PASSWORD variables.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tgm.messaging.mailbox import KEY_PREFIX as MAILBOX_PREFIX
from tgm.messaging.update_queue import DRAMATIQ_NAMESPACE, UPDATES_QUEUE

# Connection set-up and health checks. (Redis 7.0, the tested and deployed version, has no CLIENT SETINFO: redis-py
# tries it on connect and ignores the error.)
_CONNECTION = "+ping +hello +client|setname +client|id"
# Dramatiq passes its bare namespace as the key of its dispatch script.
_TGM_KEYS = f"~tgm:* ~{DRAMATIQ_NAMESPACE} ~{DRAMATIQ_NAMESPACE}:*"

SERVICE_RULES: dict[str, str] = {
    "gateway": (
        f"~{MAILBOX_PREFIX}:* ~{MAILBOX_PREFIX}-due:* ~{DRAMATIQ_NAMESPACE}:{UPDATES_QUEUE} "
        f"~{DRAMATIQ_NAMESPACE}:{UPDATES_QUEUE}.msgs resetchannels -@all {_CONNECTION} "
        "+evalsha +script|load +llen +rpush +set +hset"
    ),
    "dispatcher": (
        f"{_TGM_KEYS} resetchannels &tgm:* -@all {_CONNECTION} "
        "+@read +@write +@transaction +@pubsub -@admin -@dangerous +eval +evalsha +script|load +script|exists "
        "+time +keys"
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


def users(admin_password: str, passwords: dict[str, str]) -> list[list[str]]:
    """Every user's ACL words: `default` (the operator) behind `admin_password`, then one user per service."""
    unknown = sorted(set(passwords) - set(SERVICE_RULES))
    if unknown:
        raise ValueError(f"no ACL rules for Redis users {unknown}")
    if not admin_password:
        raise ValueError("the Redis user 'default' needs a password")
    admin = ["default", "reset", "on", f"#{password_hash(admin_password)}", "~*", "&*", "+@all"]
    return [admin, *(user_rule(name, password) for name, password in passwords.items())]


def server_arguments(admin_password: str, passwords: dict[str, str]) -> list[str]:
    """The users as redis-server command-line arguments (`--user <words>` each)."""
    return [word for user in users(admin_password, passwords) for word in ("--user", *user)]


def acl_file(admin_password: str, passwords: dict[str, str]) -> str:
    """The users as an ACL file (redis-server `--aclfile`): one `user <words>` line each."""
    return "".join(f"user {' '.join(user)}\n" for user in users(admin_password, passwords))


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def redis_url_problem(url: str, *, insecure_dev: bool) -> str | None:
    """Why a service must not use this REDIS_URL, or None: it must name a user and a password (in a deployment the
    service's own; `default` is refused in production, src/tgm/config), use TLS (`rediss://`, certificates checked)
    unless Redis is on this host, and database 0 (the users may not SELECT). TGM_INSECURE_DEV=1 allows anything."""
    if insecure_dev:
        return None
    parsed = urlsplit(url)
    if not parsed.username or not parsed.password:
        return (
            "REDIS_URL must name this service's Redis user and password (redis://<user>:<password>@host; "
            "src/tgm/messaging/redis_acl.py); TGM_INSECURE_DEV=1 allows a development run without them"
        )
    if parsed.scheme == "redis" and (parsed.hostname or "") not in _LOOPBACK_HOSTS:
        return f"REDIS_URL reaches {parsed.hostname} without TLS: use rediss:// (ssl_ca_certs=...) across hosts"
    if any(value.lower() == "none" for value in parse_qs(parsed.query).get("ssl_cert_reqs", [])):
        return "REDIS_URL turns certificate checks off (ssl_cert_reqs=none): give ssl_ca_certs instead"
    if parsed.path.strip("/") not in ("", "0"):
        return "REDIS_URL must use database 0 (the Redis users may not SELECT another one)"
    return None


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Writes the ACL file from REDIS_ADMIN_PASSWORD and REDIS_<USER>_PASSWORD (every user in SERVICE_RULES)."""
    parser = argparse.ArgumentParser(prog="python -m tgm.messaging.redis_acl", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the ACL file to write (mode 0600)")
    parser.add_argument("--owner", help="uid:gid to give it (the Redis server's user; needs root)")
    args = parser.parse_args(argv)
    names = {"default": "REDIS_ADMIN_PASSWORD", **{name: f"REDIS_{name.upper()}_PASSWORD" for name in SERVICE_RULES}}
    missing = [variable for variable in names.values() if not environ.get(variable)]
    if missing:
        print(f"redis_acl: set {', '.join(missing)}", file=sys.stderr)
        return 2
    passwords = {name: environ[variable] for name, variable in names.items() if name != "default"}
    text = acl_file(environ[names["default"]], passwords)
    partial = args.out.with_name(args.out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        os.chown(partial, int(uid), int(gid or uid))
    os.replace(partial, args.out)
    print(f"redis_acl: {len(names)} users written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
