"""Error tracking (issue 9): with SENTRY_DSN set, what reaches Sentry's transport is redacted as the logs are —
exception messages, breadcrumbs (log records and outbound URLs), extra, contexts, request data — and frame local
variables and request headers and bodies are not sent at all. No SENTRY_DSN: no client, no transport. The vault
sends nothing unless SENTRY_VAULT_ENABLED is on too."""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler
from sentry_sdk.transport import Transport

from tgm.config.deployment import DeploymentSettings
from tgm.domain.redaction import REDACTED
from tgm.observability import error_tracking
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging

REPO = Path(__file__).resolve().parents[2]
SECRET = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x"
TOKEN = f"5550001234:{SECRET}"
REDIS_PASSWORD = "hunter2-redis-password"
REDIS_URL = f"redis://dispatcher:{REDIS_PASSWORD}@redis:6379/0"
WEBHOOK_SECRET = "webhook-secret-header-value-0123456789"
LEAKS = (SECRET, TOKEN, REDIS_PASSWORD, WEBHOOK_SECRET)


class CapturingTransport(Transport):
    """Keeps every envelope the client would send; no network."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def payload(self) -> str:
        return b"".join(envelope.serialize() for envelope in self.envelopes).decode()

    def events(self) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "event" and item.payload.json is not None
        ]


def _deployment(**overrides: Any) -> DeploymentSettings:
    values: dict[str, Any] = {
        "app_env": "prod",
        "sentry_dsn": "https://public@sentry.example.org/1",
        "sentry_release": "tgm@9.9.9-test",
    }
    return DeploymentSettings(**(values | overrides))


def _stop_error_tracking() -> None:
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_global_scope().clear()
    sentry_sdk.get_isolation_scope().clear()
    root = logging.getLogger()
    sentry_handlers = (EventHandler, BreadcrumbHandler)
    root.handlers[:] = [handler for handler in root.handlers if not isinstance(handler, sentry_handlers)]


@pytest.fixture
def sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CapturingTransport]]:
    """Starts a real client on a capturing transport (`locals_on`: as if someone turned frame locals on); stops it
    after the test so that no other test sees a client."""
    logger = logging.getLogger("tests.error_tracking")
    level = logger.level
    logger.setLevel(logging.INFO)  # the log handlers only see records the logger lets through

    def start(*, locals_on: bool = False, **overrides: Any) -> CapturingTransport:
        if locals_on:
            options = error_tracking.client_options
            monkeypatch.setattr(
                error_tracking, "client_options", lambda d: options(d) | {"include_local_variables": True}
            )
        transport = CapturingTransport()
        assert configure_error_tracking("dispatcher", deployment=_deployment(**overrides), transport=transport)
        return transport

    try:
        yield start
    finally:
        logger.setLevel(level)
        _stop_error_tracking()


def _fail_with(token: str, redis_url: str) -> None:
    bot_token = token  # a frame local holding the token
    raise RuntimeError(f"sendMessage failed for bot{bot_token} after {redis_url} went away")


def _raise_and_capture(logger: logging.Logger) -> None:
    logger.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)  # a breadcrumb from the logging integration
    sentry_sdk.add_breadcrumb(category="redis", message=f"connecting to {REDIS_URL}", data={"token": TOKEN})
    sentry_sdk.set_extra("last_url", f"https://api.telegram.org/bot{TOKEN}/sendMessage")
    sentry_sdk.set_context("bot", {"token": TOKEN, "redis": REDIS_URL})
    try:
        _fail_with(TOKEN, REDIS_URL)
    except RuntimeError:
        sentry_sdk.capture_exception()


def test_an_exception_holding_a_token_reaches_the_transport_redacted(sentry: Callable[..., CapturingTransport]) -> None:
    transport = sentry()
    _raise_and_capture(logging.getLogger("tests.error_tracking"))
    sentry_sdk.flush()
    payload = transport.payload()
    for leak in LEAKS:
        assert leak not in payload
    [event] = transport.events()
    # Each place is still there, masked: redaction, not loss.
    assert event["exception"]["values"][0]["value"] == (
        f"sendMessage failed for bot{REDACTED} after redis://dispatcher:{REDACTED}@redis:6379/0 went away"
    )
    crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
    assert f"calling https://api.telegram.org/bot{REDACTED}/getMe" in crumbs
    assert f"connecting to redis://dispatcher:{REDACTED}@redis:6379/0" in crumbs
    assert event["extra"]["last_url"] == f"https://api.telegram.org/bot{REDACTED}/sendMessage"
    assert event["contexts"]["bot"]["token"] == REDACTED
    # Frame locals are not collected at all.
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames and not any("vars" in frame for frame in frames)
    # From the settings: APP_ENV and SENTRY_RELEASE; the process's service as a tag.
    assert event["environment"] == "prod" and event["release"] == "tgm@9.9.9-test"
    assert event["tags"]["service"] == "dispatcher"


def test_frame_locals_are_redacted_even_when_turned_on(sentry: Callable[..., CapturingTransport]) -> None:
    transport = sentry(locals_on=True)
    _raise_and_capture(logging.getLogger("tests.error_tracking"))
    sentry_sdk.flush()
    payload = transport.payload()
    for leak in LEAKS:
        assert leak not in payload
    [event] = transport.events()
    frame = next(f for f in event["exception"]["values"][0]["stacktrace"]["frames"] if f["function"] == "_fail_with")
    assert REDACTED in frame["vars"]["bot_token"] and REDACTED in frame["vars"]["redis_url"]


@pytest.fixture
def service_logging() -> Iterator[None]:
    """configure_logging as a service calls it, undone afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    try:
        yield
    finally:
        root.handlers[:], _, sys.excepthook, threading.excepthook = saved
        root.setLevel(saved[1])
        logging.captureWarnings(False)


