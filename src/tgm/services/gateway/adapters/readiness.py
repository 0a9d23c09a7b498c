"""Readiness probes for /readyz: each answers True when its dependency is reachable."""

from __future__ import annotations

from typing import Protocol

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


class Pinger(Protocol):
    """What the broker probe needs of a Redis client."""

    def ping(self) -> object: ...


class BrokerProbe:
    """The broker's Redis answers PING; an in-process broker (no Redis: embedded mode) is always reachable.
    The container passes the broker's Redis client on Redis, or None in memory (a Selector on `backend`)."""

    def __init__(self, redis_client: Pinger | None) -> None:
        self.name = "broker"
        self._client = redis_client

    def __call__(self) -> bool:
        if self._client is None:
            return True
        try:
            return bool(self._client.ping())
        except Exception:
            return False
