"""Issue 9: one request id end to end — while the dispatcher handles an update, the gateway's id (carried in the
envelope) is the current request id, so log lines and gRPC calls (x-request-id) carry it; an id a client could
have shaped is replaced, never passed on."""

from __future__ import annotations

from typing import Any

from tgm.domain.updates import UpdateEnvelope
from tgm.observability.logging import request_id_var
from tgm.services.dispatcher.outbound.flushing_handler import FlushingHandler


def envelope(request_id: str) -> UpdateEnvelope:
    update = {"update_id": 1, "message": {"chat": {"id": 5}, "text": "hi"}}
    return UpdateEnvelope("bot-1", 1, 0.0, request_id, update)


def handler_seeing(seen: list[Any]) -> FlushingHandler:
    def handle(env: UpdateEnvelope) -> str:
        seen.append(request_id_var.get())
        return "done"

    return FlushingHandler(lambda: handle, drain_outbox=lambda: None, schedule=lambda *a: None)  # type: ignore[arg-type, return-value]


def test_the_gateways_request_id_is_current_while_the_update_is_handled() -> None:
    seen: list[Any] = []
    token = request_id_var.set("outer")
    try:
        assert handler_seeing(seen)(envelope("abc123def456")) == "done"
        assert seen == ["abc123def456"]
        assert request_id_var.get() == "outer", "restored afterwards"
    finally:
        request_id_var.reset(token)


def test_a_request_id_that_could_inject_text_is_replaced() -> None:
    seen: list[Any] = []
    handler_seeing(seen)(envelope("evil\nline injected"))
    assert seen[0] != "evil\nline injected" and seen[0].isalnum() and len(seen[0]) == 32
