"""Prometheus metrics of every tgm service, declared in one place: their names are the operators' contract
(alert rules, dashboards). Counters are in-process and cheap (no I/O on the update's path); Prometheus scrapes them.

Labels are bounded on purpose: no bot id, user id or free text (with 10,000 bots a per-bot label would be
10,000 series per metric); per-bot detail is in the logs and `tgm queue`-style tools.

Each service exposes them on its own port: the gateway on its HTTP port (`/metrics`), the dispatcher, registry and
vault through `MetricsServer` (`/metrics`, and `/healthz` + `/readyz` for probes). A gateway with several uvicorn
workers uses prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by `serve`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# ---- gateway ----
WEBHOOK_UPDATES = Counter("tgm_webhook_updates", "Webhook calls answered by the gateway, by outcome", ["outcome"])

# ---- dispatcher ----
TELEGRAM_MESSAGES = Counter("telegram_messages", "Updates handled by the dispatcher, by message type", ["message_type"])
ACTOR_DURATION = Histogram(
    "tgm_actor_duration_seconds",
    "Time one Dramatiq message takes in a dispatcher actor (the seed's task duration)",
    ["actor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ACTOR_MESSAGES = Counter(
    "tgm_actor_messages", "Dramatiq messages processed, by actor and outcome", ["actor", "outcome"]
)
INBOUND_REFUSED = Counter(
    "tgm_inbound_refused",
    "Updates refused before any handler, by reason (rate_limit, cooldown, blocked, captcha)",
    ["reason"],
)
UPDATE_RETRIES = Counter("tgm_update_retries", "Handler failures that made a chat wait for a retry (Redis mode)")
DEAD_LETTERS = Counter("tgm_dead_letters", "Work moved to the dead letters after its last attempt", ["kind"])
TELEGRAM_API_ERRORS = Counter(
    "telegram_api_errors",
    "Failed Bot API calls, by method and error code (429 = flood control, 0 = no answer)",
    ["method", "error_code"],
)
EXTERNAL_API_ERRORS = Counter(
    "external_api_errors", "Failed external API calls of admins' API commands, by status code", ["status_code"]
)
# No labels: the tenant's URL or bot would be unbounded, and errors by status code are the counter above. A bucket
# edge at 3 s makes the alert's "p95 > 3 s" exact: more than 5 % of calls took longer than 3 s.
EXTERNAL_API_DURATION = Histogram(
    "external_api_request_duration_seconds",
    "Time one external API call of an admin's API command takes, from connecting to the end of the answer "
    "(failed and timed-out calls included; refused URLs and open breakers make no call)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)

# ---- gRPC servers (registry, vault) ----
GRPC_REQUESTS = Counter(
    "tgm_grpc_server_requests", "gRPC calls served, by method, caller and status", ["method", "caller", "code"]
)
GRPC_LATENCY = Histogram(
    "tgm_grpc_server_latency_seconds",
    "gRPC call latency on the server, by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# ---- vault ----
VAULT_CALLS = Counter("tgm_vault_calls", "Vault calls, by verb, caller and outcome", ["verb", "caller", "outcome"])
VAULT_KEY_ROTATION_DUE = Gauge(
    "tgm_vault_key_rotation_due", "1 when the vault's primary key is older than its rotation period (read at scrape)"
)

_MESSAGE_TYPES = ("photo", "document", "sticker", "voice", "video", "location", "contact")


def message_type(update: Mapping[str, Any]) -> str:
    """A bounded label for an update: command, text, callback_query, a media kind, edited_message, or other."""
    message = update.get("message")
    if isinstance(message, Mapping):
        text = message.get("text")
        if isinstance(text, str):
            return "command" if text.startswith("/") else "text"
        for kind in _MESSAGE_TYPES:
            if kind in message:
                return kind
        return "other_message"
    for kind in ("callback_query", "edited_message", "inline_query", "my_chat_member", "channel_post"):
        if kind in update:
            return kind
    return "other"


def exposition() -> tuple[bytes, str]:
    """The text format of this process's metrics, or of every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


Probe = Callable[[], Mapping[str, bool]]


