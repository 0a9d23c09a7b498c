"""HttpTelegramApi: error mapping, and no exception or log line ever carries the token."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable

import httpx
import pytest

from libs.domain.bots import BotToken
from libs.domain.errors import DomainError, TelegramRequestFailed, TelegramUnavailable, TokenRejected
from libs.domain.ports import WebhookRegistration
from libs.telegram_http.client import HttpTelegramApi

# Module constants, not locals: tracebacks captured with locals must not see the raw token either.
SECRET_PART = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x"
RAW_TOKEN = f"5550001234:{SECRET_PART}"
TOKEN = BotToken(RAW_TOKEN)


def api_answering(handler: Callable[[httpx.Request], httpx.Response]) -> HttpTelegramApi:
    return HttpTelegramApi("https://api.telegram.test", transport=httpx.MockTransport(handler))


def fail(status: int, description: str, **extra: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(
        status, json={"ok": False, "error_code": status, "description": description, **extra}
    )


def raising(error: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"boom while calling {request.url}", request=request)  # the message holds the URL

    return handler


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


def test_success_paths_and_what_is_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        method = request.url.path.rsplit("/", 1)[1]
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
        return httpx.Response(200, json={"ok": True, "result": results.get(method, True)})

    api = api_answering(handler)
    info = api.get_me(TOKEN)
    assert (info.telegram_bot_id, info.username, info.first_name, info.can_manage_bots) == (
        5550001234, "shop_bot", "Shop", True,
    )  # fmt: skip
    sent = api.send_message(TOKEN, 77, "hi", disable_web_page_preview=True)
    assert (sent.message_id, sent.chat_id) == (42, 77)
    api.set_webhook(TOKEN, WebhookRegistration("https://h/x", "sec", ["message"]))
    assert api.get_managed_bot_token(TOKEN, 5550009999).telegram_bot_id == 5550009999
    assert seen[0].url.path == f"/bot{RAW_TOKEN}/getMe" and seen[0].method == "POST"
    assert json.loads(seen[1].content) == {"chat_id": 77, "text": "hi", "link_preview_options": {"is_disabled": True}}
    assert json.loads(seen[2].content) == {
        "url": "https://h/x", "secret_token": "sec", "allowed_updates": ["message"], "drop_pending_updates": True,
    }  # fmt: skip


@pytest.mark.parametrize("status", [401, 404])
def test_get_me_token_refusals_are_token_rejected(status: int) -> None:
    with pytest.raises(TokenRejected):
        api_answering(fail(status, "Unauthorized" if status == 401 else "Not Found")).get_me(TOKEN)


def test_revoked_token_on_send_is_token_rejected() -> None:
    with pytest.raises(TokenRejected):
        api_answering(fail(401, "Unauthorized")).send_message(TOKEN, 1, "x")


def test_bad_request_is_request_failed() -> None:
    with pytest.raises(TelegramRequestFailed) as caught:
        api_answering(fail(400, "Bad Request: chat not found")).send_message(TOKEN, 1, "x")
    assert caught.value.error_code == 400
    assert caught.value.description == "Bad Request: chat not found"
    assert caught.value.retry_after is None


def test_flood_answer_carries_retry_after() -> None:
    answer = fail(429, "Too Many Requests: retry after 7", parameters={"retry_after": 7})
    with pytest.raises(TelegramRequestFailed) as caught:
        api_answering(answer).send_message(TOKEN, 1, "x")
    assert (caught.value.error_code, caught.value.retry_after) == (429, 7)


@pytest.mark.parametrize(
    "handler",
    [
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
        raising(httpx.RemoteProtocolError),
        lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"),
        fail(500, "Internal Server Error"),
        lambda request: httpx.Response(200, text="not json"),
    ],
    ids=["connect", "timeout", "protocol", "502-html", "500-json", "garbage"],
)
def test_network_and_server_failures_are_unavailable(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    with pytest.raises(TelegramUnavailable):
        api_answering(handler).get_me(TOKEN)


@pytest.mark.parametrize(
    "handler",
    [
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
        fail(401, "Unauthorized"),
        fail(400, f"Bad Request: echo {RAW_TOKEN}"),  # even a server that echoes the token
        lambda request: httpx.Response(500, text=str(request.url)),
    ],
    ids=["connect", "timeout", "401", "echo", "500-echo"],
)
def test_no_exception_reveals_the_token(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    api = api_answering(handler)
    for action in (lambda: api.get_me(TOKEN), lambda: api.send_message(TOKEN, 1, "x")):
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


def test_httpx_request_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_answering(lambda request: httpx.Response(200, json={"ok": True, "result": True})).delete_message(TOKEN, 1, 2)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert SECRET_PART not in caplog.text
    assert SECRET_PART not in repr(api_answering(fail(401, "x")))
