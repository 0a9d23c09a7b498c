"""gRPC plumbing shared by the services: channels, request_id propagation, deadlines, mutual TLS.

TLS comes from the process environment (`tgm.grpc_runtime.tls`: TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE),
which must name it (fail closed) unless TGM_INSECURE_DEV=1, or a caller passes `tls=` explicitly: `None` forces
plaintext (in-process tests), a `TlsFiles` uses those files.

Server identity: every server certificate names only its own service (DNS ``vault`` / ``botregistry``), and a
TLS channel always checks the name of the service it means to reach (``grpc.ssl_target_name_override``), so a
server holding another service's certificate is refused. The name is `server_name=` when given, else derived
from the target: the host part when it is a service name (``vault:50051``), else which of ``VAULT_ADDR`` /
``REGISTRY_ADDR`` in this process's environment the target is. A TLS target that names no known service is a
configuration error (`TlsConfigError`), never an unchecked connection.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tgm.grpc_runtime.tls import TlsConfigError, TlsFiles, required_tls_from_env
from tgm.observability.logging import request_id_var

REQUEST_ID_KEY = "x-request-id"
DEFAULT_DEADLINE_SECONDS = 5.0
FROM_ENV: Final = "env"
TlsChoice = TlsFiles | None | Literal["env"]
VAULT_SERVER_NAME: Final = "vault"
REGISTRY_SERVER_NAME: Final = "botregistry"
# Which environment variable addresses which service (for targets given as IP:port, e.g. on loopback).
SERVER_ADDR_ENV: Final = {"VAULT_ADDR": VAULT_SERVER_NAME, "REGISTRY_ADDR": REGISTRY_SERVER_NAME}
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}")

_server_logger = logging.getLogger(__name__)


def valid_request_id(value: object) -> str:
    """`value` when it is 1..64 of [A-Za-z0-9-], else a fresh id: a caller cannot inject text into logs/audit."""
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _resolve(tls: TlsChoice) -> TlsFiles | None:
    if isinstance(tls, TlsFiles) or tls is None:
        return tls
    return required_tls_from_env()


def expected_server_name(target: str) -> str | None:
    """The service name a TLS server at `target` must prove (see the module doc), or None when unknown."""
    host = target.rsplit(":", 1)[0] if ":" in target else target
    if host in SERVER_ADDR_ENV.values():
        return host
    names = {name for var, name in SERVER_ADDR_ENV.items() if os.environ.get(var, "").strip() == target}
    return names.pop() if len(names) == 1 else None


# gRPC waits longer and longer between reconnects to a peer that is down (up to 120 s by default): after a vault
# outage of 30 s its clients would go on failing fast for many seconds after it is back (issue 10). Capped here so a
# client sees a returning peer within about a second and a half.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 1500),
]


def _raw_channel(target: str, tls: TlsChoice, server_name: str | None = None) -> grpc.Channel:
    files = _resolve(tls)
    if files is None:
        return grpc.insecure_channel(target, options=RECONNECT_OPTIONS)
    name = server_name or expected_server_name(target)
    if not name:
        raise TlsConfigError(f"cannot tell which service {target} is: pass server_name= (e.g. 'vault')")
    options: list[tuple[str, str | int]] = [("grpc.ssl_target_name_override", name), *RECONNECT_OPTIONS]
    return grpc.secure_channel(target, files.channel_credentials(), options=options)


def open_channel(target: str, tls: TlsChoice = FROM_ENV, server_name: str | None = None) -> grpc.Channel:
    """A channel with request_id propagation and a default deadline on every call.

    mTLS when the TLS environment is set (or `tls` is given), else plaintext. Over TLS the server certificate
    must carry `server_name` (default: `expected_server_name(target)`), e.g. "vault" or "botregistry".
    """
    return grpc.intercept_channel(_raw_channel(target, tls, server_name), _DeadlineInterceptor())


class _DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any, request: Any) -> Any:
        metadata = list(client_call_details.metadata or [])
        if not any(key == REQUEST_ID_KEY for key, _ in metadata):  # an explicit request id wins
            metadata.append((REQUEST_ID_KEY, valid_request_id(request_id_var.get())))
        timeout = client_call_details.timeout if client_call_details.timeout is not None else DEFAULT_DEADLINE_SECONDS
        details = _ClientCallDetails(
            client_call_details.method,
            timeout,
            metadata,
            client_call_details.credentials,
            getattr(client_call_details, "wait_for_ready", None),
        )
        return continuation(details, request)


class _ClientCallDetails(grpc.ClientCallDetails):
    def __init__(
        self, method: str, timeout: float | None, metadata: Any, credentials: Any, wait_for_ready: bool | None
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready


class RequestIdServerInterceptor(grpc.ServerInterceptor):
    """Puts the caller's request_id into the logging context for the call."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        request_id = valid_request_id(dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_KEY))
        inner = handler.unary_unary

        method = str(handler_call_details.method).rsplit("/", 1)[-1]

        def with_request_id(request: Any, context: grpc.ServicerContext) -> Any:
            token = request_id_var.set(request_id)
            try:
                return inner(request, context)
            finally:
                # DEBUG: one line per call would cost more than most calls; on when following one request id.
                _server_logger.debug("grpc call served", extra={"method": method})
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            with_request_id,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class MetricsServerInterceptor(grpc.ServerInterceptor):
    """Counts every unary call (method, caller identity, status code) and times it, outermost, so refused and
    failed calls are counted too."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        from tgm.grpc_runtime.authorization import caller_identity
        from tgm.observability.metrics import GRPC_LATENCY, GRPC_REQUESTS

        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        inner = handler.unary_unary
        latency = GRPC_LATENCY.labels(method)

        def measured(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            failed = False
            try:
                return inner(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                read_code = getattr(context, "code", None)  # grpcio has it; its type stubs do not
                status = read_code() if callable(read_code) else None
                code = status.name if isinstance(status, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
                GRPC_REQUESTS.labels(method, caller_identity(context), code).inc()
                latency.observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(
    max_workers: int = 16, interceptors: tuple[grpc.ServerInterceptor, ...] = ()
) -> tuple[grpc.Server, health.HealthServicer]:
    """A thread-pool gRPC server with metrics and request_id logging (then `interceptors`) and the standard health
    service."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[MetricsServerInterceptor(), RequestIdServerInterceptor(), *interceptors],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