class MetricsServer:
    """`/metrics`, `/healthz` (alive: `liveness` checks pass) and `/readyz` (`readiness` checks pass) on a small
    threaded HTTP server of its own, so a busy or stuck service still answers its probes and scrapes."""

    def __init__(self, host: str, port: int, liveness: Probe | None = None, readiness: Probe | None = None) -> None:
        probes = {"/healthz": liveness or _always_ok, "/readyz": readiness or liveness or _always_ok}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, content_type = exposition()
                    self._answer(200, body, content_type)
                elif path in probes:
                    checks = _run(probes[path])
                    ok = all(checks.values())
                    lines = "".join(f"{name}: {'ok' if good else 'failing'}\n" for name, good in checks.items())
                    self._answer(200 if ok else 503, (("ok\n" if ok else "failing\n") + lines).encode(), "text/plain")
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # scrapes every few seconds would drown the logs

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _always_ok() -> Mapping[str, bool]:
    return {"process": True}


def _run(probe: Probe) -> Mapping[str, bool]:
    try:
        return dict(probe())
    except Exception as error:  # a probe that crashes is a failing probe, never a crashed server
        logger.warning("health probe crashed", extra={"error": type(error).__name__})
        return {"probe": False}


def start_metrics_server(
    service: str, host: str, port: int, liveness: Probe | None = None, readiness: Probe | None = None
) -> MetricsServer | None:
    """Started when `port` is set (> 0); None when metrics are off for this process."""
    if port <= 0:
        logger.info(f"{service}: metrics off (no metrics port set)")
        return None
    server = MetricsServer(host, port, liveness, readiness).start()
    logger.info(f"{service}: metrics and probes on http://{host}:{server.port}/metrics")
    return server


def all_alive(threads: Iterable[threading.Thread]) -> bool:
    listed = list(threads)
    return bool(listed) and all(thread.is_alive() for thread in listed)


class CachedGaugeCollector:
    """One gauge whose value is computed by `read` at scrape time, at most every `cache_seconds` (a database count
    must not run once per scrape of every Prometheus replica). A failing read yields no sample, never a failed
    scrape."""

    def __init__(
        self,
        name: str,
        documentation: str,
        read: Callable[[], float],
        cache_seconds: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name, self._documentation, self._read = name, documentation, read
        self._cache_seconds, self._monotonic = cache_seconds, monotonic
        self._value: float | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Any]:
        """Names only: without it, registering would call `collect` (a read, cached before anything happened)."""
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self._name, self._documentation)
        with self._lock:
            if self._monotonic() - self._read_at >= self._cache_seconds:
                try:
                    self._value = float(self._read())
                except Exception as error:
                    logger.warning("gauge unavailable", extra={"metric": self._name, "error": type(error).__name__})
                    self._value = None
                self._read_at = self._monotonic()
            value = self._value
        if value is not None:
            family.add_metric([], value)
        return [family]


class QueueSizeCollector:
    """`tgm_queue_size{queue}`: messages waiting in each Dramatiq queue (and its delayed queue), read from Redis when
    Prometheus scrapes — nothing is counted on the update's path."""

    def __init__(self, client: Any, queues: Iterable[str], namespace: str = "dramatiq") -> None:
        self._client = client
        self._keys = {queue: (f"{namespace}:{queue}", f"{namespace}:{queue}.DQ") for queue in queues}

    def describe(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily("tgm_queue_size", "Messages waiting in a dispatcher queue", labels=["queue"])]

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "tgm_queue_size", "Messages waiting in a dispatcher queue (ready + delayed)", labels=["queue"]
        )
        try:
            depths = self.depths()
        except Exception as error:  # Redis down: no sample (the readiness probe says why), never a failed scrape
            logger.warning("queue size unavailable", extra={"error": type(error).__name__})
            return [family]
        for queue, (ready, delayed) in depths.items():
            family.add_metric([queue], float(ready + delayed))
        return [family]

    def depths(self) -> dict[str, tuple[int, int]]:
        """Ready and delayed messages per queue, in one round trip (also what `tgm queue` prints)."""
        pipe = self._client.pipeline(transaction=False)
        for ready, delayed in self._keys.values():
            pipe.llen(ready)
            pipe.llen(delayed)
        counts = pipe.execute()
        return {queue: (int(counts[2 * i]), int(counts[2 * i + 1])) for i, queue in enumerate(self._keys)}
