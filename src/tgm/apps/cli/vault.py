"""`python -m tgm.services.vault` (and `tgm audit verify`): the vault's command line — arguments, output and exit
codes. The commands, and every key they touch, are tgm.services.vault.commands (kept apart so the vault stays small
enough to review, issue 11); this module never reads a key or the keyring.

Exit codes: 0 done; 1 `audit verify` found the log tampered with, or `serve` cannot listen; 2 refused (settings,
arguments, a keyring held by a running vault, what the command refuses).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tgm.services.vault import commands
from tgm.services.vault.audit import Anchor, AuditLogTampered


def main(argv: list[str] | None = None) -> int:
    description = "The vault: `serve`, and the offline verbs that touch the keyring or the audit log."
    parser = argparse.ArgumentParser(prog="python -m tgm.services.vault", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the vault gRPC server on VAULT_LISTEN (mTLS: TLS_* env)").set_defaults(run=_serve)
    sub.add_parser("genkey", help="print a fresh ENCRYPTION_KEY value").set_defaults(run=_genkey)
    init_parser = sub.add_parser("init", help="create VAULT_KEYRING_FILE once (from ENCRYPTION_KEY, else a fresh key)")
    init_parser.add_argument(
        "--once", action="store_true", help="exit 0 without a change when the keyring exists (a deployment's init step)"
    )
    init_parser.set_defaults(run=_init)
    destroy_parser = sub.add_parser("destroy", help="remove a retired key version's bytes (the vault stopped)")
    destroy_parser.add_argument("version", type=int)
    destroy_parser.set_defaults(run=lambda args: _done("destroy", lambda: commands.destroy_key_version(args.version)))
    audit_parser = sub.add_parser("audit", help="audit log tools")
    audit_parser.add_argument("action", choices=["verify"])
    audit_parser.add_argument("--file", type=Path, default=None, help="default: VAULT_AUDIT_FILE or its default")
    audit_parser.add_argument("--anchor", default=None, help="SEQ:HASH last logged by the vault (audit_seq/audit_hash)")
    audit_parser.set_defaults(run=lambda args: audit_verify(args.file, args.anchor))
    args = parser.parse_args(argv)
    return int(args.run(args))


def _serve(args: argparse.Namespace) -> int:
    from tgm.observability.error_tracking import configure_error_tracking
    from tgm.observability.logging import configure_logging

    configure_logging("vault", os.environ.get("LOG_LEVEL", "INFO"))
    # Off unless SENTRY_VAULT_ENABLED too: the key holder sees plaintext tokens and texts that redaction cannot all
    # recognise, and an error-tracking client is a path out of it to a third party (SECURITY.md).
    configure_error_tracking("vault", key_holder=True)
    return commands.serve()


def _genkey(args: argparse.Namespace) -> int:
    print(commands.new_key())
    return 0


def _init(args: argparse.Namespace) -> int:
    """`--once` (a deployment's init step, run before every start, maybe beside a running vault): a keyring already
    there is success, unchanged, checked before taking the keyring's lock."""
    existing = commands.existing_keyring() if args.once else None
    if existing is not None:
        print(f"keyring already at {existing}: unchanged")
        return 0
    return _done("init", commands.init_keyring)


def _done(verb: str, act: Callable[[], str]) -> int:
    try:
        print(act())
    except commands.Refused as exc:
        print(f"vault {verb} refused: {exc}", file=sys.stderr)
        return 2
    return 0


def audit_verify(path: Path | None = None, anchor: str | None = None) -> int:
    """Exit 0 intact, 1 tampered (or the anchored line is gone), 2 unreadable / bad arguments.

    Keyed lines are checked under the audit key (the vault's settings say where it is); the anchor file is checked
    too unless an anchor is given (the last `audit_seq:audit_hash` from the vault's shipped log)."""
    try:
        path, checked, verdict = commands.verify_audit_log(path, Anchor.parse(anchor) if anchor else None)
    except (commands.Refused, ValueError) as exc:  # bad settings, an unreadable file, an --anchor not SEQ:HASH
        print(f"audit verify: {exc}", file=sys.stderr)
        return 2
    except AuditLogTampered as exc:  # the anchor file
        print(f"audit verify: {exc}", file=sys.stderr)
        return 1
    if verdict.ok:
        # Compare with the last `audit_seq`/`audit_hash` in the vault's shipped log: a smaller seq = a cut tail.
        shown = f" anchor={checked}" if checked else ""
        print(f"ok {verdict.lines} lines seq={verdict.lines} head={verdict.head}{shown}")
        return 0
    print(f"audit log {path}: line {verdict.bad_line}: {verdict.reason}", file=sys.stderr)
    return 1
