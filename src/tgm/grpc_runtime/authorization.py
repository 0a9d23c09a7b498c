"""Per-caller authorization for a gRPC server: who may call which method, from the mTLS certificate identity.

The identity is the one ``spiffe://tgm/<name>`` SAN URI of the verified client certificate (the scheme the vault
uses, tgm.services.vault.policy); a peer without exactly one such URI, or a plaintext peer, is ``anonymous``. Only
URI entries count (gRPC's ``peer_uri`` property): the combined ``x509_subject_alternative_name`` property also
lists DNS, e-mail and IP entries, and a DNS name spelled ``spiffe://tgm/operator`` is not an identity. The
interceptor asks `allows(identity, method, request)` before the servicer runs and answers PERMISSION_DENIED
otherwise, so an unauthorized caller's request is never looked at by the service. Health checks pass for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import grpc

SPIFFE_PREFIX = "spiffe://tgm/"
URI_SAN_PROPERTY = "peer_uri"  # gRPC core: the certificate's URI SANs only
ANONYMOUS = "anonymous"
HEALTH_SERVICE = "grpc.health.v1.Health"

logger = logging.getLogger(__name__)

# (caller identity, method name without the service, request message) → allowed?
Authorizer = Callable[[str, str, Any], bool]


def caller_identity(context: grpc.ServicerContext) -> str:
    """The ``<name>`` of the peer certificate's single ``spiffe://tgm/<name>`` URI, else ``anonymous``."""
    auth = cast(Mapping[str, list[bytes]], context.auth_context())
    names = [
        uri[len(SPIFFE_PREFIX) :]
        for uri in (raw.decode("utf-8", "replace") for raw in auth.get(URI_SAN_PROPERTY, ()))
        if uri.startswith(SPIFFE_PREFIX)
    ]
    if len(names) != 1 or not names[0].isidentifier():
        return ANONYMOUS
    return names[0]


class AuthorizationInterceptor(grpc.ServerInterceptor):
    """Guards every unary method of `service` (full name, e.g. ``tgm.registry.v1.RegistryService``)."""

    def __init__(self, service: str, allows: Authorizer) -> None:
        self._prefix = f"/{service}/"
        self._allows = allows

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        full_method: str = handler_call_details.method or ""
        if full_method.startswith(f"/{HEALTH_SERVICE}/"):
            return handler
        if not full_method.startswith(self._prefix):
            return _denied_handler()  # some other service on this server: nobody was granted it
        if handler is None or handler.unary_unary is None:
            return handler
        method = full_method[len(self._prefix) :]
        inner = handler.unary_unary
        allows = self._allows

        def authorized(request: Any, context: grpc.ServicerContext) -> Any:
            identity = caller_identity(context)
            if not allows(identity, method, request):
                logger.warning("call refused", extra={"caller": identity, "method": method})
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller may not use this method")
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            authorized,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _denied_handler() -> grpc.RpcMethodHandler[Any, Any]:
    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller may not use this method")

    return grpc.unary_unary_rpc_method_handler(deny)