@pytest.mark.usefixtures("service_logging")
def test_an_error_log_record_becomes_a_redacted_event_with_its_stack_trace(
    sentry: Callable[..., CapturingTransport],
) -> None:
    """Sentry reads log records before the logs' redacting handler does (so that it gets the exception, not its
    text): its event is redacted on its own."""
    transport = sentry()
    # The redacting handler in place, as in a service, which calls both again (the gateway's worker factory).
    configure_logging("test")
    configure_error_tracking("dispatcher", deployment=_deployment())
    try:
        _fail_with(TOKEN, REDIS_URL)
    except RuntimeError:
        logging.getLogger("tests.error_tracking").exception(
            "Bot API call failed: %s", f"https://api.telegram.org/bot{TOKEN}/getMe", extra={"redis": REDIS_URL.encode()}
        )
    sentry_sdk.flush()
    for leak in LEAKS:
        assert leak not in transport.payload()
    [event] = transport.events()
    assert event["logentry"]["formatted"] == f"Bot API call failed: https://api.telegram.org/bot{REDACTED}/getMe"
    assert event["extra"]["redis"] == f"redis://dispatcher:{REDACTED}@redis:6379/0"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError" and REDACTED in exception["value"]
    assert exception["stacktrace"]["frames"][-1]["function"] == "_fail_with"


