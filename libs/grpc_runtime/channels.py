"""gRPC plumbing shared by the services: channels, request_id propagation, deadlines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from libs.observability.logging import request_id_var

REQUEST_ID_KEY = "x-request-id"
DEFAULT_DEADLINE_SECONDS = 5.0


def open_channel(target: str) -> grpc.Channel:
    """An insecure loopback channel with request_id propagation and a default deadline."""
    channel = grpc.insecure_channel(target)
    return grpc.intercept_channel(channel, _DeadlineInterceptor())


class _DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any, request: Any) -> Any:
        request_id = request_id_var.get() or uuid.uuid4().hex
        metadata = list(client_call_details.metadata or [])
        metadata.append((REQUEST_ID_KEY, request_id))
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
        request_id = dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_KEY) or uuid.uuid4().hex
        inner = handler.unary_unary

        def with_request_id(request: Any, context: grpc.ServicerContext) -> Any:
            token = request_id_var.set(str(request_id))
            try:
                return inner(request, context)
            finally:
                request_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            with_request_id,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(max_workers: int = 16) -> tuple[grpc.Server, health.HealthServicer]:
    """A thread-pool gRPC server with request_id logging and the standard health service."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[RequestIdServerInterceptor()],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


def mark_serving(health_servicer: health.HealthServicer, *service_names: str) -> None:
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def wait_until_serving(target: str, timeout_seconds: float = 10.0) -> bool:
    """Polls the health service until it answers SERVING or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        channel = grpc.insecure_channel(target)
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
