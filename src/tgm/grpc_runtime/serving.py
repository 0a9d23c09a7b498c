"""One gRPC service in this process from its start to SIGTERM/SIGINT: what a gRPC server's `serve` shares with any
other (the vault's; the registry adds its own steps between the same parts)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import grpc

from tgm.grpc_runtime.channels import start_server
from tgm.grpc_runtime.tls import TlsFiles
from tgm.host.signals import stop_event_on_signals
from tgm.observability.logging import log_extra
from tgm.observability.metrics import Probe, start_metrics_server


def serve_until_signalled(
    name: str,
    add_servicer: Callable[[grpc.Server], None],
    service_name: str,
    listen: str,
    tls: TlsFiles,
    *,
    logger: logging.Logger,
    metrics: tuple[str, int],
    readiness: Probe,
    details: Mapping[str, object],
) -> int:
    """Starts the service on `listen` (`start_server`: mTLS, client certificates required) and the `/metrics` and
    probes server on `metrics` (host, port; port 0 = off), logs "<name> serving" with `listen`, the bound port and
    `details` (the service's own facts for the operator; never a secret), then runs until SIGTERM or SIGINT:
    health answers NOT_SERVING, in-flight calls get their grace, the metrics server stops. Returns the exit code:
    0 after a signal, 1 when `listen` cannot be bound (logged as "<name> cannot start")."""
    stop = stop_event_on_signals(logger, f"{name} stopping")
    try:
        running = start_server(add_servicer, service_name, listen, tls)
    except OSError as exc:
        logger.error(f"{name} cannot start: {exc}")
        return 1
    metrics_server = start_metrics_server(name, *metrics, readiness=readiness)
    logger.info(f"{name} serving", **log_extra(listen=listen, port=running.port, **details))
    while not stop.wait(0.5):
        pass
    running.stop()
    if metrics_server is not None:
        metrics_server.stop()
    logger.info(f"{name} stopped")
    return 0
