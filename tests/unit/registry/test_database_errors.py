"""The registry answers UNAVAILABLE (retry later), not UNKNOWN, while its database is down (issue 10)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from tgm.services.botregistry.grpc.database_errors import DatabaseUnavailableInterceptor


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted


def guarded(behaviour: Any) -> Any:
    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    intercepted = DatabaseUnavailableInterceptor().intercept_service(
        lambda _details: handler, SimpleNamespace(method="/tgm.registry.v1.RegistryService/ListBots")
    )
    return intercepted.unary_unary


def test_a_database_that_cannot_be_reached_is_unavailable_without_the_statement() -> None:
    def down(request: Any, context: Any) -> Any:
        raise OperationalError("SELECT secret_stuff FROM bots WHERE token = %s", {"token": "x"}, ConnectionError())

    context = Context()
    with pytest.raises(Aborted) as raised:
        guarded(down)(object(), context)
    assert context.code == grpc.StatusCode.UNAVAILABLE
    assert "secret_stuff" not in context.details
    assert raised.value.__context__ is None, "no exception chain carries the statement further"


def test_other_errors_and_answers_pass_through() -> None:
    def fine(request: Any, context: Any) -> str:
        return "answer"

    def conflict(request: Any, context: Any) -> Any:
        raise IntegrityError("INSERT", {}, ValueError("duplicate"))

    assert guarded(fine)(object(), Context()) == "answer"
    with pytest.raises(IntegrityError):
        guarded(conflict)(object(), Context())
