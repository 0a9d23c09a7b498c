"""POST /webhook/{public_id} with fakes of RouteDirectory and UpdateQueue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from dependency_injector import providers
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from tgm.domain.bots import hash_webhook_secret
from tgm.domain.ports import Route
from tgm.domain.updates import UpdateEnvelope
from tgm.registry_client.client import RegistryUnavailable
from tgm.services.gateway.app import create_app
from tgm.services.gateway.container import GatewayContainer
from tgm.services.gateway.settings import GatewaySettings

CAP = 4096
SECRET_A = "secret-of-bot-a_" + "x" * 20
SECRET_B = "secret-of-bot-b_" + "y" * 20
PUBLIC_A = "pubA_abcdefghijklmnop"
PUBLIC_B = "pubB_abcdefghijklmnop"
PUBLIC_OFF = "pubOff_abcdefghijklm"
UPDATE = {"update_id": 1001, "message": {"message_id": 1, "chat": {"id": 42}, "text": "/start"}}


class FakeRoutes:
    """No cache: every lookup is a blocking `route_for`, and a refresh looks again."""

    def cached(self, public_id: str) -> tuple[bool, Route | None]:
        return False, None

    def refreshed_route(self, public_id: str) -> Route | None:
        return self.route_for(public_id)

    def __init__(self) -> None:
        self.routes = {
            PUBLIC_A: Route("bot-a", hash_webhook_secret(SECRET_A), accepts_updates=True),
            PUBLIC_B: Route("bot-b", hash_webhook_secret(SECRET_B), accepts_updates=True),
            PUBLIC_OFF: Route("bot-off", hash_webhook_secret(SECRET_A), accepts_updates=False),
        }
        self.down = False
        self.lookups: list[str] = []

    def route_for(self, public_id: str) -> Route | None:
        self.lookups.append(public_id)
        if self.down:
            raise RegistryUnavailable("registry call failed: UNAVAILABLE")
        return self.routes.get(public_id)


class FakeQueue:
    def __init__(self) -> None:
        self.envelopes: list[UpdateEnvelope] = []
        self.down = False

    async def enqueue(self, envelope: UpdateEnvelope) -> bool:
        if self.down:
            raise ConnectionError("broker down")
        self.envelopes.append(envelope)
        return True

    async def close(self) -> None:
        return None


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.routes = FakeRoutes()
        self.queue = FakeQueue()
        container = GatewayContainer(settings=GatewaySettings(max_update_bytes=CAP, **settings), broker=StubBroker())
        container.route_directory.override(providers.Object(self.routes))
        container.update_queue.override(providers.Object(self.queue))
        self.client = TestClient(create_app(container))

    def post(self, public_id: str, body: object = UPDATE, secret: str | None = SECRET_A, **kwargs: object):
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        if "content" not in kwargs:
            kwargs["content"] = json.dumps(body).encode()
        return self.client.post(f"/webhook/{public_id}", headers=headers, **kwargs)


@pytest.fixture
def gw() -> Iterator[Harness]:
    harness = Harness()
    with harness.client:
        yield harness


def test_accepts_and_enqueues_envelope(gw: Harness) -> None:
    response = gw.post(PUBLIC_A)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert len(gw.queue.envelopes) == 1
    envelope = gw.queue.envelopes[0]
    assert envelope.bot_id == "bot-a"
    assert envelope.update_id == 1001
    assert envelope.update == UPDATE
    assert envelope.request_id == request_id
    assert envelope.received_at > 0
    assert UpdateEnvelope.from_message(envelope.to_message()) == envelope


def test_each_request_gets_its_own_request_id(gw: Harness) -> None:
    first = gw.post(PUBLIC_A).headers["X-Request-Id"]
    second = gw.post(PUBLIC_A).headers["X-Request-Id"]
    assert first != second


def test_wrong_secret_is_forbidden_and_nothing_enqueued(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, secret="not-the-secret")
    assert response.status_code == 403
    assert gw.queue.envelopes == []


def test_missing_secret_header_is_forbidden(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, secret=None)
    assert response.status_code == 403
    assert gw.queue.envelopes == []


def test_another_bots_secret_is_forbidden(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, secret=SECRET_B)
    assert response.status_code == 403
    assert gw.queue.envelopes == []


def test_secret_is_checked_before_the_body_is_parsed(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, secret="wrong", content=b"not json")
    assert response.status_code == 403


def test_unknown_bot_is_not_found(gw: Harness) -> None:
    response = gw.post("unknown_public_id_000")
    assert response.status_code == 404
    assert gw.queue.envelopes == []


def test_public_id_of_a_foreign_shape_never_reaches_the_registry(gw: Harness) -> None:
    response = gw.post("a" * 500)
    assert response.status_code == 404
    assert gw.routes.lookups == []


def test_oversized_body_with_content_length_is_rejected(gw: Harness) -> None:
    big = {"update_id": 1, "message": {"text": "x" * (CAP + 10)}}
    response = gw.post(PUBLIC_A, big)
    assert response.status_code == 413
    assert gw.queue.envelopes == []
    assert gw.routes.lookups == []  # rejected from the header alone


def test_oversized_body_without_content_length_is_rejected(gw: Harness) -> None:
    payload = json.dumps({"update_id": 1, "message": {"text": "x" * (CAP + 10)}}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = gw.post(PUBLIC_A, content=chunks())
    assert response.status_code == 413
    assert gw.queue.envelopes == []


def test_body_just_under_the_cap_streamed_without_content_length_is_accepted(gw: Harness) -> None:
    payload = json.dumps({"update_id": 7, "message": {"text": "x" * (CAP - 200)}}).encode()
    assert len(payload) <= CAP
    response = gw.post(PUBLIC_A, content=iter([payload[:100], payload[100:]]))
    assert response.status_code == 200
    assert gw.queue.envelopes[0].update_id == 7


def test_non_json_body_is_bad_request(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, content=b"{not json")
    assert response.status_code == 400
    assert gw.queue.envelopes == []


@pytest.mark.parametrize(
    "body",
    [
        {"message": {"text": "hi"}},
        {"update_id": "12"},
        {"update_id": True},
        {"update_id": 1.5},
        [{"update_id": 1}],
        "update_id",
    ],
)
def test_json_without_integer_update_id_is_bad_request(gw: Harness, body: object) -> None:
    response = gw.post(PUBLIC_A, body)
    assert response.status_code == 400
    assert gw.queue.envelopes == []


@pytest.mark.parametrize(
    "body",
    [
        {"update_id": 1, "message": "hi"},
        {"update_id": 1, "message": {"chat": {"id": "5"}, "text": "hi"}},
        {"update_id": 1, "callback_query": {"id": "q", "data": "x"}},
        {"update_id": 1, "message": {"text": "hi"}, "callback_query": {"id": "q", "from": {"id": 1}}},
    ],
)
def test_an_update_the_parser_refuses_is_answered_200_and_set_aside(gw: Harness, body: object) -> None:
    # 200, not 400: Telegram would retry a refused update and hold the bot's later updates behind it.
    response = gw.post(PUBLIC_A, body)
    assert response.status_code == 200
    assert gw.queue.envelopes == []


def test_an_unsupported_kind_is_accepted_and_queued(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, {"update_id": 3, "inline_query": {"id": "q", "query": "x"}})
    assert response.status_code == 200
    assert [envelope.update_id for envelope in gw.queue.envelopes] == [3]


def test_deeply_nested_json_is_bad_request_not_a_crash(gw: Harness) -> None:
    response = gw.post(PUBLIC_A, content=b"[" * 2000 + b"]" * 2000)
    assert response.status_code == 400


def test_registry_down_is_unavailable_with_retry_after(gw: Harness) -> None:
    gw.routes.down = True
    response = gw.post(PUBLIC_A)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert gw.queue.envelopes == []


def test_queue_down_is_unavailable_with_retry_after(gw: Harness) -> None:
    gw.queue.down = True
    response = gw.post(PUBLIC_A)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_inactive_bot_is_acknowledged_and_dropped(gw: Harness) -> None:
    response = gw.post(PUBLIC_OFF)
    assert response.status_code == 200
    assert gw.queue.envelopes == []


def test_inactive_bot_still_needs_the_secret(gw: Harness) -> None:
    response = gw.post(PUBLIC_OFF, secret="wrong")
    assert response.status_code == 403


def test_bodies_are_never_logged(gw: Harness, caplog: pytest.LogCaptureFixture) -> None:
    marker = "very-private-text-123"
    caplog.set_level("DEBUG")
    gw.post(PUBLIC_A, {"update_id": 5, "message": {"text": marker}})
    gw.queue.down = True
    gw.post(PUBLIC_A, {"update_id": 6, "message": {"text": marker}})
    assert len(caplog.records) >= 2
    assert marker not in caplog.text
    assert all(marker not in str(record.__dict__) for record in caplog.records)


def test_other_methods_on_the_webhook_path_are_not_allowed(gw: Harness) -> None:
    response = gw.client.get(f"/webhook/{PUBLIC_A}")
    assert response.status_code == 405
    assert gw.queue.envelopes == []


def test_a_crash_is_a_500_with_its_request_id_and_logged_without_the_body(
    gw: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenClock:
        def now(self) -> object:
            raise RuntimeError("clock broke")

    gw.client.app.state.container.clock.override(providers.Object(BrokenClock()))
    marker = "private-text-in-a-crash"
    response = gw.post(PUBLIC_A, {"update_id": 7, "message": {"text": marker}})
    assert response.status_code == 500
    assert response.json() == {"ok": False, "error": "internal error"}
    assert len(response.headers["X-Request-Id"]) == 32
    assert gw.queue.envelopes == []
    assert "webhook handler crashed" in caplog.text
    assert marker not in caplog.text


def test_the_router_entry_serves_the_same_endpoint(gw: Harness) -> None:
    """The fast path skips FastAPI's stack; the route registered in the router must behave the same."""
    router = gw.client.app.router

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post(
                f"/webhook/{PUBLIC_B}",
                content=json.dumps(UPDATE).encode(),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET_B},
            )

    response = anyio.run(scenario)
    assert response.status_code == 200
    assert [e.bot_id for e in gw.queue.envelopes] == ["bot-b"]
    assert gw.queue.envelopes[0].request_id == response.headers["X-Request-Id"]


