"""A minimal HTTP/1.1 client for webhook POSTs: keep-alive connections, one request per connection at a time.

General-purpose clients spent most of the emulator's CPU per webhook request (aiohttp) or degraded with queued
requests (httpx's pool); this one writes the request bytes itself and parses the answer with httptools. The
caller (the per-bot gate) bounds how many requests are in flight, so a pool never queues: it reuses an idle
connection or opens one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httptools

_URL_SAFE = "".join(chr(c) for c in range(33, 127))  # printable ASCII stays; spaces, CR/LF and non-ASCII are %-quoted


class ConnectFailed(Exception):
    """The TCP (or TLS) connection could not be made."""


class RequestFailed(Exception):
    """The connection broke before a whole answer arrived."""


@dataclass
class HookResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    head: bytes  # "POST /path HTTP/1.1\r\nHost: ...\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[HookResponse] | None = None
        self._reason = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._got_bytes = False
        self._headers_done = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RequestFailed(f"bad answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._headers_done and not {"content-length", "transfer-encoding"} & self._headers.keys():
                self.on_message_complete()  # an answer delimited by the connection's end
            else:
                waiter.set_exception(RequestFailed("connection closed before the answer ended"))

    # -- httptools callbacks --

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            reason = self._reason.decode("latin-1")
            waiter.set_result(HookResponse(status, reason, self._headers, b"".join(self._body)))
        if not self._parser.should_keep_alive():
            self.close()

    # -- use --

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    @property
    def reused_unanswered(self) -> bool:
        """Nothing came back on this request: a reused connection the server had already closed."""
        return not self._got_bytes

    async def request(self, data: bytes) -> HookResponse:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._reason, self._headers, self._body = b"", {}, []
        self._got_bytes = self._headers_done = False
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class WebhookClient:
    """Keep-alive connections to the webhook hosts of one bot."""

    connect_timeout: float = 10.0
    _idle: dict[tuple[str, str, int], list[_Connection]] = field(default_factory=dict)
    _targets: dict[str, _Target] = field(default_factory=dict)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("unsupported webhook URL")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = parts.hostname
            shown = f"[{host}]" if ":" in host else host
            host_header = shown if parts.port is None else f"{shown}:{port}"
            path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_URL_SAFE)
            head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode("latin-1")
            if len(self._targets) > 64:  # webhooks change rarely; keep the cache small anyway
                self._targets.clear()
            target = self._targets[url] = _Target(parts.scheme, host, port, head)
        return target

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = ssl.create_default_context() if target.scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, target.host, target.port, ssl=tls, server_hostname=target.host if tls else None
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        return connection

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HookResponse:
        """POSTs `body`; raises ConnectFailed, RequestFailed or TimeoutError (the caller sets the deadline)."""
        target = self._target(url)
        key = (target.scheme, target.host, target.port)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        data = b"%s%sContent-Length: %d\r\n\r\n%s" % (target.head, extra.encode("latin-1"), len(body), body)
        idle = self._idle.setdefault(key, [])
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            try:
                response = await self._exchange(connection, data)
            except RequestFailed:
                if connection.reused_unanswered:
                    continue  # the server closed it while idle: try another or a new connection
                raise
            self._release(key, connection)
            return response
        connection = await self._connect(target)
        response = await self._exchange(connection, data)
        self._release(key, connection)
        return response

    async def _exchange(self, connection: _Connection, data: bytes) -> HookResponse:
        done = False
        try:
            response = await connection.request(data)
            done = True
            return response
        finally:
            if not done:  # failed or cancelled half-way: the connection's state is unknown
                connection.close()

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        if not connection.closed:
            self._idle.setdefault(key, []).append(connection)

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                with contextlib.suppress(Exception):
                    connection.close()
        self._idle.clear()
