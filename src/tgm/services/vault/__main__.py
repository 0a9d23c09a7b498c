"""The vault's command line: `serve`, and the offline verbs that touch the keyring or the audit log (README.md)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tgm.config.production import production_refusal
from tgm.grpc_runtime.serving import serve_until_signalled
from tgm.grpc_runtime.tls import TlsConfigError, mutual_tls_from_env
from tgm.host.files import has_content
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging, log_extra
from tgm.observability.metrics import VAULT_KEY_ROTATION_DUE
from tgm.services.vault import audit
from tgm.services.vault.container import VaultContainer, audit_anchor_path, audit_from_settings
from tgm.services.vault.crypto import KEY_BYTES
from tgm.services.vault.grpc.servicer import SERVICE_NAME
from tgm.services.vault.keystore import KeyStore, KeyStoreError, lock_keyring
from tgm.services.vault.settings import VaultConfigError, VaultSettings, encode_key, env_keys, load_settings
from tgm.vault.v1 import vault_pb2_grpc

log = logging.getLogger(__name__)

EXIT_CONFIG_ERROR = 2


def serve(container: VaultContainer) -> int:
    try:
        settings = container.settings()
        refusal = production_refusal("tgm.services.vault", settings)
        if refusal:
            log.error(refusal)
            return EXIT_CONFIG_ERROR
        keys = container.keys()
        servicer = container.servicer()
        tls = mutual_tls_from_env("vault")
    except (VaultConfigError, TlsConfigError, ValueError) as exc:
        log.error("vault cannot start: %s", exc)
        return EXIT_CONFIG_ERROR
    logging.getLogger().setLevel(settings.log_level.upper())
    audit_log = container.audit()
    VAULT_KEY_ROTATION_DUE.set_function(lambda: float(keys.status().rotation_due))

    def serving(port: int) -> None:
        head, status = audit_log.head, keys.status()
        log.info("vault audit log resumed", **log_extra(audit_seq=head.seq, audit_hash=head.hash))
        if status.rotation_due:
            log.warning("vault primary key is older than the rotation period: run `tgm keys rotate`, then `tgm rewrap`")
        log.info(
            "vault serving",
            **log_extra(
                listen=settings.vault_listen,
                port=port,
                key_versions=list(keys.current().versions),
                primary_key_version=status.primary_version,
                audit_file=str(settings.vault_audit_file),
            ),
        )

    return serve_until_signalled(
        "vault",
        lambda server: vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer, server),
        SERVICE_NAME,
        settings.vault_listen,
        tls,
        logger=log,
        metrics=(settings.metrics_host, settings.metrics_port),
        readiness=lambda: {"audit_log": audit_log.broken is None},
        serving=serving,
    )


def _offline(verb: str, act: Callable[[VaultSettings, Path], str]) -> int:
    """Runs a keyring verb under the keyring's lock (a running vault holds it: never write under it), then prints
    what `act` did. Exit 0 done, 2 refused (no keyring path, a vault holding it, bad settings, what `act` refused)."""

    try:
        settings = load_settings()
        path = settings.vault_keyring_file
        if path is None:
            raise VaultConfigError(f"{verb} needs VAULT_KEYRING_FILE (the keyring file)")
        lock = lock_keyring(path)
        try:
            done = act(settings, path)
        finally:
            os.close(lock)
    except (VaultConfigError, KeyStoreError, OSError, audit.AuditLogTampered) as exc:
        print(f"vault {verb} refused: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(done)
    return 0


def init_keyring(once: bool = False) -> int:
    """Creates VAULT_KEYRING_FILE from ENCRYPTION_KEY (or a fresh random key); refuses when one exists, and when the
    audit log shows a vault ran here (its keyring was lost: restore it from backup, never make it anew).

    `once` (a deployment's init step, run before every start, maybe beside a running vault): a keyring already there
    is success, unchanged, checked before taking the keyring's lock."""
    with contextlib.suppress(VaultConfigError):
        path = load_settings().vault_keyring_file
        if once and path is not None and path.exists():
            print(f"keyring already at {path}: unchanged")
            return 0

    def create(settings: VaultSettings, path: Path) -> str:
        if not path.exists() and has_content(settings.vault_audit_file):
            raise VaultConfigError(
                f"no keyring at VAULT_KEYRING_FILE {path} but the audit log {settings.vault_audit_file} has lines: "
                "a vault ran here; restore its keyring from backup instead of creating a new one"
            )
        bootstrap = env_keys(settings)
        store = KeyStore.create(path, bootstrap)
        version = store.status().primary_version
        # The first audit line, under the new keyring's audit key: it writes the anchor every start checks.
        line = audit_from_settings(settings, store, new_keyring=True).append(
            {"verb": "InitKeyring", "caller": "local-operator", "key_version": version, "outcome": "ok"}
        )
        source = "ENCRYPTION_KEY" if bootstrap else "a fresh random key"
        return f"keyring created at {path}: key version {version} from {source} (audit seq {line.seq})"

    return _offline("init", create)


def destroy_key_version(version: int) -> int:
    """Removes retired key version `version`'s bytes from VAULT_KEYRING_FILE for good (the vault stopped: it holds
    the keyring's lock while it runs) and records it in the audit log."""

    def destroy(settings: VaultSettings, path: Path) -> str:
        store = KeyStore.open(path, None)  # the file only: ENCRYPTION_KEY plays no part here
        store.destroy(version)
        line = audit_from_settings(settings, store).append(
            {"verb": "DestroyKeyVersion", "caller": "local-operator", "key_version": version, "outcome": "ok"}
        )
        return f"key version {version} destroyed (audit seq {line.seq}); unset ENCRYPTION_KEY if it held that key"

    return _offline("destroy", destroy)


def genkey() -> int:
    print(encode_key(os.urandom(KEY_BYTES)))
    return 0


def _audit_key(settings: VaultSettings) -> bytes | None:
    """The audit chain's key from the keyring file (read only; no lock needed) or ENCRYPTION_KEY; None if neither."""
    if settings.vault_keyring_file is not None:
        return KeyStore.open(settings.vault_keyring_file, None).audit_key
    bootstrap = env_keys(settings)
    return KeyStore.open(None, bootstrap).audit_key if bootstrap else None


def audit_verify(path: Path | None = None, anchor: str | None = None) -> int:
    """Exit 0 intact, 1 tampered (or the anchored line is gone), 2 unreadable / bad arguments.

    Keyed lines are checked under the audit key (from the vault's settings); the anchor file is checked too unless
    an anchor is given (the last `audit_seq:audit_hash` from the vault's shipped log)."""

    try:
        settings = load_settings()
        path = path or settings.vault_audit_file
        key = _audit_key(settings)
        checked = audit.Anchor.parse(anchor) if anchor else None
    except (VaultConfigError, ValueError) as exc:  # bad settings, or an --anchor that is not SEQ:HASH
        print(f"audit verify: {exc}", file=sys.stderr)
        return 2
    try:
        if key is not None and checked is None:
            checked = audit.read_anchor(audit_anchor_path(settings), key)
        verdict = audit.verify(path, checked, key=key)
    except audit.AuditLogTampered as exc:
        print(f"audit log {path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if verdict.ok:
        # Compare with the last `audit_seq`/`audit_hash` in the vault's shipped log: a smaller seq = a cut tail.
        shown = f" anchor={checked}" if checked else ""
        print(f"ok {verdict.lines} lines seq={verdict.lines} head={verdict.head}{shown}")
        return 0
    print(f"audit log {path}: line {verdict.bad_line}: {verdict.reason}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.services.vault", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the vault gRPC server on VAULT_LISTEN (mTLS: TLS_* env)").set_defaults(run=_serve)
    sub.add_parser("genkey", help="print a fresh ENCRYPTION_KEY value").set_defaults(run=lambda args: genkey())
    init_parser = sub.add_parser("init", help="create VAULT_KEYRING_FILE once (from ENCRYPTION_KEY, else a fresh key)")
    init_parser.add_argument(
        "--once", action="store_true", help="exit 0 without a change when the keyring exists (a deployment's init step)"
    )
    init_parser.set_defaults(run=lambda args: init_keyring(args.once))
    destroy_parser = sub.add_parser("destroy", help="remove a retired key version's bytes (the vault stopped)")
    destroy_parser.add_argument("version", type=int)
    destroy_parser.set_defaults(run=lambda args: destroy_key_version(args.version))
    audit_parser = sub.add_parser("audit", help="audit log tools")
    audit_parser.add_argument("action", choices=["verify"])
    audit_parser.add_argument("--file", type=Path, default=None, help="default: VAULT_AUDIT_FILE or its default")
    audit_parser.add_argument("--anchor", default=None, help="SEQ:HASH last logged by the vault (audit_seq/audit_hash)")
    audit_parser.set_defaults(run=lambda args: audit_verify(args.file, args.anchor))
    args = parser.parse_args(argv)
    return int(args.run(args))


def _serve(args: argparse.Namespace) -> int:
    configure_logging("vault", os.environ.get("LOG_LEVEL", "INFO"))
    # Off unless SENTRY_VAULT_ENABLED too: the key holder sees plaintext tokens and texts that redaction cannot all
    # recognise, and an error-tracking client is a path out of it to a third party (SECURITY.md).
    configure_error_tracking("vault", key_holder=True)
    return serve(VaultContainer())


if __name__ == "__main__":
    sys.exit(main())