def add_server_port(
    server: grpc.Server, listen: str, tls: TlsChoice = FROM_ENV, require_client_auth: bool = True
) -> int:
    """Binds `listen` with mTLS (client certificates required by default) when TLS is configured, else plaintext.

    Returns the bound port, 0 when binding failed.
    """
    files = _resolve(tls)
    try:
        if files is None:
            return int(server.add_insecure_port(listen))
        return int(server.add_secure_port(listen, files.server_credentials(require_client_auth)))
    except RuntimeError:
        return 0


def mark_serving(health_servicer: health.HealthServicer, *service_names: str) -> None:
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Health answers NOT_SERVING first (load balancers stop sending), then in-flight calls get the grace."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_seconds).wait()


def start_server(
    add_servicer: Callable[[grpc.Server], None],
    service_name: str,
    listen: str,
    tls: TlsChoice = FROM_ENV,
    require_client_auth: bool = True,
) -> RunningServer:
    """Builds a server (`build_server`), lets `add_servicer` register the service, binds `listen` (port 0 picks a
    free one; `add_server_port`), starts it and reports SERVING. Raises OSError when `listen` cannot be bound."""
    server, health_servicer = build_server()
    add_servicer(server)
    port = add_server_port(server, listen, tls=tls, require_client_auth=require_client_auth)
    if port == 0:
        raise OSError(f"{service_name} cannot listen on {listen}")
    server.start()
    mark_serving(health_servicer, service_name)
    return RunningServer(server=server, health=health_servicer, port=port)


def wait_until_serving(
    target: str, timeout_seconds: float = 10.0, tls: TlsChoice = FROM_ENV, server_name: str | None = None
) -> bool:
    """Polls the health service until it answers SERVING or the deadline passes (over mTLS when configured)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        channel = _raw_channel(target, tls, server_name)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True
        except grpc.RpcError:
            time.sleep(0.1)
        finally:
            channel.close()
    return False