def test_healthz(gw: Harness) -> None:
    assert gw.client.get("/healthz").status_code == 200


class Probe:
    def __init__(self, name: str, ok: bool) -> None:
        self.name, self.ok = name, ok
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.ok


def test_readyz_reports_each_dependency() -> None:
    harness = Harness(readiness_cache_seconds=0)
    container = harness.client.app.state.container
    container.readiness_probes.override(providers.Object([Probe("registry", True), Probe("broker", True)]))
    with harness.client:
        assert harness.client.get("/readyz").status_code == 200
        container.readiness_probes.override(providers.Object([Probe("registry", False), Probe("broker", True)]))
        response = harness.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"registry": False, "broker": True}


def test_readyz_answers_a_flood_from_one_probe_round() -> None:
    harness = Harness(readiness_cache_seconds=60)
    registry, broker = Probe("registry", True), Probe("broker", True)
    harness.client.app.state.container.readiness_probes.override(providers.Object([registry, broker]))
    with harness.client:
        for _ in range(20):
            assert harness.client.get("/readyz").status_code == 200
    assert (registry.calls, broker.calls) == (1, 1)


class CachingRoutes(FakeRoutes):
    """A RouteDirectory with a non-blocking `cached` lookup: PUBLIC_A/PUBLIC_B are hits, anything else a miss
    whose `route_for` waits on `release` (a slow registry)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def cached(self, public_id: str) -> tuple[bool, Route | None]:
        if public_id in (PUBLIC_A, PUBLIC_B):
            return True, self.routes[public_id]
        return False, None

    def route_for(self, public_id: str) -> Route | None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.release.wait(timeout=10)
            return super().route_for(public_id)
        finally:
            with self._lock:
                self.active -= 1


def test_cache_hit_is_answered_without_route_for() -> None:
    harness = Harness()
    routes = CachingRoutes()
    harness.routes = routes
    harness.client.app.state.container.route_directory.override(providers.Object(routes))
    with harness.client:
        assert harness.post(PUBLIC_A).status_code == 200
        assert harness.post(PUBLIC_B, secret=SECRET_B).status_code == 200
    assert routes.lookups == []
    assert [e.bot_id for e in harness.queue.envelopes] == ["bot-a", "bot-b"]


def test_a_flood_of_misses_cannot_starve_enqueue() -> None:
    routes = CachingRoutes()
    queue = FakeQueue()
    settings = GatewaySettings(max_update_bytes=CAP, route_lookup_concurrency=2)
    container = GatewayContainer(settings=settings, broker=StubBroker())
    container.route_directory.override(providers.Object(routes))
    container.update_queue.override(providers.Object(queue))
    app = create_app(container)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET_A}
    body = json.dumps(UPDATE).encode()

    async def scenario() -> None:
        # A small default pool: without a limiter of their own, the misses would take all of it.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 3
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            flood: list[int] = []

            async def miss(n: int) -> None:
                response = await client.post(f"/webhook/random_{n}", headers=headers, content=body)
                flood.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for n in range(6):
                    tg.start_soon(miss, n)
                with anyio.fail_after(5):
                    while routes.active < 2:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.1)
                with anyio.fail_after(5):
                    response = await client.post(f"/webhook/{PUBLIC_A}", headers=headers, content=body)
                assert response.status_code == 200
                assert [e.bot_id for e in queue.envelopes] == ["bot-a"]
                routes.release.set()
            assert flood == [404] * 6
            assert routes.max_active == 2

    try:
        anyio.run(scenario)
    finally:
        routes.release.set()


def test_a_text_with_a_lone_surrogate_is_accepted_and_enqueued_as_sent(gw: Harness) -> None:
    # Valid JSON that orjson refuses (not valid UTF-8 once decoded): still an update Telegram will not fix by retrying.
    body = b'{"update_id": 1002, "message": {"message_id": 2, "chat": {"id": 42}, "text": "a \\ud800 b"}}'
    response = gw.post(PUBLIC_A, content=body)
    assert response.status_code == 200
    assert gw.queue.envelopes[-1].update["message"]["text"] == "a \ud800 b"


def test_metrics_count_each_answer_by_outcome(gw: Harness) -> None:
    def outcome(name: str) -> float:
        for line in gw.client.get("/metrics").text.splitlines():
            if line.startswith(f'tgm_webhook_updates_total{{outcome="{name}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    accepted, forbidden, unknown = outcome("accepted"), outcome("forbidden"), outcome("unknown_bot")
    gw.post(PUBLIC_A)
    gw.post(PUBLIC_A, secret="wrong-secret")
    gw.post(PUBLIC_A, secret="wrong-secret")
    gw.post("nobody_here")
    assert (outcome("accepted"), outcome("forbidden"), outcome("unknown_bot")) == (
        accepted + 1,
        forbidden + 2,
        unknown + 1,
    )
