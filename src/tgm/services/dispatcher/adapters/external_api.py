"""ExternalApi over httpx with one pybreaker circuit breaker per (bot, API host), its state in Redis
(shared by every worker process) or in memory (embedded mode).

- SSRF (src/tgm/domain/url_policy.py): http(s) only, no credentials; the host is resolved here, every address
  it resolves to must be public, and the connection goes to the address that was checked (the URL's host
  is replaced by the IP; the Host header and the TLS SNI/certificate check keep the name), so a DNS answer
  that changes between the check and the connect cannot point the call inside. Redirects are never
  followed (a 3xx is a failure); proxies from the environment are ignored.
- Every call has a deadline: connect/read timeouts and a cap on the whole body read (streamed, at most
  MAX_BODY_BYTES kept).
- The breaker's lock is never held across I/O: check the shared state, make the request, record the
  outcome. 5xx, 429, timeouts and network errors count against the breaker; other answers reset it (the
  API is up) and 4xx/3xx are not retried. Keyed by (bot, host): one tenant's failing calls cannot open
  the breaker for another tenant's bots.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pybreaker

from tgm.domain.url_policy import IpAddress, UrlRefused, check_address, check_url
from tgm.domain.use_cases.run_api_call import CircuitOpen, ExternalApiFailed
from tgm.observability.metrics import EXTERNAL_API_DURATION, EXTERNAL_API_ERRORS

MAX_BODY_BYTES = 64 * 1024
Resolver = Callable[[str, int], list[str]]


class PermanentApiFailure(ExternalApiFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class RefusedUrl(PermanentApiFailure):
    """The SSRF policy refused the URL or its address: no request was made (the breaker is not told)."""


RESOLVE_TIMEOUT_SECONDS = 3.0
# getaddrinfo has no timeout of its own: lookups run here and the caller waits at most RESOLVE_TIMEOUT_SECONDS (a
# stuck lookup keeps its thread, so at most this many can be stuck before new ones queue).
_RESOLVERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def resolve(host: str, port: int, timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS) -> list[str]:
    lookup = _RESOLVERS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=timeout_seconds)
    except FuturesTimeout:
        lookup.cancel()
        raise TimeoutError(f"DNS lookup took longer than {timeout_seconds:g}s") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class SharedBreaker:
    """A pybreaker CircuitBreaker whose shared storage is read and written around the call, never locked
    across it (pybreaker's own `call` holds a per-breaker lock for the whole request)."""

    def __init__(self, breaker: pybreaker.CircuitBreaker, storage: pybreaker.CircuitBreakerStorage) -> None:
        self.breaker = breaker
        self.storage = storage

    def refuses(self) -> bool:
        if self.storage.state != pybreaker.STATE_OPEN:
            return False
        opened_at = self.storage.opened_at
        timeout = timedelta(seconds=self.breaker.reset_timeout)
        return opened_at is None or datetime.now(UTC) < opened_at + timeout

    def before_call(self) -> None:
        """Raises CircuitOpen while open; after the timeout the breaker half-opens and the call is a trial."""
        if self.storage.state == pybreaker.STATE_OPEN:
            if self.refuses():
                raise CircuitOpen("the API's circuit breaker is open")
            self.breaker.half_open()

    def succeeded(self) -> None:
        self.storage.reset_counter()
        if self.storage.state != pybreaker.STATE_CLOSED:
            self.breaker.close()

    def failed(self) -> None:
        self.storage.increment_counter()
        state = self.storage.state
        if state == pybreaker.STATE_HALF_OPEN or (
            state == pybreaker.STATE_CLOSED and self.storage.counter >= self.breaker.fail_max
        ):
            self.breaker.open()


class HttpExternalApi:
    def __init__(
        self,
        redis_client: Any | None,
        fail_max: int = 5,
        reset_timeout_seconds: float = 60.0,
        namespace: str = "tgm:breaker",
        allow_private: bool = False,
        resolver: Resolver = resolve,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._redis = redis_client
        self._fail_max = fail_max
        self._reset_timeout = reset_timeout_seconds
        self._namespace = namespace
        self._allow_private = allow_private
        self._resolve = resolver
        self._max_body = max_body_bytes
        self._breakers: dict[str, SharedBreaker] = {}
        self._lock = threading.Lock()

    @staticmethod
    def breaker_key(scope: str, url: str) -> str:
        parts = urlsplit(url)
        return f"{scope}:{parts.scheme}://{parts.netloc}".lower()

    def breaker(self, url: str, scope: str = "") -> SharedBreaker:
        key = self.breaker_key(scope, url)
        with self._lock:
            shared = self._breakers.get(key)
            if shared is None:
                storage: pybreaker.CircuitBreakerStorage
                if self._redis is not None:
                    storage = pybreaker.CircuitRedisStorage(
                        pybreaker.STATE_CLOSED, self._redis, namespace=f"{self._namespace}:{key}"
                    )
                else:
                    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self._fail_max,
                    reset_timeout=self._reset_timeout,
                    state_storage=storage,
                    name=key,
                    throw_new_error_on_trip=False,
                )
                shared = self._breakers[key] = SharedBreaker(breaker, storage)
            return shared

    def is_open(self, url: str, scope: str = "") -> bool:
        try:
            check_url(url, self._allow_private)
        except UrlRefused:
            return False
        return self.breaker(url, scope).refuses()

    def call(
        self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None, scope: str = ""
    ) -> str:
        try:
            check_url(url, self._allow_private)
        except UrlRefused as exc:
            raise RefusedUrl(str(exc)) from None
        shared = self.breaker(url, scope)
        shared.before_call()
        try:
            body = self._request(url, method.upper(), timeout_seconds, payload)
        except RefusedUrl:
            raise
        except PermanentApiFailure:
            shared.succeeded()  # the API answered: it is up, the request is wrong
            raise
        except ExternalApiFailed:
            shared.failed()
            raise
        except Exception as exc:
            shared.failed()
            raise ExternalApiFailed(f"request failed ({type(exc).__name__})") from exc
        shared.succeeded()
        return body

    def _pinned_address(self, host: str, port: int) -> IpAddress:
        try:
            resolved = self._resolve(host, port)
        except OSError as exc:
            raise ExternalApiFailed(f"the host does not resolve ({type(exc).__name__})") from exc
        if not resolved:
            raise ExternalApiFailed("the host does not resolve")
        try:
            addresses = [check_address(raw, self._allow_private) for raw in resolved]
        except UrlRefused as exc:
            raise RefusedUrl(str(exc)) from None
        return addresses[0]

    def _request(self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None) -> str:
        deadline = time.monotonic() + timeout_seconds
        original = httpx.URL(url)
        https = original.scheme == "https"
        host = original.host
        address = self._pinned_address(host, original.port or (443 if https else 80))
        target = original.copy_with(host=str(address))
        headers = {"Host": original.netloc.decode("ascii"), "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": host} if https and host != str(address) else {}
        try:
            with (
                EXTERNAL_API_DURATION.time(),  # observed however the call ends: a timeout is a slow call too
                httpx.Client(timeout=timeout_seconds, follow_redirects=False, trust_env=False) as client,
            ):
                if method == "GET":
                    request = client.build_request(
                        "GET", target, params=payload or {}, headers=headers, extensions=extensions
                    )
                else:
                    request = client.build_request(
                        method, target, json=payload or {}, headers=headers, extensions=extensions
                    )
                response = client.send(request, stream=True)
                try:
                    return self._read(response, deadline)
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            EXTERNAL_API_ERRORS.labels("timeout").inc()
            raise ExternalApiFailed("timed out") from exc
        except httpx.HTTPError as exc:
            EXTERNAL_API_ERRORS.labels("network").inc()
            raise ExternalApiFailed(f"request failed ({type(exc).__name__})") from exc

    def _read(self, response: httpx.Response, deadline: float) -> str:
        status = response.status_code
        if status >= 300:
            EXTERNAL_API_ERRORS.labels(str(status)).inc()
        if status >= 500 or status == 429:
            raise ExternalApiFailed(f"HTTP {status}")
        if status >= 300:
            raise PermanentApiFailure(f"HTTP {status}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise PermanentApiFailure("compressed answers are not accepted")
        kept = bytearray()
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise ExternalApiFailed("timed out")
            kept += chunk[: self._max_body - len(kept)]
            if len(kept) >= self._max_body:
                break  # the rest is never read; closing the response drops the connection
        return bytes(kept).decode("utf-8", errors="replace")