def test_request_headers_and_bodies_are_not_sent(sentry: Callable[..., CapturingTransport]) -> None:
    transport = sentry()
    sentry_sdk.capture_event(
        {
            "message": "webhook failed",
            "request": {
                "method": "POST",
                "url": f"https://tgm.example.org/webhook/abc?t={TOKEN}",
                "headers": {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                "cookies": {"session": WEBHOOK_SECRET},
                "data": {"message": {"text": f"my token {TOKEN}"}},
                "query_string": f"t={TOKEN}",
            },
        }
    )
    sentry_sdk.flush()
    for leak in LEAKS:
        assert leak not in transport.payload()
    [event] = transport.events()
    assert event["request"] == {"method": "POST", "url": f"https://tgm.example.org/webhook/abc?t={REDACTED}"}


def test_outbound_calls_are_breadcrumbs_without_their_query_string(
    sentry: Callable[..., CapturingTransport], collector: tuple[str, list[bytes]]
) -> None:
    """An admin's API URL may carry an API key in its query, which redaction cannot recognise: never sent."""
    transport = sentry()
    port = collector[0].rsplit(":", 1)[1].split("/")[0]
    url = f"http://127.0.0.1:{port}/bot{TOKEN}/getMe"
    with urllib.request.urlopen(f"{url}?api_key=query-secret-0123456789#frag") as answer:  # the stdlib integration
        assert answer.status == 200
    sentry_sdk.capture_message("after the call")
    sentry_sdk.flush()
    assert "query-secret-0123456789" not in transport.payload() and SECRET not in transport.payload()
    [event] = transport.events()
    [crumb] = [crumb for crumb in event["breadcrumbs"]["values"] if crumb.get("category") == "httplib"]
    assert crumb["data"]["url"] == f"http://127.0.0.1:{port}/bot{REDACTED}/getMe"
    assert "http.query" not in crumb["data"] and "http.fragment" not in crumb["data"]


def test_the_release_defaults_to_the_installed_packages_version(sentry: Callable[..., CapturingTransport]) -> None:
    transport = sentry(sentry_release="", app_env="dev")
    sentry_sdk.capture_message("hello")
    sentry_sdk.flush()
    [event] = transport.events()
    assert event["release"] == f"tgm@{importlib.metadata.version('tgm')}" and event["environment"] == "dev"
    options = sentry_sdk.get_client().options
    assert not options["send_default_pii"] and options["data_collection"]["user_info"] is False


def test_without_a_dsn_no_client_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert configure_error_tracking("gateway") is False
    client = sentry_sdk.get_client()
    assert not client.is_active() and client.transport is None


def test_the_vault_sends_nothing_unless_enabled_for_it_too(sentry: Callable[..., CapturingTransport]) -> None:
    transport = CapturingTransport()
    assert configure_error_tracking("vault", key_holder=True, deployment=_deployment(), transport=transport) is False
    assert not sentry_sdk.get_client().is_active()
    enabled = _deployment(sentry_vault_enabled=True)
    assert configure_error_tracking("vault", key_holder=True, deployment=enabled, transport=transport) is True
    assert sentry_sdk.get_client().is_active()


# --- real processes, real HTTP transport: the entry points start it ----------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    """A local endpoint standing in for Sentry: (the DSN to reach it, the envelopes it received)."""
    received: list[bytes] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1", received
    finally:
        server.shutdown()
        server.server_close()


def _run(args: list[str], dsn: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(PYTHONPATH=str(REPO / "src"), SENTRY_DSN=dsn, APP_ENV="dev", **extra)
    # The process exits only after the SDK's exit hook sent what it had: no waiting needed after it.
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def _events(received: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for body in received:
        lines = body.split(b"\n")
        for header, item in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                events.append(json.loads(item))
    return events


def test_the_registry_entry_point_reports_a_crash(collector: tuple[str, list[bytes]], tmp_path: Path) -> None:
    dsn, received = collector
    db_url = f"postgresql+psycopg://tgm_migrator:{REDIS_PASSWORD}@127.0.0.1:1/tgm?application_name={TOKEN}"
    done = _run(["-m", "tgm.services.botregistry", "migrate"], dsn, DB_URL=db_url)
    assert done.returncode != 0
    events = _events(received)
    assert events, done.stderr[-2000:]
    assert {event["tags"]["service"] for event in events} == {"botregistry"}
    assert all(event["environment"] == "dev" for event in events)
    for leak in LEAKS:
        assert leak.encode() not in b"".join(received)


def test_the_gateways_worker_factory_starts_it(collector: tuple[str, list[bytes]]) -> None:
    dsn, received = collector
    code = (
        "import logging; from tgm.services.gateway.app import app_from_environment; app_from_environment()\n"
        f"try: raise ValueError('bad answer from /bot{TOKEN}/getMe')\n"
        "except ValueError: logging.getLogger('tgm.services.gateway').exception('Bot API call failed')"
    )
    done = _run(["-c", code], dsn, REDIS_URL="redis://127.0.0.1:1/0", TGM_INSECURE_DEV="1")
    assert done.returncode == 0, done.stderr[-2000:]
    [event] = _events(received)
    assert event["tags"]["service"] == "gateway" and event["logentry"]["message"] == "Bot API call failed"
    assert event["exception"]["values"][0]["value"] == f"bad answer from /bot{REDACTED}/getMe"
    assert SECRET not in done.stderr and SECRET.encode() not in b"".join(received)


@pytest.mark.parametrize("enabled", [False, True], ids=["default-off", "enabled"])
def test_the_vault_reports_only_when_enabled(collector: tuple[str, list[bytes]], tmp_path: Path, enabled: bool) -> None:
    dsn, received = collector
    extra = {"VAULT_AUDIT_FILE": str(tmp_path / "audit.log")} | ({"SENTRY_VAULT_ENABLED": "true"} if enabled else {})
    done = _run(["-m", "tgm.services.vault", "serve"], dsn, **extra)  # no key, no TLS: it logs an error and exits 2
    assert done.returncode == 2, done.stderr[-2000:]
    events = _events(received)
    if enabled:
        assert events and {event["tags"]["service"] for event in events} == {"vault"}
    else:
        assert received == []
