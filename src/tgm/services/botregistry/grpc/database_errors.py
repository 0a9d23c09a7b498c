"""The registry's database down is UNAVAILABLE for callers, not UNKNOWN (issue 10).

A server interceptor, so every method fails fast and the same way while PostgreSQL is unreachable: callers (the
gateway's route lookups, the dispatchers' bot lookups and stats) treat UNAVAILABLE as "retry later" and keep what
they hold, and the registry recovers by itself when the database is back (the pool opens new connections; SQLAlchemy
drops the dead ones, pool_pre_ping).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)


def _database_down(error: BaseException) -> bool:
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and bool(getattr(error, "connection_invalidated", False))
    )


class DatabaseUnavailableInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            failure: str | None = None
            try:
                return inner(request, context)
            except (OperationalError, DBAPIError) as error:
                if not _database_down(error):
                    raise
                failure = type(error.orig).__name__ if error.orig is not None else type(error).__name__
            # Outside the except block: no exception chain (the statement and its parameters) travels further.
            logger.warning("database unavailable", extra={"method": handler_call_details.method, "error": failure})
            context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; try again later")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
