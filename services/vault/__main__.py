"""`python -m services.vault serve` — run the vault; `python -m services.vault genkey` — print a fresh key."""

from __future__ import annotations

import argparse
import base64
import ipaddress
import logging
import os
import signal
import sys
import threading
from types import FrameType

from libs.observability.logging import configure_logging, log_extra
from services.vault.container import VaultContainer
from services.vault.crypto import KEY_BYTES
from services.vault.grpc.server import start_server
from services.vault.settings import VaultConfigError

log = logging.getLogger("services.vault")

EXIT_CONFIG_ERROR = 2


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost" or listen.startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(container: VaultContainer) -> int:
    try:
        settings = container.settings()
        keyring = container.keyring()
        servicer = container.servicer()
    except VaultConfigError as exc:
        log.error("vault cannot start: %s", exc)
        return EXIT_CONFIG_ERROR
    logging.getLogger().setLevel(settings.log_level.upper())

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("vault stopping", **log_extra(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    try:
        running = start_server(servicer, settings.vault_listen)
    except OSError as exc:
        log.error("vault cannot start: %s", exc)
        return 1
    if settings.vault_unauthenticated_peers == "any":
        log.warning("VAULT_UNAUTHENTICATED_PEERS=any: every peer that can reach the vault may use every verb")
    elif not _is_loopback(settings.vault_listen):
        log.warning(
            "vault listens beyond loopback but refuses non-loopback callers until mTLS (issue 4); "
            "set VAULT_UNAUTHENTICATED_PEERS=any on a private container network"
        )
    log.info(
        "vault serving",
        **log_extra(
            listen=settings.vault_listen,
            port=running.port,
            key_versions=list(keyring.versions),
            primary_key_version=keyring.primary_version,
        ),
    )
    while not stop.wait(0.5):
        pass
    running.stop()
    log.info("vault stopped")
    return 0


def genkey() -> int:
    print("base64:" + base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.vault", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the vault gRPC server on VAULT_LISTEN")
    sub.add_parser("genkey", help="print a fresh ENCRYPTION_KEY value")
    args = parser.parse_args(argv)
    if args.command == "genkey":
        return genkey()
    configure_logging("vault", os.environ.get("LOG_LEVEL", "INFO"))
    return serve(VaultContainer())


if __name__ == "__main__":
    sys.exit(main())
