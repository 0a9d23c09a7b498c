"""Readiness probes for /readyz: each answers True when its dependency is reachable."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class Probe(Protocol):
    name: str

    def __call__(self) -> bool: ...


class GrpcHealthProbe:
    """The standard gRPC health check of a peer (the registry)."""

    def __init__(self, name: str, channel: grpc.Channel, timeout_seconds: float = 1.0) -> None:
        self.name = name
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._timeout = timeout_seconds

    def __call__(self) -> bool:
        try:
            reply = self._stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self._timeout)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class BrokerProbe:
    """Redis brokers answer PING; in-process brokers are always reachable."""

    def __init__(self, broker: Any) -> None:
        self.name = "broker"
        self._broker = broker

    def __call__(self) -> bool:
        client = getattr(self._broker, "client", None)
        if client is None:
            return True
        try:
            return bool(client.ping())
        except Exception:
            return False
