"""HttpTelegramApi against a real HTTP server on loopback: error mapping, and no exception or log line ever
carries the token."""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tgm.domain.bots import BotToken
from tgm.domain.errors import DomainError, TelegramRequestFailed, TelegramUnavailable, TokenRejected
from tgm.domain.outbound import SendMessage
from tgm.domain.ports import WebhookRegistration
from tgm.telegram_http.client import HttpTelegramApi

# Module constants, not locals: tracebacks captured with locals must not see the raw token either.
SECRET_PART = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x"
RAW_TOKEN = f"5550001234:{SECRET_PART}"
TOKEN = BotToken(RAW_TOKEN)


@dataclass
class Seen:
    method: str
    path: str
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    hang_up: bool = False  # close the connection without answering
    delay: threading.Event | None = None  # wait for this before answering (a slow server)


Handler = Callable[[Seen], Answer]


@dataclass
class FakeTelegram:
    handler: Handler = field(default=lambda seen: Answer())
    # Off unless a test reads it: recorded paths hold the token, and the leak tests scan tracebacks with locals.
    record: bool = False
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)  # set at teardown: slow answers end


def ok(result: object = True) -> Answer:
    return Answer(body=json.dumps({"ok": True, "result": result}).encode())


def fail(status: int, description: str, **extra: object) -> Handler:
    body = json.dumps({"ok": False, "error_code": status, "description": description, **extra}).encode()
    return lambda seen: Answer(status, body)


