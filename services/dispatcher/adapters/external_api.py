"""ExternalApi over httpx with one pybreaker CircuitBreaker per API host, its state in Redis (shared by
every worker process) or in memory (embedded mode).

Every call has a timeout; redirects are never followed (a 3xx is a failure); only http(s) URLs are
called. 5xx, 429, timeouts and network errors count against the breaker; other 4xx answers do not
(the API is up, the request is wrong) and are not retried.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pybreaker

from libs.domain.external_api import CircuitOpen, ExternalApiFailed, is_allowed_url

MAX_BODY_BYTES = 64 * 1024


class PermanentApiFailure(ExternalApiFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class HttpExternalApi:
    def __init__(
        self,
        redis_client: Any | None,
        fail_max: int = 5,
        reset_timeout_seconds: float = 60.0,
        namespace: str = "tgm:breaker",
    ) -> None:
        self._redis = redis_client
        self._fail_max = fail_max
        self._reset_timeout = reset_timeout_seconds
        self._namespace = namespace
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _api_of(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    def breaker(self, url: str) -> pybreaker.CircuitBreaker:
        api = self._api_of(url)
        with self._lock:
            breaker = self._breakers.get(api)
            if breaker is None:
                storage: pybreaker.CircuitBreakerStorage
                if self._redis is not None:
                    storage = pybreaker.CircuitRedisStorage(
                        pybreaker.STATE_CLOSED, self._redis, namespace=f"{self._namespace}:{api}"
                    )
                else:
                    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self._fail_max,
                    reset_timeout=self._reset_timeout,
                    exclude=[PermanentApiFailure],
                    state_storage=storage,
                    name=api,
                    throw_new_error_on_trip=False,
                )
                self._breakers[api] = breaker
            return breaker

    def is_open(self, url: str) -> bool:
        if not is_allowed_url(url):
            return False
        breaker = self.breaker(url)
        if breaker.current_state != pybreaker.STATE_OPEN:
            return False
        opened_at = breaker._state_storage.opened_at  # pybreaker exposes no getter
        return opened_at is None or datetime.now(UTC) < opened_at + timedelta(seconds=self._reset_timeout)

    def call(self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None) -> str:
        if not is_allowed_url(url):
            raise PermanentApiFailure("only http(s) URLs are called")
        try:
            result: str = self.breaker(url).call(self._request, url, method.upper(), timeout_seconds, payload)
        except pybreaker.CircuitBreakerError as exc:
            raise CircuitOpen("the API's circuit breaker is open") from exc
        return result

    @staticmethod
    def _request(url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None) -> str:
        try:
            with httpx.Client(timeout=timeout_seconds, follow_redirects=False) as client:
                if method == "GET":
                    response = client.get(url, params=payload or {})
                else:
                    response = client.request(method, url, json=payload or {})
        except httpx.TimeoutException as exc:
            raise ExternalApiFailed("timed out") from exc
        except httpx.HTTPError as exc:
            raise ExternalApiFailed(f"request failed ({type(exc).__name__})") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise ExternalApiFailed(f"HTTP {status}")
        if status >= 300:
            raise PermanentApiFailure(f"HTTP {status}")
        return response.content[:MAX_BODY_BYTES].decode("utf-8", errors="replace")