def text(status: int, body: str) -> Handler:
    return lambda seen: Answer(status, body.encode(), content_type="text/html")


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()

    class Serve(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen = Seen("POST", self.path, self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if fake.record:
                fake.seen.append(seen)
            answer = fake.handler(seen)
            if answer.delay is not None:
                answer.delay.wait(10)
            if answer.hang_up:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: object) -> None:  # the request line holds the token
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()


def api_answering(telegram: FakeTelegram, handler: Handler, timeout_seconds: float = 10.0) -> HttpTelegramApi:
    telegram.handler = handler
    return HttpTelegramApi(telegram.url, timeout_seconds=timeout_seconds)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


def everything_said_about(error: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *map(repr, current.args)]
        parts += traceback.format_exception(current)
        parts += traceback.TracebackException.from_exception(current, capture_locals=True).format()
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def test_success_paths_and_what_is_sent(telegram: FakeTelegram) -> None:
    results = {
        "getMe": {
            "id": 5550001234,
            "is_bot": True,
            "first_name": "Shop",
            "username": "shop_bot",
            "can_manage_bots": True,
        },
        "sendMessage": {"message_id": 42, "date": 1, "chat": {"id": 77, "type": "private"}},
        "getManagedBotToken": "5550009999:" + "b" * 35,
    }
    telegram.record = True
    api = api_answering(telegram, lambda seen: ok(results.get(seen.path.rsplit("/", 1)[1], True)))
    info = api.get_me(TOKEN)
    assert (info.telegram_bot_id, info.username, info.first_name, info.can_manage_bots) == (
        5550001234, "shop_bot", "Shop", True,
    )  # fmt: skip
    sent = api.send_message(TOKEN, SendMessage(77, "hi", disable_web_page_preview=True))
    assert (sent.message_id, sent.chat_id) == (42, 77)
    api.set_webhook(TOKEN, WebhookRegistration("https://h/x", "sec", ["message"]))
    assert api.get_managed_bot_token(TOKEN, 5550009999).telegram_bot_id == 5550009999
    seen = telegram.seen
    assert seen[0].path == f"/bot{RAW_TOKEN}/getMe" and seen[0].method == "POST"
    assert json.loads(seen[1].body) == {"chat_id": 77, "text": "hi", "link_preview_options": {"is_disabled": True}}
    assert json.loads(seen[2].body) == {
        "url": "https://h/x", "secret_token": "sec", "allowed_updates": ["message"], "drop_pending_updates": True,
    }  # fmt: skip


@pytest.mark.parametrize("status", [401, 404])
def test_get_me_token_refusals_are_token_rejected(telegram: FakeTelegram, status: int) -> None:
    with pytest.raises(TokenRejected):
        api_answering(telegram, fail(status, "Unauthorized" if status == 401 else "Not Found")).get_me(TOKEN)


def test_revoked_token_on_send_is_token_rejected(telegram: FakeTelegram) -> None:
    with pytest.raises(TokenRejected):
        api_answering(telegram, fail(401, "Unauthorized")).send_message(TOKEN, SendMessage(1, "x"))


def test_bad_request_is_request_failed(telegram: FakeTelegram) -> None:
    with pytest.raises(TelegramRequestFailed) as caught:
        api_answering(telegram, fail(400, "Bad Request: chat not found")).send_message(TOKEN, SendMessage(1, "x"))
    assert caught.value.error_code == 400
    assert caught.value.description == "Bad Request: chat not found"
    assert caught.value.retry_after is None


def test_flood_answer_carries_retry_after(telegram: FakeTelegram) -> None:
    answer = fail(429, "Too Many Requests: retry after 7", parameters={"retry_after": 7})
    with pytest.raises(TelegramRequestFailed) as caught:
        api_answering(telegram, answer).send_message(TOKEN, SendMessage(1, "x"))
    assert (caught.value.error_code, caught.value.retry_after) == (429, 7)


def failing_api(kind: str, telegram: FakeTelegram) -> HttpTelegramApi:
    """An API whose calls fail in the way `kind` names."""
    if kind == "connect":
        return HttpTelegramApi(closed_port_url())
    if kind == "timeout":
        # The server answers only at teardown, long after the client gave up.
        return api_answering(telegram, lambda seen: Answer(delay=telegram.release), timeout_seconds=0.3)
    if kind == "protocol":
        return api_answering(telegram, lambda seen: Answer(hang_up=True))
    answers: dict[str, Handler] = {
        "502-html": text(502, "<html>Bad Gateway</html>"),
        "500-json": fail(500, "Internal Server Error"),
        "garbage": text(200, "not json"),
        "401": fail(401, "Unauthorized"),
        "echo": fail(400, f"Bad Request: echo {RAW_TOKEN}"),  # even a server that echoes the token
        "500-echo": lambda seen: Answer(500, seen.path.encode(), content_type="text/plain"),
    }
    return api_answering(telegram, answers[kind])


@pytest.mark.parametrize("kind", ["connect", "timeout", "protocol", "502-html", "500-json", "garbage"])
def test_network_and_server_failures_are_unavailable(telegram: FakeTelegram, kind: str) -> None:
    with pytest.raises(TelegramUnavailable):
        failing_api(kind, telegram).get_me(TOKEN)


@pytest.mark.parametrize("kind", ["connect", "timeout", "401", "echo", "500-echo"])
def test_no_exception_reveals_the_token(telegram: FakeTelegram, kind: str) -> None:
    api = failing_api(kind, telegram)
    for action in (lambda: api.get_me(TOKEN), lambda: api.send_message(TOKEN, SendMessage(1, "x"))):
        with pytest.raises(DomainError) as caught:
            action()
        said = everything_said_about(caught.value)
        assert SECRET_PART not in said
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        if not isinstance(caught.value, TelegramRequestFailed):  # its message format is the domain's
            assert "getMe" in str(caught.value) or "sendMessage" in str(caught.value)


def test_invalid_base_url_does_not_leak() -> None:
    api = HttpTelegramApi("ht!tp://bad host")
    with pytest.raises(TelegramUnavailable) as caught:
        api.get_me(TOKEN)
    assert SECRET_PART not in everything_said_about(caught.value)


def test_http_client_request_logs_are_redacted(telegram: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # configure_logging (run by other tests) quiets it
    api_answering(telegram, lambda seen: ok()).delete_message(TOKEN, 1, 2)
    assert any("POST" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3"))
    assert SECRET_PART not in caplog.text
    assert SECRET_PART not in repr(api_answering(telegram, fail(401, "x")))


def test_a_base_url_with_a_path_keeps_it(telegram: FakeTelegram) -> None:
    """A Bot API server mounted under a path (a reverse proxy's /tg/) gets every call under that path."""
    telegram.handler = lambda seen: ok({"message_id": 7})
    telegram.record = True
    HttpTelegramApi(telegram.url + "/tg/").send_message(TOKEN, SendMessage(5, "hi"))
    assert [seen.path for seen in telegram.seen] == [f"/tg/bot{TOKEN.reveal()}/sendMessage"]


def test_a_proxy_from_the_environment_still_carries_the_calls(
    telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, calls go through the proxy (absolute-form request line), not straight to the host."""
    telegram.handler = lambda seen: ok({"message_id": 7})
    telegram.record = True
    monkeypatch.setenv("HTTP_PROXY", telegram.url)
    monkeypatch.setenv("http_proxy", telegram.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    closed = closed_port_url()  # nothing listens there: only the proxy can answer
    HttpTelegramApi(closed).send_message(TOKEN, SendMessage(5, "hi"))
    assert [seen.path for seen in telegram.seen] == [f"{closed}/bot{TOKEN.reveal()}/sendMessage"]
